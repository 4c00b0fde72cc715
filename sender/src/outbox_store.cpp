#include "outbox_store.hpp"

#include <algorithm>
#include <array>

#include "transfer/sha256.hpp"

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
CREATE INDEX files_state ON files (state))sql",
      // 2: retries with backoff that survives restarts, and quarantine in place of 'rejected'.
      R"sql(
CREATE TABLE files_v2 (
  name              TEXT    NOT NULL,
  sha256            TEXT    NOT NULL,
  size              INTEGER NOT NULL,
  mtime_ns          INTEGER NOT NULL,
  state             TEXT    NOT NULL CHECK (state IN ('pending','delivered','failed','quarantined')),
  attempts          INTEGER NOT NULL DEFAULT 0,
  last_error        TEXT,
  first_seen_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  delivered_at      TEXT,
  receiver_status   INTEGER,
  receiver_answer   TEXT,
  first_failure_at  REAL,
  next_attempt_at   REAL    NOT NULL DEFAULT 0,
  quarantine_path   TEXT,
  PRIMARY KEY (name, sha256)
);
INSERT INTO files_v2 (name, sha256, size, mtime_ns, state, attempts, last_error, first_seen_at,
                      updated_at, delivered_at, receiver_status, receiver_answer)
  SELECT name, sha256, size, mtime_ns, CASE state WHEN 'rejected' THEN 'quarantined' ELSE state END,
         attempts, last_error, first_seen_at, updated_at, delivered_at, receiver_status,
         receiver_answer FROM files;
DROP TABLE files;
ALTER TABLE files_v2 RENAME TO files;
CREATE INDEX files_state ON files (state);
CREATE INDEX files_name ON files (name))sql",
      // 3: a state per destination (fan-out). The key gains the destination, which SQLite cannot
      // add to a primary key in place: the table is rebuilt. Every existing row becomes the row of
      // 'default', the destination the flat options describe, so an upgrade resends nothing.
      R"sql(
CREATE TABLE files_v3 (
  name              TEXT    NOT NULL,
  sha256            TEXT    NOT NULL,
  destination       TEXT    NOT NULL DEFAULT 'default',
  size              INTEGER NOT NULL,
  mtime_ns          INTEGER NOT NULL,
  state             TEXT    NOT NULL CHECK (state IN ('pending','delivered','failed','quarantined')),
  attempts          INTEGER NOT NULL DEFAULT 0,
  last_error        TEXT,
  first_seen_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  delivered_at      TEXT,
  receiver_status   INTEGER,
  receiver_answer   TEXT,
  first_failure_at  REAL,
  next_attempt_at   REAL    NOT NULL DEFAULT 0,
  quarantine_path   TEXT,
  PRIMARY KEY (name, sha256, destination)
);
INSERT INTO files_v3 (name, sha256, destination, size, mtime_ns, state, attempts, last_error,
                      first_seen_at, updated_at, delivered_at, receiver_status, receiver_answer,
                      first_failure_at, next_attempt_at, quarantine_path)
  SELECT name, sha256, 'default', size, mtime_ns, state, attempts, last_error, first_seen_at,
         updated_at, delivered_at, receiver_status, receiver_answer, first_failure_at,
         next_attempt_at, quarantine_path FROM files;
DROP TABLE files;
ALTER TABLE files_v3 RENAME TO files;
CREATE INDEX files_state ON files (state);
CREATE INDEX files_name ON files (name);
CREATE INDEX files_destination_state ON files (destination, state))sql",
      // 4: the XML mapping a delivery was made with (XML_* options, issue 16); NULL for rows
      // delivered before, which had the default mapping.
      "ALTER TABLE files ADD COLUMN xml_mapping TEXT"};
  return kMigrations;
}

constexpr std::string_view kColumns =
    "name, sha256, size, mtime_ns, state, attempts, coalesce(last_error,''), first_seen_at, "
    "updated_at, coalesce(delivered_at,''), coalesce(receiver_status,0), "
    "coalesce(receiver_answer,''), coalesce(first_failure_at,0), next_attempt_at, "
    "coalesce(quarantine_path,''), destination, coalesce(xml_mapping,'')";

constexpr std::string_view kNow = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

OutboxState parse_state(const std::string& s) {
  if (s == "delivered") return OutboxState::kDelivered;
  if (s == "quarantined") return OutboxState::kQuarantined;
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
  e.first_failure_unix = q.column_double(12);
  e.next_attempt_unix = q.column_double(13);
  e.quarantine_path = q.column_text(14);
  e.destination = q.column_text(15);
  e.xml_mapping = q.column_text(16);
  return e;
}

// Binds the optional destination filter of a list, `(?N IS NULL OR destination=?N)`.
void bind_destination_filter(SqliteStatement& q, int index, const std::string* destination) {
  if (destination != nullptr) {
    q.bind(index, *destination);
  } else {
    q.bind(index, nullptr);
  }
}

constexpr std::array<OutboxState, 4> kStates = {OutboxState::kPending, OutboxState::kFailed,
                                                OutboxState::kDelivered, OutboxState::kQuarantined};

// ?1..?6 of the failure statements: the file version and what went wrong.
SqliteStatement& bind_failure(SqliteStatement& q, const std::string& name, const std::string& sha256,
                              const FailureRecord& f) {
  return q.bind(1, name)
      .bind(2, sha256)
      .bind(3, f.error)
      .bind(4, int64_t{f.receiver_status})
      .bind(5, f.receiver_answer)
      .bind(6, f.now_unix);
}

}  // namespace

std::string_view to_string(OutboxState state) {
  switch (state) {
    case OutboxState::kPending: return "pending";
    case OutboxState::kDelivered: return "delivered";
    case OutboxState::kFailed: return "failed";
    case OutboxState::kQuarantined: return "quarantined";
  }
  return "pending";
}

std::string idempotency_key(const std::string& name, const std::string& content_sha256) {
  Sha256 h;
  h.update(name.data(), name.size());
  h.update("\n", 1);
  h.update(content_sha256.data(), content_sha256.size());
  return h.hex_digest();
}

Result<OutboxStore> OutboxStore::open(const std::string& path) {
  auto db = SqliteDb::open(path, migrations());
  if (!db) return db.error();
  return OutboxStore(std::move(*db));
}

OutboxStore::~OutboxStore() {
  std::lock_guard lock(mu_);
  (void)commit_batch();
}

void OutboxStore::set_group_commit(std::chrono::milliseconds window, std::function<void()> on_batch_opened) {
  std::lock_guard lock(mu_);
  window_ = window;
  on_batch_opened_ = std::move(on_batch_opened);
}

Status OutboxStore::commit_batch() {
  if (pending_.empty()) return ok_status();
  std::vector<PendingWrite> batch;
  batch.swap(pending_);  // written or lost (a failed batch rolls back whole; its steps are redone)
  Status st = db_.transaction([&]() -> Status {
    for (const auto& step : batch) {
      auto q = db_.prepare(*step.sql);
      if (!q) return q.error();
      step.bind(*q);
      if (auto done = q->run(); !done) return done;
    }
    return ok_status();
  });
  if (!st) {
    return make_error(st.error().code, "cannot write " + std::to_string(batch.size()) +
                                           " queued state steps: " + st.error().message);
  }
  return st;
}

Status OutboxStore::flush() {
  std::lock_guard lock(mu_);
  return commit_batch();
}

Status OutboxStore::flush_if_due() {
  std::lock_guard lock(mu_);
  if (pending_.empty() || std::chrono::steady_clock::now() - batch_started_ < window_) return ok_status();
  return commit_batch();
}

Status OutboxStore::write_now(const std::string& sql, const Binder& bind) {
  if (auto st = commit_batch(); !st) return st;
  auto q = db_.prepare(sql);
  if (!q) return q.error();
  bind(*q);
  return q->run();
}

Status OutboxStore::write_batched(const std::string& sql, Binder bind, const std::string& name,
                                  const std::string& sha256, const std::string& destination) {
  if (window_.count() <= 0) return write_now(sql, bind);
  const auto now = std::chrono::steady_clock::now();
  const bool opened = pending_.empty();
  if (opened) batch_started_ = now;
  pending_.push_back(PendingWrite{&sql, std::move(bind), name, sha256, destination});
  if (opened && on_batch_opened_) on_batch_opened_();
  if (now - batch_started_ >= window_) return commit_batch();
  return ok_status();
}

std::optional<std::chrono::steady_clock::time_point> OutboxStore::batch_due() {
  std::lock_guard lock(mu_);
  if (pending_.empty()) return std::nullopt;
  return batch_started_ + window_;
}

Result<std::vector<OutboxEntry>> OutboxStore::select(const std::string& where_and_order,
                                                     const Binder& bind) {
  if (auto st = commit_batch(); !st) return st.error();  // reads see the queued steps
  auto q = db_.prepare("SELECT " + std::string(kColumns) + " FROM files " + where_and_order);
  if (!q) return q.error();
  if (bind) bind(*q);
  std::vector<OutboxEntry> out;
  for (;;) {
    auto row = q->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(read_entry(*q));
  }
  return out;
}

Result<std::optional<OutboxEntry>> OutboxStore::find(const std::string& name,
                                                     const std::string& sha256,
                                                     const std::string& destination) {
  std::lock_guard lock(mu_);
  for (const auto& step : pending_) {
    if (step.name == name && step.sha256 == sha256 && step.destination == destination) {
      if (auto st = commit_batch(); !st) return st.error();
      break;
    }
  }
  auto q = db_.prepare("SELECT " + std::string(kColumns) +
                       " FROM files WHERE name=?1 AND sha256=?2 AND destination=?3");
  if (!q) return q.error();
  q->bind(1, name).bind(2, sha256).bind(3, destination);
  auto row = q->step();
  if (!row) return row.error();
  if (!*row) return std::optional<OutboxEntry>();
  return std::optional<OutboxEntry>(read_entry(*q));
}

Status OutboxStore::record_seen(const std::string& name, const std::string& sha256, int64_t size,
                                int64_t mtime_ns, const std::string& destination) {
  std::lock_guard lock(mu_);
  static const std::string kSql =
      "INSERT INTO files (name, sha256, destination, size, mtime_ns, state) "
      "VALUES (?1, ?2, ?5, ?3, ?4, 'pending') ON CONFLICT (name, sha256, destination) "
      "DO UPDATE SET mtime_ns=excluded.mtime_ns, size=excluded.size";
  return write_batched(
      kSql,
      [=](SqliteStatement& q) {
        q.bind(1, name).bind(2, sha256).bind(3, size).bind(4, mtime_ns).bind(5, destination);
      },
      name, sha256, destination);
}

Status OutboxStore::mark_delivered(const std::string& name, const std::string& sha256,
                                   int receiver_status, const std::string& receiver_answer,
                                   const std::string& destination, const std::string& xml_mapping) {
  std::lock_guard lock(mu_);
  static const std::string kSql =
      "UPDATE files SET state='delivered', attempts=attempts+1, last_error=NULL, "
      "receiver_status=?3, receiver_answer=nullif(?4,''), next_attempt_at=0, updated_at=" +
      std::string(kNow) + ", delivered_at=" + std::string(kNow) +
      ", xml_mapping=nullif(?6,'') WHERE name=?1 AND sha256=?2 AND destination=?5";
  return write_batched(
      kSql,
      [=](SqliteStatement& q) {
        q.bind(1, name)
            .bind(2, sha256)
            .bind(3, int64_t{receiver_status})
            .bind(4, receiver_answer)
            .bind(5, destination)
            .bind(6, xml_mapping);
      },
      name, sha256, destination);
}

Status OutboxStore::mark_failed(const std::string& name, const std::string& sha256,
                                const FailureRecord& f, const std::string& destination) {
  std::lock_guard lock(mu_);
  static const std::string kSql =
      "UPDATE files SET state='failed', attempts=attempts+1, last_error=?3, "
      "receiver_status=nullif(?4,0), receiver_answer=nullif(?5,''), "
      "first_failure_at=coalesce(first_failure_at, ?6), next_attempt_at=?7, updated_at=" +
      std::string(kNow) + " WHERE name=?1 AND sha256=?2 AND destination=?8";
  return write_batched(
      kSql,
      [=](SqliteStatement& q) {
        bind_failure(q, name, sha256, f).bind(7, f.next_attempt_unix).bind(8, destination);
      },
      name, sha256, destination);
}

Status OutboxStore::mark_quarantined(const std::string& name, const std::string& sha256,
                                     const FailureRecord& f, const std::string& quarantine_path,
                                     const std::string& destination) {
  std::lock_guard lock(mu_);
  static const std::string kSql =
      "UPDATE files SET state='quarantined', last_error=?3, receiver_status=nullif(?4,0), "
      "receiver_answer=nullif(?5,''), first_failure_at=coalesce(first_failure_at, ?6), "
      "next_attempt_at=0, quarantine_path=nullif(?7,''), updated_at=" +
      std::string(kNow) + " WHERE name=?1 AND sha256=?2 AND destination=?8";
  return write_now(kSql, [&](SqliteStatement& q) {
    bind_failure(q, name, sha256, f).bind(7, quarantine_path).bind(8, destination);
  });
}

Status OutboxStore::reset(const std::string& name, const std::string& sha256,
                          const std::string& destination) {
  std::lock_guard lock(mu_);
  static const std::string kSql =
      "UPDATE files SET state='pending', attempts=0, last_error=NULL, first_failure_at=NULL, "
      "next_attempt_at=0, quarantine_path=NULL, updated_at=" +
      std::string(kNow) + " WHERE name=?1 AND sha256=?2 AND destination=?3";
  return write_now(
      kSql, [&](SqliteStatement& q) { q.bind(1, name).bind(2, sha256).bind(3, destination); });
}

Result<std::vector<OutboxEntry>> OutboxStore::settled(const std::string* destination) {
  std::lock_guard lock(mu_);
  return select(
      "WHERE state IN ('delivered','quarantined') AND (?1 IS NULL OR destination=?1) "
      "ORDER BY name, updated_at",
      [&](SqliteStatement& q) { bind_destination_filter(q, 1, destination); });
}

Result<std::vector<OutboxEntry>> OutboxStore::all(const std::string* destination) {
  std::lock_guard lock(mu_);
  return select("WHERE ?1 IS NULL OR destination=?1 ORDER BY name, first_seen_at, destination",
                [&](SqliteStatement& q) { bind_destination_filter(q, 1, destination); });
}

Result<std::vector<OutboxEntry>> OutboxStore::by_name(const std::string& name,
                                                      const std::string* destination) {
  std::lock_guard lock(mu_);
  return select(
      "WHERE name=?1 AND (?2 IS NULL OR destination=?2) ORDER BY first_seen_at, destination",
      [&](SqliteStatement& q) {
        q.bind(1, name);
        bind_destination_filter(q, 2, destination);
      });
}

Result<std::vector<OutboxEntry>> OutboxStore::in_state(OutboxState state,
                                                       const std::string* destination) {
  std::lock_guard lock(mu_);
  return select("WHERE state=?1 AND (?2 IS NULL OR destination=?2) ORDER BY updated_at",
                [&](SqliteStatement& q) {
                  q.bind(1, to_string(state));
                  bind_destination_filter(q, 2, destination);
                });
}

Result<std::vector<std::pair<OutboxState, int64_t>>> OutboxStore::counts(
    const std::string* destination) {
  std::lock_guard lock(mu_);
  if (auto st = commit_batch(); !st) return st.error();
  std::vector<std::pair<OutboxState, int64_t>> out;
  for (const auto state : kStates) {
    auto q =
        db_.prepare("SELECT count(*) FROM files WHERE state=?1 AND (?2 IS NULL OR destination=?2)");
    if (!q) return q.error();
    q->bind(1, to_string(state));
    bind_destination_filter(*q, 2, destination);
    auto row = q->step();
    if (!row) return row.error();
    out.emplace_back(state, *row ? q->column_int(0) : 0);
  }
  return out;
}

Result<std::vector<DestinationStateCount>> OutboxStore::counts_by_destination() {
  std::lock_guard lock(mu_);
  if (auto st = commit_batch(); !st) return st.error();
  auto q = db_.prepare(
      "SELECT destination, state, count(*) FROM files GROUP BY destination, state "
      "ORDER BY destination");
  if (!q) return q.error();
  std::vector<DestinationStateCount> out;
  for (;;) {
    auto row = q->step();
    if (!row) return row.error();
    if (!*row) break;
    std::string destination = q->column_text(0);
    if (out.empty() || out.back().destination != destination) {  // every state, zero or not
      for (const auto state : kStates) out.push_back(DestinationStateCount{destination, state, 0});
    }
    const OutboxState state = parse_state(q->column_text(1));
    for (auto it = out.end() - kStates.size(); it != out.end(); ++it) {
      if (it->state == state) it->count = q->column_int(2);
    }
  }
  return out;
}

Result<std::vector<OutboxEntry>> OutboxStore::recent_errors(int64_t limit,
                                                            const std::string* destination) {
  std::lock_guard lock(mu_);
  return select(
      "WHERE state IN ('failed','quarantined') AND (?1 IS NULL OR destination=?1) "
      "ORDER BY updated_at DESC LIMIT ?2",
      [&](SqliteStatement& q) {
        bind_destination_filter(q, 1, destination);
        q.bind(2, std::max<int64_t>(0, limit));
      });
}

Result<int64_t> OutboxStore::forget(const std::string& name, const std::string* destination) {
  std::lock_guard lock(mu_);
  if (auto st = commit_batch(); !st) return st.error();
  int64_t count = 0;
  auto st = db_.transaction([&]() -> Status {
    auto q =
        db_.prepare("SELECT count(*) FROM files WHERE name=?1 AND (?2 IS NULL OR destination=?2)");
    if (!q) return q.error();
    q->bind(1, name);
    bind_destination_filter(*q, 2, destination);
    auto row = q->step();
    if (!row) return row.error();
    count = *row ? q->column_int(0) : 0;
    auto del = db_.prepare("DELETE FROM files WHERE name=?1 AND (?2 IS NULL OR destination=?2)");
    if (!del) return del.error();
    del->bind(1, name);
    bind_destination_filter(*del, 2, destination);
    return del->run();
  });
  if (!st) return st.error();
  return count;
}

Status OutboxStore::forget_version(const std::string& name, const std::string& sha256,
                                   const std::string& destination) {
  std::lock_guard lock(mu_);
  static const std::string kSql = "DELETE FROM files WHERE name=?1 AND sha256=?2 AND destination=?3";
  return write_now(
      kSql, [&](SqliteStatement& q) { q.bind(1, name).bind(2, sha256).bind(3, destination); });
}

Result<std::vector<std::string>> OutboxStore::integrity_check() {
  std::lock_guard lock(mu_);
  if (auto st = commit_batch(); !st) return st.error();
  auto q = db_.prepare("PRAGMA integrity_check");
  if (!q) return q.error();
  std::vector<std::string> out;
  for (;;) {
    auto row = q->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(q->column_text(0));
  }
  return out;
}

}  // namespace transfer
