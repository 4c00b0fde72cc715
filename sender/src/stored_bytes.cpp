#include "stored_bytes.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "transfer/file_util.hpp"

namespace transfer::sender {

std::string_view send_fault_name(SendFault fault) {
  switch (fault) {
    case SendFault::kNone:
      return "none";
    case SendFault::kTransient:
      return "transient";
    case SendFault::kPermanent:
      return "permanent";
    case SendFault::kDestination:
      return "destination";
    case SendFault::kUnreachable:
      return "unreachable";
  }
  return "unknown";
}

Result<size_t> MemoryBytes::read(char* buf, size_t cap) {
  const size_t n = std::min(cap, bytes_.size() - pos_);
  std::memcpy(buf, bytes_.data() + pos_, n);
  pos_ += n;
  return n;
}

Result<FileBytes> FileBytes::open(const std::string& path, uint64_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("cannot open", path, errno);
  return FileBytes(fd, path, size);
}

FileBytes::FileBytes(FileBytes&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)), size_(other.size_), pos_(other.pos_) {
  other.fd_ = -1;
}

FileBytes::~FileBytes() {
  if (fd_ >= 0) ::close(fd_);
}

Result<size_t> FileBytes::read(char* buf, size_t cap) {
  cap = static_cast<size_t>(std::min<uint64_t>(cap, size_ - pos_));
  if (cap == 0) return size_t{0};
  for (;;) {
    const ssize_t n = ::read(fd_, buf, cap);
    if (n > 0) {
      pos_ += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
    if (n == 0) {
      return make_error(ErrorCode::kIo, path_ + ": ended at byte " + std::to_string(pos_) + " of " +
                                            std::to_string(size_));
    }
    if (errno != EINTR) return errno_error("cannot read", path_, errno);
  }
}

Status FileBytes::rewind() {
  if (::lseek(fd_, 0, SEEK_SET) != 0) return errno_error("cannot rewind", path_, errno);
  pos_ = 0;
  return ok_status();
}

}  // namespace transfer::sender
