#include "input_disposal.hpp"

#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "destination_directory.hpp"
#include "transfer/file_util.hpp"

namespace transfer::sender {
namespace {

std::string iso_time(double unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

QuarantineReason::Destination QuarantineReason::first_gave_up() const {
  for (const auto& d : destinations) {
    if (!d.delivered && !d.error.empty()) return d;
  }
  return {};
}

std::string QuarantineReason::text() const {
  const Destination first = first_gave_up();
  std::string out = "file: " + file + "\nerror: " + first.error + "\ntime: " + iso_time(time_unix) +
                    "\nattempts: " + std::to_string(first.attempts) + "\nsha256: " + sha256 + "\n";
  if (first.receiver_status != 0)
    out += "receiver_status: " + std::to_string(first.receiver_status) + "\n";
  for (const auto& d : destinations) {
    out += "destination " + d.name +
           (d.delivered ? std::string(": delivered")
                        : ": gave up after " + std::to_string(d.attempts) + " attempts: " + d.error) +
           "\n";
  }
  return out;
}

Status InputDisposal::delivered(const std::string& name, const std::string& path) const {
  switch (config_.on_success) {
    case SenderConfig::OnSuccess::kKeep:
      return ok_status();
    case SenderConfig::OnSuccess::kDelete:
      if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return errno_error("cannot delete", path, errno);
      return ok_status();
    case SenderConfig::OnSuccess::kMove: {
      auto dir = DestinationDirectory::open(config_.on_success_dir, "ON_SUCCESS move target");
      if (!dir) return dir.error();
      return dir->move_in(path, dir->unused_name(name));
    }
  }
  return ok_status();
}

QuarantineResult InputDisposal::quarantine(const std::string& name, const std::string& path,
                                           const std::string& reason) const {
  QuarantineResult r;
  auto dir = DestinationDirectory::open(config_.quarantine_dir, "QUARANTINE_DIR");
  if (!dir) {
    r.error = dir.error().message;
    return r;
  }
  const std::string dest = dir->unused_name(name);
  auto moved = dir->write_file(dest + ".reason", reason);
  if (moved) moved = dir->move_in(path, dest);
  if (moved) {
    r.moved_to = config_.quarantine_dir + "/" + dest;
  } else {
    dir->remove(dest + ".reason");
    r.error = moved.error().message;
  }
  return r;
}

}  // namespace transfer::sender
