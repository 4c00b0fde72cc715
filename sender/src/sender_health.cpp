#include "sender_health.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace transfer::sender {
namespace {

std::string access_problem(const std::string& path, int mode, const char* what) {
  if (::access(path.c_str(), mode) == 0) return {};
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// A read of the state database, opened read-only so a probe never takes a write lock.
std::string database_problem(const std::string& path) {
  sqlite3* raw = nullptr;
  const int opened = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  if (opened != SQLITE_OK) return "state database " + path + ": " + sqlite3_errstr(opened);
  sqlite3_busy_timeout(db.get(), 2000);
  char* message = nullptr;
  const int read = sqlite3_exec(db.get(), "SELECT count(*) FROM files WHERE rowid = 1", nullptr,
                                nullptr, &message);
  std::unique_ptr<char, decltype(&sqlite3_free)> owned(message, &sqlite3_free);
  if (read != SQLITE_OK)
    return "state database " + path + ": " + (message ? message : sqlite3_errstr(read));
  return {};
}

}  // namespace

Result<std::string> check_health(const SenderConfig& config) {
  std::vector<std::string> problems;
  for (auto problem : {access_problem(config.input_dir, R_OK | X_OK, "input directory"),
                       access_problem(config.status_db_path, W_OK | X_OK, "state directory"),
                       database_problem(config.status_db_path + "/sender.db")}) {
    if (!problem.empty()) problems.push_back(std::move(problem));
  }
  if (problems.empty()) return std::string("healthy: input, state directory and database usable");
  std::string all;
  for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
  return Error{ErrorCode::kIo, all};
}

}  // namespace transfer::sender
