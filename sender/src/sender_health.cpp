#include "sender_health.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "transfer/sqlite_db.hpp"

namespace transfer::sender {
namespace {

std::string access_problem(const std::string& path, int mode, const char* what) {
  if (::access(path.c_str(), mode) == 0) return {};
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// A read of the state database, opened read-only so a probe never takes a write lock.
std::string database_problem(const std::string& path) {
  auto db = SqliteDb::open_read_only(path);
  if (!db) return db.error().message;
  auto read = db->prepare("SELECT count(*) FROM files WHERE rowid = 1");
  if (!read) return "state database " + path + ": " + read.error().message;
  if (auto row = read->step(); !row) return "state database " + path + ": " + row.error().message;
  return {};
}

}  // namespace

Result<std::string> check_health(const SenderConfig& config) {
  std::vector<std::string> problems;
  for (auto problem : {access_problem(config.input_dir, R_OK | X_OK, "input directory"),
                       access_problem(config.status_db_path, W_OK | X_OK, "state directory"),
                       database_problem(config.state_db_file())}) {
    if (!problem.empty()) problems.push_back(std::move(problem));
  }
  if (problems.empty()) return std::string("healthy: input, state directory and database usable");
  std::string all;
  for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
  return Error{ErrorCode::kIo, all};
}

}  // namespace transfer::sender
