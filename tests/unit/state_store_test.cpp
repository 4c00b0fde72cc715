#include <gtest/gtest.h>
#include <sqlite3.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "outbox_store.hpp"
#include "transfer/sqlite_db.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/transfer-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TEST(OutboxStore, TracksAFileVersionThroughItsStates) {
  TempDir dir;
  auto store = OutboxStore::open(dir / "sender.db");
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_FALSE(store->find("a.json", "h1")->has_value());
  ASSERT_TRUE(store->record_seen("a.json", "h1", 10, 111).ok());
  ASSERT_TRUE(store->record_seen("a.json", "h1", 10, 222).ok());  // seen again: still one row
  EXPECT_EQ((*store->find("a.json", "h1"))->state, OutboxState::kPending);
  ASSERT_TRUE(store->mark_failed("a.json", "h1", FailureRecord{"connection refused", 0, "", 1000.5, 1002}).ok());
  ASSERT_TRUE(store->mark_failed("a.json", "h1", FailureRecord{"503", 503, "busy", 1003, 1007}).ok());
  auto failed = **store->find("a.json", "h1");
  EXPECT_EQ(failed.state, OutboxState::kFailed);
  EXPECT_EQ(failed.attempts, 2);
  EXPECT_EQ(failed.last_error, "503");
  EXPECT_EQ(failed.receiver_status, 503);
  EXPECT_DOUBLE_EQ(failed.first_failure_unix, 1000.5);  // kept from the first failure
  EXPECT_DOUBLE_EQ(failed.next_attempt_unix, 1007);
  ASSERT_TRUE(store->mark_delivered("a.json", "h1", 201, "{\"msg\":\"ok\"}").ok());
  auto done = **store->find("a.json", "h1");
  EXPECT_EQ(done.state, OutboxState::kDelivered);
  EXPECT_EQ(done.attempts, 3);
  EXPECT_EQ(done.receiver_status, 201);
  EXPECT_FALSE(done.delivered_at.empty());
  // New content of the same name is a new row.
  ASSERT_TRUE(store->record_seen("a.json", "h2", 11, 333).ok());
  ASSERT_TRUE(store->mark_quarantined("a.json", "h2", FailureRecord{"invalid JSON", 0, "", 5, 0}, "/q/a.json").ok());
  auto q = **store->find("a.json", "h2");
  EXPECT_EQ(q.state, OutboxState::kQuarantined);
  EXPECT_EQ(q.quarantine_path, "/q/a.json");
  EXPECT_EQ(store->all()->size(), 2U);
  EXPECT_EQ(store->settled()->size(), 2U);
  ASSERT_TRUE(store->reset("a.json", "h2").ok());  // put back by an operator
  q = **store->find("a.json", "h2");
  EXPECT_EQ(q.state, OutboxState::kPending);
  EXPECT_EQ(q.attempts, 0);
  EXPECT_TRUE(q.quarantine_path.empty());
}

// What another process (an operator's command, a restart) sees of a store's rows.
size_t rows_seen_from_outside(const std::string& db_path) {
  auto other = SqliteDb::open_read_only(db_path);
  if (!other.ok()) return SIZE_MAX;
  auto q = other->prepare("SELECT count(*) FROM files");
  if (!q.ok() || !q->step().ok()) return SIZE_MAX;
  return static_cast<size_t>(q->column_int(0));
}

TEST(OutboxStore, GroupCommitHoldsStepsUntilTheWindowOrAFlush) {
  TempDir dir;
  const std::string db = dir / "sender.db";
  {
    auto store = OutboxStore::open(db);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store->set_group_commit(std::chrono::hours(1));
    ASSERT_TRUE(store->record_seen("a.json", "h1", 1, 1).ok());
    ASSERT_TRUE(store->record_seen("b.json", "h2", 1, 1).ok());
    ASSERT_TRUE(store->mark_delivered("a.json", "h1", 201, "{}").ok());
    ASSERT_TRUE(store->mark_failed("b.json", "h2", FailureRecord{"refused", 0, "", 1, 2}).ok());
    EXPECT_EQ(rows_seen_from_outside(db), 0U);  // queued, not written
    {  // and the write lock is free meanwhile: a readiness probe or an operator gets it at once
      auto second = OutboxStore::open(db);
      ASSERT_TRUE(second.ok());
      EXPECT_TRUE(second->probe_write(0).ok());
    }
    ASSERT_TRUE(store->flush_if_due().ok());     // an hour has not passed
    EXPECT_FALSE(store->find("other.json", "h1")->has_value());  // no queued step of it
    EXPECT_EQ(rows_seen_from_outside(db), 0U);
    ASSERT_TRUE(store->flush().ok());
    EXPECT_EQ(rows_seen_from_outside(db), 2U);
    ASSERT_TRUE(store->flush().ok());  // nothing queued: a no-op

    // A read sees the queued steps: find() of a file with one, and the lists.
    ASSERT_TRUE(store->mark_delivered("b.json", "h2", 201, "{}").ok());
    EXPECT_EQ((*store->find("a.json", "h1"))->state, OutboxState::kDelivered);
    EXPECT_EQ((*store->find("b.json", "h2"))->state, OutboxState::kDelivered);
    EXPECT_EQ((*store->find("b.json", "h2"))->attempts, 2);
    ASSERT_TRUE(store->record_seen("z.json", "h0", 1, 1).ok());
    EXPECT_EQ(store->all()->size(), 3U);
    EXPECT_EQ(rows_seen_from_outside(db), 3U);
    ASSERT_EQ(*store->forget("z.json"), 1);

    // A write that commits at once takes the open batch with it.
    ASSERT_TRUE(store->record_seen("c.json", "h3", 1, 1).ok());
    EXPECT_EQ(rows_seen_from_outside(db), 2U);
    ASSERT_TRUE(store->mark_quarantined("c.json", "h3", FailureRecord{"bad", 0, "", 1, 0}, "").ok());
    EXPECT_EQ(rows_seen_from_outside(db), 3U);
    // So does forget, and closing the store.
    ASSERT_TRUE(store->record_seen("d.json", "h4", 1, 1).ok());
    ASSERT_EQ(*store->forget("a.json"), 1);
    EXPECT_EQ(rows_seen_from_outside(db), 3U);  // d in, a out
    ASSERT_TRUE(store->record_seen("e.json", "h5", 1, 1).ok());
  }  // the store closes
  EXPECT_EQ(rows_seen_from_outside(db), 4U);

  // A zero window (the default, operator commands) commits every write; a window that has
  // passed commits at the next write.
  auto again = OutboxStore::open(db);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(again->record_seen("f.json", "h6", 1, 1).ok());
  EXPECT_EQ(rows_seen_from_outside(db), 5U);
  again->set_group_commit(std::chrono::milliseconds(1));
  ASSERT_TRUE(again->record_seen("g.json", "h7", 1, 1).ok());
  const auto opened = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - opened < std::chrono::milliseconds(2)) {
  }
  EXPECT_EQ(rows_seen_from_outside(db), 5U);
  ASSERT_TRUE(again->record_seen("h.json", "h8", 1, 1).ok());  // the batch is 2 ms old: it goes
  EXPECT_EQ(rows_seen_from_outside(db), 7U);
  ASSERT_TRUE(again->record_seen("i.json", "h9", 1, 1).ok());
  const auto queued = std::chrono::steady_clock::now();  // after the commit above, however slow
  while (std::chrono::steady_clock::now() - queued < std::chrono::milliseconds(2)) {
  }
  ASSERT_TRUE(again->flush_if_due().ok());
  EXPECT_EQ(rows_seen_from_outside(db), 8U);
}

TEST(OutboxStore, ANewBatchIsAnnouncedAndFallsDueAWindowAfterItsFirstStep) {
  TempDir dir;
  auto store = OutboxStore::open(dir / "sender.db");
  ASSERT_TRUE(store.ok());
  int opened = 0;
  store->set_group_commit(std::chrono::milliseconds(25), [&] { ++opened; });
  EXPECT_FALSE(store->batch_due().has_value());  // nothing queued: nothing to wake for
  const auto before = std::chrono::steady_clock::now();
  ASSERT_TRUE(store->record_seen("a.json", "h1", 1, 1).ok());
  const auto after = std::chrono::steady_clock::now();
  ASSERT_TRUE(store->mark_delivered("a.json", "h1", 201, "{}").ok());
  const auto due = store->batch_due();
  ASSERT_TRUE(due.has_value());
  EXPECT_GE(*due, before + std::chrono::milliseconds(25));
  EXPECT_LE(*due, after + std::chrono::milliseconds(25));
  EXPECT_EQ(opened, 1);  // once per batch, for its first step
  ASSERT_TRUE(store->flush().ok());
  EXPECT_FALSE(store->batch_due().has_value());
  ASSERT_TRUE(store->record_seen("b.json", "h2", 1, 1).ok());
  EXPECT_EQ(opened, 2);
}

TEST(OutboxStore, ACrashInsideABatchLosesOnlyThatBatch) {
  TempDir dir;
  const std::string db = dir / "sender.db";
  {
    auto store = OutboxStore::open(db);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(store->record_seen("kept.json", "h1", 1, 1).ok());
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // writes a batch and dies without committing it
    auto store = OutboxStore::open(db);
    if (!store.ok()) ::_exit(3);
    store->set_group_commit(std::chrono::hours(1));
    for (int i = 0; i < 50; ++i) {
      if (!store->record_seen("lost" + std::to_string(i), "h", 1, 1).ok()) ::_exit(4);
    }
    if (!store->mark_delivered("kept.json", "h1", 201, "{}").ok()) ::_exit(5);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto store = OutboxStore::open(db);  // opens cleanly (quick_check) with the committed state
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(store->all()->size(), 1U);
  EXPECT_EQ((*store->find("kept.json", "h1"))->state, OutboxState::kPending);  // sent again: safe
  EXPECT_EQ(*store->integrity_check(), std::vector<std::string>{"ok"});
}

TEST(OutboxStore, IdempotencyKeyDependsOnNameAndContent) {
  EXPECT_EQ(idempotency_key("a.json", "h"), idempotency_key("a.json", "h"));
  EXPECT_NE(idempotency_key("a.json", "h"), idempotency_key("b.json", "h"));
  EXPECT_NE(idempotency_key("a.json", "h"), idempotency_key("a.json", "g"));
  EXPECT_EQ(idempotency_key("a.json", "h").size(), 64U);
}

TEST(OutboxStore, MigratesASchemaOneDatabase) {
  TempDir dir;
  sqlite3* db = nullptr;
  sqlite3_open((dir / "sender.db").c_str(), &db);
  const char* v1 =
      "CREATE TABLE files (name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, "
      "mtime_ns INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
      "last_error TEXT, first_seen_at TEXT NOT NULL DEFAULT 'x', updated_at TEXT NOT NULL DEFAULT 'x', "
      "delivered_at TEXT, receiver_status INTEGER, receiver_answer TEXT, PRIMARY KEY (name, sha256));"
      "INSERT INTO files (name, sha256, size, mtime_ns, state) VALUES ('a.json','h',1,2,'delivered'),"
      "('b.json','h',1,2,'rejected');"
      "PRAGMA user_version=1;";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = OutboxStore::open(dir / "sender.db");
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ((*store->find("a.json", "h"))->state, OutboxState::kDelivered);
  EXPECT_EQ((*store->find("b.json", "h"))->state, OutboxState::kQuarantined);
}

TEST(OutboxStore, DestinationsHoldIndependentStatesForOneFileVersion) {
  TempDir dir;
  auto store = OutboxStore::open(dir / "sender.db");
  ASSERT_TRUE(store.ok()) << store.error().message;
  const std::string partner = "partner-a";
  const std::string archive = "archive";
  for (const std::string& d : {std::string(kDefaultDestination), partner, archive}) {
    ASSERT_TRUE(store->record_seen("a.json", "h1", 10, 111, d).ok()) << d;
  }
  ASSERT_TRUE(store->record_seen("b.json", "h2", 5, 222).ok());  // the default destination only
  ASSERT_TRUE(store->mark_delivered("a.json", "h1", 201, "{\"msg\":\"ok\"}").ok());
  ASSERT_TRUE(
      store->mark_failed("a.json", "h1", FailureRecord{"refused", 0, "", 1000.5, 1002}, partner)
          .ok());
  ASSERT_TRUE(
      store->mark_failed("a.json", "h1", FailureRecord{"503", 503, "busy", 1003, 1009}, partner)
          .ok());

  auto delivered = **store->find("a.json", "h1");  // the default destination
  EXPECT_EQ(delivered.destination, kDefaultDestination);
  EXPECT_EQ(delivered.state, OutboxState::kDelivered);
  EXPECT_EQ(delivered.attempts, 1);
  EXPECT_DOUBLE_EQ(delivered.first_failure_unix, 0);
  auto failed = **store->find("a.json", "h1", partner);
  EXPECT_EQ(failed.destination, partner);
  EXPECT_EQ(failed.state, OutboxState::kFailed);
  EXPECT_EQ(failed.attempts, 2);
  EXPECT_EQ(failed.last_error, "503");
  EXPECT_EQ(failed.receiver_answer, "busy");
  EXPECT_DOUBLE_EQ(failed.first_failure_unix, 1000.5);
  EXPECT_DOUBLE_EQ(failed.next_attempt_unix, 1009);
  auto waiting = **store->find("a.json", "h1", archive);
  EXPECT_EQ(waiting.state, OutboxState::kPending);
  EXPECT_EQ(waiting.attempts, 0);
  EXPECT_FALSE(store->find("b.json", "h2", partner)->has_value());
  EXPECT_FALSE(store->find("a.json", "h1", "unknown")->has_value());

  // The lists: every destination's rows, or one destination's.
  EXPECT_EQ(store->all()->size(), 4U);
  EXPECT_EQ(store->all(&partner)->size(), 1U);
  EXPECT_EQ(store->by_name("a.json")->size(), 3U);
  ASSERT_EQ(store->by_name("a.json", &archive)->size(), 1U);
  EXPECT_EQ(store->by_name("a.json", &archive)->front().destination, archive);
  EXPECT_EQ(store->settled()->size(), 1U);
  EXPECT_TRUE(store->settled(&partner)->empty());
  EXPECT_EQ(store->in_state(OutboxState::kPending)->size(), 2U);
  EXPECT_EQ(store->in_state(OutboxState::kPending, &archive)->size(), 1U);
  ASSERT_EQ(store->recent_errors(10)->size(), 1U);
  EXPECT_EQ(store->recent_errors(10)->front().destination, partner);
  EXPECT_TRUE(store->recent_errors(10, &archive)->empty());
  const std::vector<std::pair<OutboxState, int64_t>> all_counts = {{OutboxState::kPending, 2},
                                                                   {OutboxState::kFailed, 1},
                                                                   {OutboxState::kDelivered, 1},
                                                                   {OutboxState::kQuarantined, 0}};
  EXPECT_EQ(*store->counts(), all_counts);
  const std::vector<std::pair<OutboxState, int64_t>> partner_counts = {
      {OutboxState::kPending, 0},
      {OutboxState::kFailed, 1},
      {OutboxState::kDelivered, 0},
      {OutboxState::kQuarantined, 0}};
  EXPECT_EQ(*store->counts(&partner), partner_counts);
  auto by_destination = store->counts_by_destination();
  ASSERT_TRUE(by_destination.ok());
  std::vector<std::tuple<std::string, OutboxState, int64_t>> flat;
  for (const auto& c : *by_destination) flat.emplace_back(c.destination, c.state, c.count);
  const std::vector<std::tuple<std::string, OutboxState, int64_t>> expected = {
      {"archive", OutboxState::kPending, 1},     {"archive", OutboxState::kFailed, 0},
      {"archive", OutboxState::kDelivered, 0},   {"archive", OutboxState::kQuarantined, 0},
      {"default", OutboxState::kPending, 1},     {"default", OutboxState::kFailed, 0},
      {"default", OutboxState::kDelivered, 1},   {"default", OutboxState::kQuarantined, 0},
      {"partner-a", OutboxState::kPending, 0},   {"partner-a", OutboxState::kFailed, 1},
      {"partner-a", OutboxState::kDelivered, 0}, {"partner-a", OutboxState::kQuarantined, 0}};
  EXPECT_EQ(flat, expected);

  // Quarantine and reset touch one destination.
  ASSERT_TRUE(
      store->mark_quarantined("a.json", "h1", FailureRecord{"413", 413, "", 1010, 0}, "", partner)
          .ok());
  EXPECT_EQ((*store->find("a.json", "h1", partner))->state, OutboxState::kQuarantined);
  EXPECT_EQ((*store->find("a.json", "h1"))->state, OutboxState::kDelivered);
  ASSERT_TRUE(store->reset("a.json", "h1", partner).ok());
  EXPECT_EQ((*store->find("a.json", "h1", partner))->state, OutboxState::kPending);
  EXPECT_EQ((*store->find("a.json", "h1"))->state, OutboxState::kDelivered);

  // Group commit keys queued steps by destination: find() of a destination with a queued step
  // sees it, and a queued step of another destination changes nothing of this one.
  store->set_group_commit(std::chrono::hours(1));
  ASSERT_TRUE(store->mark_delivered("a.json", "h1", 201, "{}", archive).ok());
  EXPECT_EQ((*store->find("a.json", "h1"))->state, OutboxState::kDelivered);
  EXPECT_EQ((*store->find("a.json", "h1", partner))->state, OutboxState::kPending);
  EXPECT_TRUE(store->batch_due().has_value());  // still queued: no step of those destinations
  EXPECT_EQ((*store->find("a.json", "h1", archive))->state, OutboxState::kDelivered);
  EXPECT_FALSE(store->batch_due().has_value());  // written to answer
  store->set_group_commit(std::chrono::milliseconds(0));

  // forget: one destination's rows, or every destination's.
  EXPECT_EQ(*store->forget("a.json", &partner), 1);
  EXPECT_FALSE(store->find("a.json", "h1", partner)->has_value());
  EXPECT_TRUE(store->find("a.json", "h1")->has_value());
  EXPECT_EQ(*store->forget("a.json", &partner), 0);
  EXPECT_EQ(*store->forget("a.json"), 2);  // default and archive
  EXPECT_TRUE(store->by_name("a.json")->empty());
  EXPECT_EQ(store->all()->size(), 1U);  // b.json
}

// THE MIGRATION FIXTURE: the sender.db schema of user_version 2 exactly as the code made it up to
// commit 17915b9 (shared/src/outbox_store.cpp, unchanged through 1147dca, which moved the file to
// sender/src): SqliteDb::open runs each migration in BEGIN IMMEDIATE ... PRAGMA user_version=N;
// COMMIT, in WAL mode. Do not edit: it stands for databases already in the field.
constexpr const char* kSchemaV2 = R"sql(
PRAGMA journal_mode=WAL;
BEGIN IMMEDIATE;
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
CREATE INDEX files_state ON files (state);
PRAGMA user_version=1;
COMMIT;
BEGIN IMMEDIATE;
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
CREATE INDEX files_name ON files (name);
PRAGMA user_version=2;
COMMIT;
)sql";

// The statements that code wrote each step with (kNow spelled out), as of the same commit.
constexpr const char* kV2RecordSeen =
    "INSERT INTO files (name, sha256, size, mtime_ns, state) VALUES (?1, ?2, ?3, ?4, 'pending') "
    "ON CONFLICT (name, sha256) DO UPDATE SET mtime_ns=excluded.mtime_ns, size=excluded.size";
constexpr const char* kV2MarkDelivered =
    "UPDATE files SET state='delivered', attempts=attempts+1, last_error=NULL, receiver_status=?3, "
    "receiver_answer=nullif(?4,''), next_attempt_at=0, "
    "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ','now'), "
    "delivered_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE name=?1 AND sha256=?2";
constexpr const char* kV2MarkFailed =
    "UPDATE files SET state='failed', attempts=attempts+1, last_error=?3, "
    "receiver_status=nullif(?4,0), receiver_answer=nullif(?5,''), "
    "first_failure_at=coalesce(first_failure_at, ?6), next_attempt_at=?7, "
    "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE name=?1 AND sha256=?2";
constexpr const char* kV2MarkQuarantined =
    "UPDATE files SET state='quarantined', last_error=?3, receiver_status=nullif(?4,0), "
    "receiver_answer=nullif(?5,''), first_failure_at=coalesce(first_failure_at, ?6), "
    "next_attempt_at=0, quarantine_path=nullif(?7,''), "
    "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE name=?1 AND sha256=?2";

using SqlValue = std::variant<std::string, int64_t, double>;

// Runs one statement with ?1..?N bound to `values`; the SQLite result code of the last step.
int run_bound(sqlite3* db, const char* sql, const std::vector<SqlValue>& values) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) return sqlite3_errcode(db);
  for (size_t i = 0; i < values.size(); ++i) {
    const int index = static_cast<int>(i) + 1;
    if (const auto* text = std::get_if<std::string>(&values[i])) {
      sqlite3_bind_text(st, index, text->c_str(), static_cast<int>(text->size()), SQLITE_TRANSIENT);
    } else if (const auto* integer = std::get_if<int64_t>(&values[i])) {
      sqlite3_bind_int64(st, index, *integer);
    } else {
      sqlite3_bind_double(st, index, std::get<double>(values[i]));
    }
  }
  const int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc;
}

// Every row of `files` as SQL literals (quote(): NULL, 'text', 12, 1000.5 stay distinct), by key.
std::vector<std::string> dump_files(const std::string& path, const std::string& extra_column = "") {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return rows;
  }
  const std::string sql =
      "SELECT quote(name)||','||quote(sha256)||','||quote(size)||','||quote(mtime_ns)||','||"
      "quote(state)||','||quote(attempts)||','||quote(last_error)||','||quote(first_seen_at)||','||"
      "quote(updated_at)||','||quote(delivered_at)||','||quote(receiver_status)||','||"
      "quote(receiver_answer)||','||quote(first_failure_at)||','||quote(next_attempt_at)||','||"
      "quote(quarantine_path)" +
      (extra_column.empty() ? "" : "||','||quote(" + extra_column + ")") +
      " FROM files ORDER BY name, sha256";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      rows.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

int user_version(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  int version = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    version = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return version;
}

std::vector<std::string> index_names(const std::string& path) {
  std::vector<std::string> names;
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='files' "
                         "AND sql IS NOT NULL ORDER BY name",
                         -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return names;
}

TEST(OutboxStore, MigratesASchemaTwoDatabaseToTheDefaultDestinationResendingNothing) {
  TempDir dir;
  const std::string path = dir / "sender.db";
  const std::string receipt = R"({"status":"delivered","sha256":"c0ffee","output":"d.xml"})";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, kSchemaV2, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    struct Step {
      const char* sql;
      std::vector<SqlValue> values;
    };
    const std::vector<Step> steps = {
        // delivered after one transient failure, with the receiver's receipt
        {kV2RecordSeen, {"d.json", "h1", int64_t{2048}, int64_t{1700000000123456789}}},
        {kV2MarkFailed, {"d.json", "h1", "connection refused", int64_t{0}, "", 1000.5, 1002.0}},
        {kV2MarkDelivered, {"d.json", "h1", int64_t{201}, receipt}},
        // an older version of the same name, quarantined in place (no quarantine path)
        {kV2RecordSeen, {"d.json", "h0", int64_t{7}, int64_t{1}}},
        {kV2MarkQuarantined,
         {"d.json", "h0", "invalid JSON at byte 3", int64_t{0}, "", 900.25, ""}},
        // failed twice, waiting for its next attempt
        {kV2RecordSeen, {"f.json", "h2", int64_t{10}, int64_t{2}}},
        {kV2MarkFailed, {"f.json", "h2", "connection refused", int64_t{0}, "", 1000.5, 1002.0}},
        {kV2MarkFailed, {"f.json", "h2", "503", int64_t{503}, "busy", 1003.0, 1007.0}},
        // quarantined into the quarantine directory after a permanent refusal
        {kV2RecordSeen, {"q.json", "h3", int64_t{11}, int64_t{3}}},
        {kV2MarkQuarantined,
         {"q.json", "h3", "413 too large", int64_t{413}, "{\"error\":\"too large\"}", 1100.0,
          "/data/quarantine/q.json"}},
        // seen, not tried yet
        {kV2RecordSeen, {"p.json", "h4", int64_t{12}, int64_t{4}}},
    };
    for (const auto& step : steps) {
      ASSERT_EQ(run_bound(db, step.sql, step.values), SQLITE_DONE)
          << step.sql << ": " << sqlite3_errmsg(db);
    }
    ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  }
  ASSERT_EQ(user_version(path), 2);
  const auto before = dump_files(path);
  ASSERT_EQ(before.size(), 5U);

  std::vector<std::string> expected_after;  // every row, every field unchanged, for 'default'
  for (const auto& row : before) expected_after.push_back(row + ",'default'");
  const std::string partner = "partner-a";
  for (int open_count = 1; open_count <= 2; ++open_count) {  // the second open finds it migrated
    SCOPED_TRACE("open " + std::to_string(open_count));
    {
      auto store = OutboxStore::open(path);
      ASSERT_TRUE(store.ok()) << store.error().message;
      EXPECT_EQ(*store->integrity_check(), std::vector<std::string>{"ok"});

      auto delivered = store->find("d.json", "h1");  // the default destination: nothing to resend
      ASSERT_TRUE(delivered.ok() && delivered->has_value());
      EXPECT_EQ((*delivered)->destination, kDefaultDestination);
      EXPECT_EQ((*delivered)->state, OutboxState::kDelivered);
      EXPECT_EQ((*delivered)->attempts, 2);
      EXPECT_EQ((*delivered)->receiver_status, 201);
      EXPECT_EQ((*delivered)->receiver_answer, receipt);
      EXPECT_TRUE((*delivered)->last_error.empty());
      EXPECT_FALSE((*delivered)->delivered_at.empty());
      EXPECT_EQ((*delivered)->size, 2048);
      EXPECT_EQ((*delivered)->mtime_ns, 1700000000123456789);
      EXPECT_DOUBLE_EQ((*delivered)->first_failure_unix, 1000.5);

      auto failed = **store->find("f.json", "h2");
      EXPECT_EQ(failed.state, OutboxState::kFailed);
      EXPECT_EQ(failed.attempts, 2);
      EXPECT_EQ(failed.last_error, "503");
      EXPECT_EQ(failed.receiver_status, 503);
      EXPECT_EQ(failed.receiver_answer, "busy");
      EXPECT_DOUBLE_EQ(failed.first_failure_unix, 1000.5);
      EXPECT_DOUBLE_EQ(failed.next_attempt_unix, 1007);

      auto quarantined = **store->find("q.json", "h3");
      EXPECT_EQ(quarantined.state, OutboxState::kQuarantined);
      EXPECT_EQ(quarantined.quarantine_path, "/data/quarantine/q.json");
      EXPECT_EQ(quarantined.receiver_status, 413);
      EXPECT_EQ((*store->find("d.json", "h0"))->state, OutboxState::kQuarantined);
      EXPECT_TRUE((*store->find("d.json", "h0"))->quarantine_path.empty());
      EXPECT_EQ((*store->find("p.json", "h4"))->state, OutboxState::kPending);

      // Every row is the default destination's; another destination has none.
      const auto rows = store->all();
      ASSERT_TRUE(rows.ok());
      EXPECT_EQ(rows->size(), before.size());
      for (const auto& e : *rows) EXPECT_EQ(e.destination, kDefaultDestination) << e.name;
      EXPECT_EQ(store->all(&partner)->size(), 0U);
      EXPECT_FALSE(store->find("d.json", "h1", partner)->has_value());
      const auto partner_counts = store->counts(&partner);
      ASSERT_TRUE(partner_counts.ok());
      for (const auto& [state, count] : *partner_counts) EXPECT_EQ(count, 0) << to_string(state);
      const auto by_destination = store->counts_by_destination();
      ASSERT_TRUE(by_destination.ok());
      ASSERT_EQ(by_destination->size(), 4U);  // the four states of 'default'
      for (const auto& c : *by_destination) EXPECT_EQ(c.destination, kDefaultDestination);
    }
    EXPECT_EQ(user_version(path), 4);  // through 3 (destinations) to 4 (the XML mapping)
    EXPECT_EQ(dump_files(path, "destination"), expected_after);
    EXPECT_EQ(index_names(path),
              (std::vector<std::string>{"files_destination_state", "files_name", "files_state"}));
  }

  // The new key takes a second destination's row beside the migrated one.
  auto store = OutboxStore::open(path);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store->record_seen("d.json", "h1", 2048, 1, partner).ok());
  EXPECT_EQ((*store->find("d.json", "h1", partner))->state, OutboxState::kPending);
  EXPECT_EQ((*store->find("d.json", "h1"))->state, OutboxState::kDelivered);
}

TEST(OutboxStore, StateSurvivesReopenAndSchemaIsVersioned) {
  TempDir dir;
  {
    auto store = OutboxStore::open(dir / "sender.db");
    ASSERT_TRUE(store->record_seen("b.json", "h", 1, 1).ok());
    ASSERT_TRUE(store->mark_delivered("b.json", "h", 201, "").ok());
  }
  auto again = OutboxStore::open(dir / "sender.db");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again->find("b.json", "h"))->state, OutboxState::kDelivered);
  sqlite3* db = nullptr;
  sqlite3_open((dir / "sender.db").c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 4);
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(OutboxStore, RefusesADatabaseFromTheFuture) {
  TempDir dir;
  sqlite3* db = nullptr;
  sqlite3_open((dir / "sender.db").c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto store = OutboxStore::open(dir / "sender.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("newer"), std::string::npos);
}

TEST(OutboxStore, RefusesAFileThatIsNotADatabase) {
  TempDir dir;
  { std::ofstream(dir / "sender.db") << "this is not sqlite, just text that is long enough........"; }
  auto store = OutboxStore::open(dir / "sender.db");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kCorruptDatabase) << store.error().message;
}

TEST(SqliteDb, ADamagedDatabaseIsMovedAsideNeverReset) {
  TempDir dir;
  {
    auto store = OutboxStore::open(dir / "sender.db");
    ASSERT_TRUE(store.ok());
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->record_seen("f" + std::to_string(i), "h", 1, 1).ok());
  }
  {  // damage a page in the middle of the file
    std::fstream f(dir / "sender.db", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 100);
    f << std::string(3000, '\x5a');
  }
  std::vector<std::string> heard;
  auto store = open_moving_aside_if_damaged(
      dir / "sender.db", [](const std::string& p) { return OutboxStore::open(p); },
      [&](const std::string& why, const std::string& aside) { heard = {why, aside}; });
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_EQ(heard.size(), 2U);
  EXPECT_NE(heard[0].find("damaged"), std::string::npos) << heard[0];
  EXPECT_TRUE(fs::exists(heard[1])) << heard[1];           // the old file is kept for inspection
  EXPECT_NE(heard[1].find("sender.db.corrupt-"), std::string::npos);
  EXPECT_TRUE(store->all()->empty());                      // and a new one is in its place
}

// Statements are compiled once per connection and reused: a reused one starts clean (no old
// bindings, no half-read rows), and the same SQL run again while it is open gets its own copy.
TEST(SqliteDb, CachedStatementsStartCleanAndNest) {
  TempDir dir;
  auto db = SqliteDb::open(dir / "t.db", {"CREATE TABLE t(v INTEGER)"});
  ASSERT_TRUE(db.ok()) << db.error().message;
  for (int64_t v = 1; v <= 3; ++v) {
    auto ins = db->prepare("INSERT INTO t(v) VALUES(?1)");
    ASSERT_TRUE(ins.ok());
    ASSERT_TRUE(ins->bind(1, v).run().ok());
  }
  {
    auto q = db->prepare("SELECT ?1");
    ASSERT_TRUE(q->bind(1, int64_t{5}).step().value());
    EXPECT_EQ(q->column_int(0), 5);
  }
  {
    auto q = db->prepare("SELECT ?1");  // the same statement again: the binding is gone
    ASSERT_TRUE(q->step().value());
    EXPECT_TRUE(q->column_is_null(0));
  }
  int64_t pairs = 0;
  auto outer = db->prepare("SELECT v FROM t ORDER BY v");
  while (outer->step().value()) {
    auto inner = db->prepare("SELECT v FROM t ORDER BY v");
    while (inner->step().value()) pairs += outer->column_int(0) * 10 + inner->column_int(0);
  }
  EXPECT_EQ(pairs, (10 + 20 + 30) * 3 + (1 + 2 + 3) * 3);
  ASSERT_TRUE(db->transaction([&] { return db->exec("INSERT INTO t(v) VALUES(4)"); }).ok());
  ASSERT_FALSE(db->transaction([&] { return db->exec("INSERT INTO nowhere VALUES(1)"); }).ok());
  auto n = db->prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(n->step().value());
  EXPECT_EQ(n->column_int(0), 4);  // the failed transaction was rolled back, the good one kept
}

TEST(UploadLedger, RecordsDeliveriesDuplicatesAndRejections) {
  TempDir dir;
  auto ledger = UploadLedger::open(dir / "receiver.db");
  ASSERT_TRUE(ledger.ok());
  Delivery d;
  d.output_path = "/out/books.xml";
  d.name = "books";
  d.sha256 = "abc";
  d.bytes = 42;
  d.key_index = 1;
  d.idempotency_key = "idem";
  ASSERT_TRUE(ledger->record_delivery(d, "127.0.0.1:1").ok());
  ASSERT_TRUE(ledger->record_duplicate(d, "127.0.0.1:1").ok());
  ASSERT_TRUE(ledger->record_rejected("bad", 422, "invalid token", "127.0.0.1:2").ok());
  auto found = ledger->find("books", "abc");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->output_path, "/out/books.xml");
  EXPECT_EQ((*found)->duplicates, 1);
  EXPECT_EQ((*found)->key_index, 1);
  EXPECT_FALSE(ledger->find("books", "other")->has_value());
  // Overwritten: the path's row now describes the new content only.
  Delivery replaced = d;
  replaced.sha256 = "def";
  replaced.bytes = 7;
  ASSERT_TRUE(ledger->record_delivery(replaced, "p").ok());
  EXPECT_FALSE(ledger->find("books", "abc")->has_value());
  EXPECT_EQ((*ledger->find_by_path("/out/books.xml"))->sha256, "def");
  auto rows = ledger->recent(10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 4U);
  EXPECT_EQ((*rows)[1].name, "bad");
  EXPECT_EQ((*rows)[1].status, 422);
  EXPECT_EQ((*rows)[1].reason, "invalid token");
  EXPECT_TRUE((*rows)[2].duplicate);
  EXPECT_EQ((*rows)[3].outcome, "accepted");
  EXPECT_EQ((*rows)[3].bytes, 42);
  EXPECT_EQ((*rows)[3].sha256, "abc");
}

TEST(UploadLedger, RefusalsAreCutAndKeptWithinTheirRetention) {
  TempDir dir;
  auto ledger = UploadLedger::open(dir / "receiver.db");
  ASSERT_TRUE(ledger.ok());
  Delivery d;
  d.output_path = "/out/books.xml";
  d.name = "books";
  d.sha256 = "abc";
  ASSERT_TRUE(ledger->record_delivery(d, "p").ok());
  ASSERT_TRUE(ledger->record_rejected(std::string(8000, 'n'), 422, std::string(9000, 'r'), "p").ok());
  auto rows = ledger->recent(1);
  ASSERT_EQ(rows->size(), 1U);
  EXPECT_EQ((*rows)[0].name.size(), kMaxRecordedNameBytes);
  EXPECT_EQ((*rows)[0].reason.size(), kMaxRecordedReasonBytes);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(ledger->record_rejected("bad" + std::to_string(i), 422, "invalid token", "p").ok());
  }
  auto gone = ledger->prune_refusals(30, 10);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(*gone, 21);  // 31 refusals, the newest 10 kept
  rows = ledger->recent(100);
  ASSERT_EQ(rows->size(), 11U);  // 10 refusals + the accepted upload
  EXPECT_EQ((*rows)[0].name, "bad29");
  EXPECT_EQ((*rows)[9].name, "bad20");
  EXPECT_EQ((*rows)[10].outcome, "accepted") << "accepted uploads are never pruned";
  EXPECT_EQ(*ledger->prune_refusals(30, 10), 0);
  EXPECT_TRUE(ledger->find("books", "abc")->has_value()) << "deliveries are never pruned";
}

TEST(OutboxStore, RecordsTheXmlMappingOfADelivery) {
  const auto dir = std::filesystem::temp_directory_path() / ("outbox_mapping." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    auto store = OutboxStore::open((dir / "sender.db").string());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(store->record_seen("a.json", "h", 1, 1, "x"));
    ASSERT_TRUE(store->record_seen("a.json", "h", 1, 1, "y"));
    ASSERT_TRUE(store->mark_delivered("a.json", "h", 201, "{}", "x", "XML_ROOT=order XML_PRETTY=off"));
    ASSERT_TRUE(store->mark_delivered("a.json", "h", 201, "{}", "y"));
    EXPECT_EQ((*store->find("a.json", "h", "x"))->xml_mapping, "XML_ROOT=order XML_PRETTY=off");
    EXPECT_EQ((*store->find("a.json", "h", "y"))->xml_mapping, "");  // none given: the defaults
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace transfer
