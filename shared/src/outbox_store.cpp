#include "transfer/outbox_store.hpp"

namespace transfer {
namespace {

const std::vector<std::string>& migrations() {
  static const std::vector<std::string> kMigrations = {
      R"sql(
CREATE TABLE files (
  name            TEXT    NOT NULL,
  sha256          TEXT    NOT NULL,
  size            INTEGER NOT NULL,
  mtime_ns        INTEGER NOT NULL,
  state           TEXT    NOT NULL CHECK (state IN ('pending','delivered','rejected','failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT,
  first_seen_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  delivered_at    TEXT,
  receiver_status INTEGER,
  receiver_answer TEXT,
  PRIMARY KEY (name, sha256)
);
CREATE INDEX files_state ON files (state))sql"};
  return kMigrations;
}

constexpr std::string_view kColumns =
    "name, sha256, size, mtime_ns, state, attempts, coalesce(last_error,''), first_seen_at, "
    "updated_at, coalesce(delivered_at,''), coalesce(receiver_status,0), "
    "coalesce(receiver_answer,'')";

OutboxState parse_state(const std::string& s) {
  if (s == "delivered") return OutboxState::kDelivered;
  if (s == "rejected") return OutboxState::kRejected;
  if (s == "failed") return OutboxState::kFailed;
  return OutboxState::kPending;
}

OutboxEntry read_entry(const SqliteStatement& q) {
  OutboxEntry e;
  e.name = q.column_text(0);
  e.sha256 = q.column_text(1);
  e.size = q.column_int(2);
  e.mtime_ns = q.column_int(3);
  e.state = parse_state(q.column_text(4));
  e.attempts = q.column_int(5);
  e.last_error = q.column_text(6);
  e.first_seen_at = q.column_text(7);
  e.updated_at = q.column_text(8);
  e.delivered_at = q.column_text(9);
  e.receiver_status = q.column_int(10);
  e.receiver_answer = q.column_text(11);
  return e;
}

}  // namespace

std::string_view to_string(OutboxState state) {
  switch (state) {
    case OutboxState::kPending: return "pending";
    case OutboxState::kDelivered: return "delivered";
    case OutboxState::kRejected: return "rejected";
    case OutboxState::kFailed: return "failed";
  }
  return "pending";
}

Result<OutboxStore> OutboxStore::open(const std::string& path) {
  auto db = SqliteDb::open(path, migrations());
  if (!db) return db.error();
  return OutboxStore(std::move(*db));
}

Result<std::optional<OutboxEntry>> OutboxStore::find(const std::string& name,
                                                     const std::string& sha256) {
  auto q = db_.prepare("SELECT " + std::string(kColumns) + " FROM files WHERE name=?1 AND sha256=?2");
  if (!q) return q.error();
  q->bind(1, name).bind(2, sha256);
  auto row = q->step();
  if (!row) return row.error();
  if (!*row) return std::optional<OutboxEntry>();
  return std::optional<OutboxEntry>(read_entry(*q));
}

Status OutboxStore::record_seen(const std::string& name, const std::string& sha256, int64_t size,
                                int64_t mtime_ns) {
  auto q = db_.prepare(
      "INSERT INTO files (name, sha256, size, mtime_ns, state) VALUES (?1, ?2, ?3, ?4, 'pending') "
      "ON CONFLICT (name, sha256) DO UPDATE SET mtime_ns=excluded.mtime_ns");
  if (!q) return q.error();
  return q->bind(1, name).bind(2, sha256).bind(3, size).bind(4, mtime_ns).run();
}

Status OutboxStore::set_state(const std::string& name, const std::string& sha256, OutboxState state,
                              const std::string& error, int receiver_status,
                              const std::string& answer, bool count_attempt) {
  auto q = db_.prepare(
      "UPDATE files SET state=?3, last_error=nullif(?4,''), attempts=attempts+?5, "
      "receiver_status=nullif(?6,0), receiver_answer=nullif(?7,''), "
      "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ','now'), "
      "delivered_at=CASE WHEN ?3='delivered' THEN strftime('%Y-%m-%dT%H:%M:%fZ','now') "
      "ELSE delivered_at END WHERE name=?1 AND sha256=?2");
  if (!q) return q.error();
  return q->bind(1, name)
      .bind(2, sha256)
      .bind(3, to_string(state))
      .bind(4, error)
      .bind(5, int64_t{count_attempt ? 1 : 0})
      .bind(6, int64_t{receiver_status})
      .bind(7, answer)
      .run();
}

Status OutboxStore::mark_delivered(const std::string& name, const std::string& sha256,
                                   int receiver_status, const std::string& receiver_answer) {
  return set_state(name, sha256, OutboxState::kDelivered, "", receiver_status, receiver_answer, true);
}

Status OutboxStore::mark_failed(const std::string& name, const std::string& sha256,
                                const std::string& error, int receiver_status,
                                const std::string& receiver_answer) {
  return set_state(name, sha256, OutboxState::kFailed, error, receiver_status, receiver_answer, true);
}

Status OutboxStore::mark_rejected(const std::string& name, const std::string& sha256,
                                  const std::string& error, int receiver_status,
                                  const std::string& receiver_answer) {
  return set_state(name, sha256, OutboxState::kRejected, error, receiver_status, receiver_answer, true);
}

Result<std::vector<OutboxEntry>> OutboxStore::all() {
  auto q = db_.prepare("SELECT " + std::string(kColumns) + " FROM files ORDER BY name, first_seen_at");
  if (!q) return q.error();
  std::vector<OutboxEntry> out;
  for (;;) {
    auto row = q->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(read_entry(*q));
  }
  return out;
}

}  // namespace transfer
