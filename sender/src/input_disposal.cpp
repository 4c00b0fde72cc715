#include "input_disposal.hpp"

#include <unistd.h>

#include <cerrno>

#include "destination_directory.hpp"
#include "transfer/file_util.hpp"

namespace transfer::sender {

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
