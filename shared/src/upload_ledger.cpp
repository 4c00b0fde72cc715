#include "transfer/upload_ledger.hpp"

namespace transfer {
namespace {

const std::vector<std::string>& migrations() {
  static const std::vector<std::string> kMigrations = {
      R"sql(
CREATE TABLE uploads (
  id          INTEGER PRIMARY KEY,
  name        TEXT    NOT NULL,
  outcome     TEXT    NOT NULL CHECK (outcome IN ('accepted','rejected')),
  status      INTEGER NOT NULL,
  output_path TEXT,
  bytes       INTEGER,
  sha256      TEXT,
  reason      TEXT,
  peer        TEXT,
  received_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX uploads_name ON uploads (name, sha256))sql",
      // 2: the idempotency ledger, filled from what schema 1 recorded (the newest per path).
      R"sql(
ALTER TABLE uploads ADD COLUMN duplicate INTEGER NOT NULL DEFAULT 0;
CREATE TABLE deliveries (
  output_path       TEXT    PRIMARY KEY,
  name              TEXT    NOT NULL,
  sha256            TEXT    NOT NULL,
  bytes             INTEGER NOT NULL,
  key_index         INTEGER NOT NULL DEFAULT 0,
  idempotency_key   TEXT,
  first_received_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  last_received_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  duplicates        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_name ON deliveries (name, sha256);
INSERT INTO deliveries (output_path, name, sha256, bytes, first_received_at, last_received_at)
  SELECT u.output_path, u.name, u.sha256, u.bytes, u.received_at, u.received_at FROM uploads u
  WHERE u.outcome='accepted' AND u.output_path IS NOT NULL AND u.sha256 IS NOT NULL
    AND u.id=(SELECT max(id) FROM uploads v WHERE v.outcome='accepted' AND v.output_path=u.output_path))sql",
      // 3: refusals have a retention (prune_refusals walks them oldest first).
      R"sql(
CREATE INDEX uploads_outcome ON uploads (outcome, id))sql"};
  return kMigrations;
}

constexpr std::string_view kDeliveryColumns =
    "rowid, output_path, name, sha256, bytes, key_index, coalesce(idempotency_key,''), first_received_at, "
    "last_received_at, duplicates";

Delivery read_delivery(const SqliteStatement& q) {
  Delivery d;
  d.id = q.column_int(0);
  d.output_path = q.column_text(1);
  d.name = q.column_text(2);
  d.sha256 = q.column_text(3);
  d.bytes = q.column_int(4);
  d.key_index = q.column_int(5);
  d.idempotency_key = q.column_text(6);
  d.first_received_at = q.column_text(7);
  d.last_received_at = q.column_text(8);
  d.duplicates = q.column_int(9);
  return d;
}

}  // namespace

Result<UploadLedger> UploadLedger::open(const std::string& path) {
  auto db = SqliteDb::open(path, migrations());
  if (!db) return db.error();
  return UploadLedger(std::move(*db));
}

Result<std::optional<Delivery>> UploadLedger::find_where(const std::string& where,
                                                         const std::string& a,
                                                         const std::string& b) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare("SELECT " + std::string(kDeliveryColumns) + " FROM deliveries WHERE " + where +
                       " ORDER BY last_received_at DESC LIMIT 1");
  if (!q) return q.error();
  q->bind(1, a);
  if (!b.empty()) q->bind(2, b);
  auto row = q->step();
  if (!row) return row.error();
  if (!*row) return std::optional<Delivery>();
  return std::optional<Delivery>(read_delivery(*q));
}

Result<std::optional<Delivery>> UploadLedger::find(const std::string& name, const std::string& sha256) {
  return find_where("name=?1 AND sha256=?2", name, sha256);
}

Result<std::optional<Delivery>> UploadLedger::find_by_path(const std::string& output_path) {
  return find_where("output_path=?1", output_path, {});
}

Status UploadLedger::record_delivery(const Delivery& d, const std::string& peer) {
  std::lock_guard lock(mu_);
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "INSERT OR REPLACE INTO deliveries (output_path, name, sha256, bytes, key_index, "
        "idempotency_key) VALUES (?1, ?2, ?3, ?4, ?5, nullif(?6,''))");
    if (!q) return q.error();
    if (auto st = q->bind(1, d.output_path).bind(2, d.name).bind(3, d.sha256).bind(4, d.bytes)
                      .bind(5, d.key_index).bind(6, d.idempotency_key).run();
        !st) {
      return st;
    }
    return log_accepted(d, peer, false);
  });
}

Status UploadLedger::record_duplicate(const Delivery& d, const std::string& peer) {
  std::lock_guard lock(mu_);
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "UPDATE deliveries SET duplicates=duplicates+1, "
        "last_received_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE output_path=?1");
    if (!q) return q.error();
    if (auto st = q->bind(1, d.output_path).run(); !st) return st;
    return log_accepted(d, peer, true);
  });
}

Status UploadLedger::log_accepted(const Delivery& d, const std::string& peer, bool duplicate) {
  auto log = db_.prepare(
      "INSERT INTO uploads (name, outcome, status, output_path, bytes, sha256, peer, duplicate) "
      "VALUES (?1, 'accepted', 201, ?2, ?3, ?4, ?5, ?6)");
  if (!log) return log.error();
  return log->bind(1, d.name).bind(2, d.output_path).bind(3, d.bytes).bind(4, d.sha256).bind(5, peer)
      .bind(6, int64_t{duplicate ? 1 : 0}).run();
}

Status UploadLedger::record_rejected(const std::string& name, int status, const std::string& reason,
                                     const std::string& peer) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare(
      "INSERT INTO uploads (name, outcome, status, reason, peer) VALUES (?1, 'rejected', ?2, ?3, ?4)");
  if (!q) return q.error();
  return q->bind(1, name.substr(0, kMaxRecordedNameBytes))
      .bind(2, int64_t{status})
      .bind(3, reason.substr(0, kMaxRecordedReasonBytes))
      .bind(4, peer)
      .run();
}

Result<int64_t> UploadLedger::prune_refusals(int64_t max_age_days, int64_t max_rows) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare(
      "DELETE FROM uploads WHERE outcome='rejected' AND ("
      "received_at < strftime('%Y-%m-%dT%H:%M:%fZ','now', '-' || ?1 || ' days') OR "
      "id <= (SELECT id FROM uploads WHERE outcome='rejected' ORDER BY id DESC LIMIT 1 OFFSET ?2))");
  if (!q) return q.error();
  if (auto st = q->bind(1, max_age_days).bind(2, max_rows).run(); !st) return st.error();
  return db_.changes();
}

Result<std::vector<LedgerEntry>> UploadLedger::recent(int64_t limit) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare(
      "SELECT id, name, outcome, status, coalesce(output_path,''), coalesce(bytes,0), "
      "coalesce(sha256,''), coalesce(reason,''), coalesce(peer,''), received_at, duplicate "
      "FROM uploads ORDER BY id DESC LIMIT ?1");
  if (!q) return q.error();
  q->bind(1, limit);
  std::vector<LedgerEntry> out;
  for (;;) {
    auto row = q->step();
    if (!row) return row.error();
    if (!*row) break;
    LedgerEntry e;
    e.id = q->column_int(0);
    e.name = q->column_text(1);
    e.outcome = q->column_text(2);
    e.status = static_cast<int>(q->column_int(3));
    e.output_path = q->column_text(4);
    e.bytes = q->column_int(5);
    e.sha256 = q->column_text(6);
    e.reason = q->column_text(7);
    e.peer = q->column_text(8);
    e.received_at = q->column_text(9);
    e.duplicate = q->column_int(10) != 0;
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<Delivery>> UploadLedger::deliveries_after(int64_t after_id, int64_t limit) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare("SELECT " + std::string(kDeliveryColumns) +
                       " FROM deliveries WHERE rowid > ?1 ORDER BY rowid LIMIT ?2");
  if (!q) return q.error();
  q->bind(1, after_id).bind(2, limit);
  std::vector<Delivery> out;
  for (;;) {
    auto row = q->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(read_delivery(*q));
  }
  return out;
}

Result<std::optional<Delivery>> UploadLedger::find_by_file_or_name(const std::string& file_name) {
  std::lock_guard lock(mu_);
  // The output path ends in "/<file_name>"; '/' cannot occur in a safe name, so the suffix match
  // (by substr, not LIKE, whose wildcards a name may hold) is exact.
  auto q = db_.prepare("SELECT " + std::string(kDeliveryColumns) +
                       " FROM deliveries WHERE substr(output_path, -length(?1) - 1) = '/' || ?1 "
                       "OR output_path = ?1 OR name = ?1 "
                       "ORDER BY (name = ?1 AND substr(output_path, -length(?1) - 1) <> '/' || ?1), "
                       "rowid DESC LIMIT 1");
  if (!q) return q.error();
  q->bind(1, file_name);
  auto row = q->step();
  if (!row) return row.error();
  if (!*row) return std::optional<Delivery>();
  return std::optional<Delivery>(read_delivery(*q));
}

Status UploadLedger::probe_write(int timeout_ms) {
  std::lock_guard lock(mu_);
  return db_.probe_write(timeout_ms);
}

}  // namespace transfer
