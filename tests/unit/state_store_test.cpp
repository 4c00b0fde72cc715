#include <gtest/gtest.h>
#include <sqlite3.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

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
  EXPECT_EQ(sqlite3_column_int(st, 0), 2);
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

}  // namespace
}  // namespace transfer
