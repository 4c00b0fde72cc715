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
CREATE INDEX uploads_name ON uploads (name, sha256))sql"};
  return kMigrations;
}

}  // namespace

Result<UploadLedger> UploadLedger::open(const std::string& path) {
  auto db = SqliteDb::open(path, migrations());
  if (!db) return db.error();
  return UploadLedger(std::move(*db));
}

Status UploadLedger::record_accepted(const std::string& name, const std::string& output_path,
                                     int64_t bytes, const std::string& sha256,
                                     const std::string& peer) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare(
      "INSERT INTO uploads (name, outcome, status, output_path, bytes, sha256, peer) "
      "VALUES (?1, 'accepted', 201, ?2, ?3, ?4, ?5)");
  if (!q) return q.error();
  return q->bind(1, name).bind(2, output_path).bind(3, bytes).bind(4, sha256).bind(5, peer).run();
}

Status UploadLedger::record_rejected(const std::string& name, int status, const std::string& reason,
                                     const std::string& peer) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare(
      "INSERT INTO uploads (name, outcome, status, reason, peer) VALUES (?1, 'rejected', ?2, ?3, ?4)");
  if (!q) return q.error();
  return q->bind(1, name).bind(2, int64_t{status}).bind(3, reason).bind(4, peer).run();
}

Result<std::vector<LedgerEntry>> UploadLedger::recent(int64_t limit) {
  std::lock_guard lock(mu_);
  auto q = db_.prepare(
      "SELECT id, name, outcome, status, coalesce(output_path,''), coalesce(bytes,0), "
      "coalesce(sha256,''), coalesce(reason,''), coalesce(peer,''), received_at "
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
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace transfer
