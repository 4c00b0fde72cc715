#pragma once
// Thin RAII over SQLite: one connection, prepared statements with bind only, WAL, busy timeout,
// schema migrations through PRAGMA user_version. Not thread-safe: callers serialise access.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "transfer/result.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace transfer {

class SqliteStatement {
 public:
  // `in_use` set: the statement is borrowed from its connection's cache and goes back to it
  // (reset, bindings cleared) instead of being finalised.
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, bool* in_use = nullptr)
      : db_(db), stmt_(stmt), in_use_(in_use) {}
  SqliteStatement(SqliteStatement&&) noexcept;
  SqliteStatement& operator=(SqliteStatement&&) noexcept;
  ~SqliteStatement();

  SqliteStatement& bind(int index, std::string_view text);
  SqliteStatement& bind(int index, int64_t value);
  SqliteStatement& bind(int index, double value);
  SqliteStatement& bind(int index, std::nullptr_t);
  SqliteStatement& bind_optional(int index, const std::optional<std::string>& text);

  // Steps once: true when a row is available, false when done.
  Result<bool> step();
  Status run();  // steps to completion, then resets
  void reset();

  int64_t column_int(int col) const;
  double column_double(int col) const;
  std::string column_text(int col) const;
  bool column_is_null(int col) const;

 private:
  void release();

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
};

class SqliteDb {
 public:
  // Opens (creating) the database at `path`, checks it (PRAGMA quick_check) and applies
  // `migrations` in order: migration i (0-based) takes the schema from user_version i to i+1,
  // each in its own transaction. A file that is not a database or fails the check gives
  // kCorruptDatabase; the caller decides (see move_database_aside), nothing is reset here.
  static Result<SqliteDb> open(const std::string& path, const std::vector<std::string>& migrations);
  // Opens an existing database read-only, for a second process beside the one that owns it: no
  // creation, no check, no migration, no write lock ever taken.
  static Result<SqliteDb> open_read_only(const std::string& path);
  SqliteDb(SqliteDb&&) noexcept;
  SqliteDb& operator=(SqliteDb&&) noexcept;
  ~SqliteDb();

  // A statement for `sql`, compiled once per connection and kept (the stores run the same few
  // statements for every file: parsing them each time was most of SQLite's share of the CPU).
  // A statement already in use (a query open while the same one runs again) gets a fresh copy.
  Result<SqliteStatement> prepare(std::string_view sql);
  // Runs one statement or a script (several statements; not cached).
  Status exec(const std::string& sql);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back when it fails.
  template <typename F>
  Status transaction(F&& body) {
    if (auto st = run("BEGIN IMMEDIATE"); !st) return st;
    Status st = body();
    if (st) st = run("COMMIT");
    if (!st) (void)run("ROLLBACK");
    return st;
  }
  // Takes and releases the write lock, waiting at most timeout_ms for it: whether a write could
  // happen now (readiness checks). The usual busy timeout applies again afterwards.
  Status probe_write(int timeout_ms);
  // PRAGMA data_version: changes when another connection commits (to notice an operator's edit).
  Result<int64_t> data_version();
  // Rows the last INSERT, UPDATE or DELETE changed (sqlite3_changes64).
  int64_t changes() const;

  const std::string& path() const { return path_; }
  std::string last_error() const;

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status run(std::string_view sql);  // one statement, through the cache
  struct Close { void operator()(sqlite3* db) const; };
  struct Finalize { void operator()(sqlite3_stmt* stmt) const; };
  struct Cached {
    std::unique_ptr<sqlite3_stmt, Finalize> stmt;
    bool in_use = false;
  };
  static constexpr size_t kCacheSize = 64;
  std::unique_ptr<sqlite3, Close> db_;
  std::string path_;
  // After db_: destroyed (statements finalised) before the connection closes. Node-based, so
  // the in_use flags handed out stay put.
  struct SqlHash {  // looks statements up by string_view, no copy of the SQL per call
    using is_transparent = void;
    size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
  };
  std::unordered_map<std::string, Cached, SqlHash, std::equal_to<>> cache_;
};

// Renames a damaged database (and its -wal and -shm files) to "<path>.corrupt-<UTC time>" so a
// fresh one can be created beside it; returns the new name of the main file.
Result<std::string> move_database_aside(const std::string& path);

// open(path); when that finds the database damaged, moves it aside, tells on_moved(why, where)
// and opens a new one. Never resets silently: the caller logs what on_moved hears.
template <typename Open, typename OnMoved>
auto open_moving_aside_if_damaged(const std::string& path, Open open, OnMoved on_moved)
    -> decltype(open(path)) {
  auto first = open(path);
  if (first || first.error().code != ErrorCode::kCorruptDatabase) return first;
  auto aside = move_database_aside(path);
  if (!aside) return make_error(ErrorCode::kDatabase, first.error().message + "; " + aside.error().message);
  on_moved(first.error().message, *aside);
  return open(path);
}

}  // namespace transfer
