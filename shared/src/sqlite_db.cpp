#include "transfer/sqlite_db.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <utility>

#include "transfer/file_util.hpp"

namespace transfer {
namespace {
constexpr int kBusyTimeoutMs = 5000;  // how long a statement waits for another writer
}  // namespace

SqliteStatement::SqliteStatement(SqliteStatement&& o) noexcept
    : db_(o.db_), stmt_(std::exchange(o.stmt_, nullptr)), in_use_(std::exchange(o.in_use_, nullptr)) {}
SqliteStatement& SqliteStatement::operator=(SqliteStatement&& o) noexcept {
  if (this != &o) {
    release();
    db_ = o.db_;
    stmt_ = std::exchange(o.stmt_, nullptr);
    in_use_ = std::exchange(o.in_use_, nullptr);
  }
  return *this;
}
SqliteStatement::~SqliteStatement() { release(); }

void SqliteStatement::release() {
  if (stmt_ == nullptr) return;
  if (in_use_ != nullptr) {
    reset();
    *in_use_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
}

SqliteStatement& SqliteStatement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStatement& SqliteStatement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}
SqliteStatement& SqliteStatement::bind(int index, double value) {
  sqlite3_bind_double(stmt_, index, value);
  return *this;
}
SqliteStatement& SqliteStatement::bind(int index, std::nullptr_t) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}
SqliteStatement& SqliteStatement::bind_optional(int index, const std::optional<std::string>& text) {
  return text ? bind(index, std::string_view(*text)) : bind(index, nullptr);
}

Result<bool> SqliteStatement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return make_error(ErrorCode::kDatabase, std::string("SQLite: ") + sqlite3_errmsg(db_));
}

Status SqliteStatement::run() {
  for (;;) {
    auto r = step();
    if (!r) {
      reset();
      return r.error();
    }
    if (!*r) break;
  }
  reset();
  return ok_status();
}

void SqliteStatement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t SqliteStatement::column_int(int col) const { return sqlite3_column_int64(stmt_, col); }
double SqliteStatement::column_double(int col) const { return sqlite3_column_double(stmt_, col); }
std::string SqliteStatement::column_text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}
bool SqliteStatement::column_is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

void SqliteDb::Close::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void SqliteDb::Finalize::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

SqliteDb::SqliteDb(SqliteDb&&) noexcept = default;
SqliteDb& SqliteDb::operator=(SqliteDb&&) noexcept = default;
SqliteDb::~SqliteDb() = default;

std::string SqliteDb::last_error() const { return sqlite3_errmsg(db_.get()); }

Status SqliteDb::probe_write(int timeout_ms) {
  sqlite3_busy_timeout(db_.get(), timeout_ms);
  Status st = exec("BEGIN IMMEDIATE");
  if (st) st = exec("ROLLBACK");
  sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);
  return st;
}

Result<int64_t> SqliteDb::data_version() {
  auto q = prepare("PRAGMA data_version");
  if (!q) return q.error();
  auto row = q->step();
  if (!row) return row.error();
  if (!*row) return make_error(ErrorCode::kDatabase, path_ + ": PRAGMA data_version gave no row");
  return q->column_int(0);
}

int64_t SqliteDb::changes() const { return sqlite3_changes64(db_.get()); }

Result<SqliteDb> SqliteDb::open_read_only(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  SqliteDb db(raw, path);
  if (rc != SQLITE_OK) {
    return make_error(ErrorCode::kDatabase, "cannot open state database " + path + ": " +
                                                (raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  return db;
}

Result<SqliteDb> SqliteDb::open(const std::string& path, const std::vector<std::string>& migrations) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  SqliteDb db(raw, path);
  if (rc != SQLITE_OK) {
    return make_error(ErrorCode::kDatabase, "cannot open state database " + path + ": " +
                                                (raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  auto corrupt = [&](const std::string& why) {
    return make_error(ErrorCode::kCorruptDatabase, "state database " + path + " is damaged: " + why);
  };
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                             "PRAGMA foreign_keys=ON"}) {
    if (auto st = db.exec(pragma); !st) {
      const int code = sqlite3_errcode(raw) & 0xff;
      if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) return corrupt(st.error().message);
      return make_error(ErrorCode::kDatabase, path + ": " + st.error().message);
    }
  }
  {
    auto check = db.prepare("PRAGMA quick_check");
    if (!check) return corrupt(check.error().message);
    auto row = check->step();
    if (!row) return corrupt(row.error().message);
    if (!*row || check->column_text(0) != "ok") return corrupt(*row ? check->column_text(0) : "no answer");
  }
  auto version_stmt = db.prepare("PRAGMA user_version");
  if (!version_stmt) return version_stmt.error();
  auto has_row = version_stmt->step();
  if (!has_row || !*has_row) {
    return make_error(ErrorCode::kDatabase, path + ": cannot read schema version (not a database?)");
  }
  const auto version = static_cast<size_t>(version_stmt->column_int(0));
  version_stmt->reset();
  if (version > migrations.size()) {
    return make_error(ErrorCode::kDatabase,
                      path + ": schema version " + std::to_string(version) +
                          " is newer than this program knows (" + std::to_string(migrations.size()) +
                          "); upgrade the program");
  }
  for (size_t v = version; v < migrations.size(); ++v) {
    const std::string sql = "BEGIN IMMEDIATE;\n" + migrations[v] + ";\nPRAGMA user_version=" +
                            std::to_string(v + 1) + ";\nCOMMIT;";
    if (auto st = db.exec(sql); !st) {
      (void)db.exec("ROLLBACK");
      return make_error(ErrorCode::kDatabase, path + ": migration to schema " +
                                                  std::to_string(v + 1) + " failed: " +
                                                  st.error().message);
    }
  }
  return db;
}

Result<SqliteStatement> SqliteDb::prepare(std::string_view sql) {
  const auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return SqliteStatement(db_.get(), it->second.stmt.get(), &it->second.in_use);
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK) {
    return make_error(ErrorCode::kDatabase, "SQLite prepare: " + last_error());
  }
  // Already cached (and in use), or the cache is full: this copy is the caller's alone.
  if (it != cache_.end() || cache_.size() >= kCacheSize) return SqliteStatement(db_.get(), stmt);
  Cached& c = cache_[std::string(sql)];
  c.stmt.reset(stmt);
  c.in_use = true;
  return SqliteStatement(db_.get(), stmt, &c.in_use);
}

Status SqliteDb::run(std::string_view sql) {
  auto stmt = prepare(sql);
  if (!stmt) return stmt.error();
  return stmt->run();
}

Status SqliteDb::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : last_error();
    sqlite3_free(err);
    return make_error(ErrorCode::kDatabase, "SQLite: " + msg);
  }
  return ok_status();
}

Result<std::string> move_database_aside(const std::string& path) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  const std::string aside = path + ".corrupt-" + stamp;
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string from = path + suffix;
    if (std::rename(from.c_str(), (aside + suffix).c_str()) != 0 && errno != ENOENT) {
      return errno_error("cannot move aside", from, errno);
    }
  }
  if (std::rename(path.c_str(), aside.c_str()) != 0) return errno_error("cannot move aside", path, errno);
  return aside;
}

}  // namespace transfer
