#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include "transfer/outbox_store.hpp"
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
  ASSERT_TRUE(store->mark_failed("a.json", "h1", "connection refused").ok());
  auto failed = **store->find("a.json", "h1");
  EXPECT_EQ(failed.state, OutboxState::kFailed);
  EXPECT_EQ(failed.attempts, 1);
  EXPECT_EQ(failed.last_error, "connection refused");
  ASSERT_TRUE(store->mark_delivered("a.json", "h1", 201, "{\"msg\":\"ok\"}").ok());
  auto done = **store->find("a.json", "h1");
  EXPECT_EQ(done.state, OutboxState::kDelivered);
  EXPECT_EQ(done.attempts, 2);
  EXPECT_EQ(done.receiver_status, 201);
  EXPECT_FALSE(done.delivered_at.empty());
  // New content of the same name is a new row.
  ASSERT_TRUE(store->record_seen("a.json", "h2", 11, 333).ok());
  ASSERT_TRUE(store->mark_rejected("a.json", "h2", "invalid JSON").ok());
  EXPECT_EQ(store->all()->size(), 2U);
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
  EXPECT_EQ(sqlite3_column_int(st, 0), 1);
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
  EXPECT_FALSE(OutboxStore::open(dir / "sender.db").ok());
}

TEST(UploadLedger, RecordsAcceptedAndRejected) {
  TempDir dir;
  auto ledger = UploadLedger::open(dir / "receiver.db");
  ASSERT_TRUE(ledger.ok());
  ASSERT_TRUE(ledger->record_accepted("books", "/out/books.xml", 42, "abc", "127.0.0.1:1").ok());
  ASSERT_TRUE(ledger->record_rejected("bad", 422, "invalid token", "127.0.0.1:2").ok());
  auto rows = ledger->recent(10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2U);
  EXPECT_EQ((*rows)[0].name, "bad");
  EXPECT_EQ((*rows)[0].status, 422);
  EXPECT_EQ((*rows)[0].reason, "invalid token");
  EXPECT_EQ((*rows)[1].outcome, "accepted");
  EXPECT_EQ((*rows)[1].bytes, 42);
  EXPECT_EQ((*rows)[1].sha256, "abc");
}

}  // namespace
}  // namespace transfer
