#include "transfer/readiness.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "transfer/file_util.hpp"

namespace transfer {

void Readiness::add(std::string name, const Status& status, std::string ok_detail) {
  checks.push_back(ReadinessCheck{std::move(name), status.ok(),
                                  status.ok() ? std::move(ok_detail) : status.error().message});
}

bool Readiness::ready() const {
  return std::all_of(checks.begin(), checks.end(), [](const ReadinessCheck& c) { return c.ok; });
}

std::string Readiness::json() const {
  nlohmann::json j;
  j["status"] = ready() ? "ready" : "not ready";
  j["checks"] = nlohmann::json::object();
  j["failing"] = nlohmann::json::array();
  for (const auto& c : checks) {
    j["checks"][c.name] = {{"ok", c.ok}, {"detail", c.detail}};
    if (!c.ok) j["failing"].push_back(c.name);
  }
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + "\n";
}

Status check_directory_writable(const std::string& dir) {
  auto temp = create_temp_file(dir, "readyz");
  if (!temp) return temp.error();
  ::unlink(temp->path.c_str());
  return ok_status();
}

Result<uint64_t> free_bytes(const std::string& dir) {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) return errno_error("cannot statvfs", dir, errno);
  return static_cast<uint64_t>(vfs.f_bavail) * static_cast<uint64_t>(vfs.f_frsize);
}

}  // namespace transfer
