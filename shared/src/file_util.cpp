#include "transfer/file_util.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "transfer/sha256.hpp"

namespace transfer {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}
int UniqueFd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}
void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Error errno_error(const std::string& what, const std::string& path, int err) {
  const ErrorCode code = (err == ENOSPC || err == EDQUOT) ? ErrorCode::kNoSpace : ErrorCode::kIo;
  return make_error(code, what + " " + path + ": " + std::strerror(err));
}

Status write_all(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot write", path, errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return ok_status();
}

Status fsync_fd(int fd, const std::string& path) {
  if (::fsync(fd) != 0) return errno_error("cannot fsync", path, errno);
  return ok_status();
}

Status fsync_directory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open directory", dir, errno);
  return fsync_fd(fd.get(), dir);
}

Result<TempFile> create_temp_file(const std::string& dir, std::string_view prefix, int mode) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    uint8_t rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1) return make_error(ErrorCode::kIo, "no random bytes");
    std::string path = dir + "/." + std::string(prefix) + "-" + to_hex(rnd, sizeof rnd) + ".tmp";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (fd) return TempFile{std::move(fd), std::move(path)};
    if (errno != EEXIST) return errno_error("cannot create temporary file in", dir, errno);
  }
  return make_error(ErrorCode::kIo, "cannot create a unique temporary file in " + dir);
}

Status write_file_atomic(const std::string& path, std::string_view content) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  auto tmp = create_temp_file(dir.empty() ? "." : dir, "write", 0644);
  if (!tmp) return tmp.error();
  auto st = write_all(tmp->fd.get(), content.data(), content.size(), tmp->path);
  if (st) st = fsync_fd(tmp->fd.get(), tmp->path);
  tmp->fd.reset();
  if (st && ::rename(tmp->path.c_str(), path.c_str()) != 0) st = errno_error("cannot rename to", path, errno);
  if (!st) {
    ::unlink(tmp->path.c_str());
    return st;
  }
  return ok_status();
}

Status ensure_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot create directory " + dir + ": " + ec.message());
  return ok_status();
}

std::string unused_path_in(const std::string& dir, const std::string& name) {
  std::string path = dir + "/" + name;
  struct stat st {};
  for (int n = 1; ::lstat(path.c_str(), &st) == 0; ++n) path = dir + "/" + name + "." + std::to_string(n);
  return path;
}

namespace {

Status copy_across(const std::string& from, const std::string& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!in) return errno_error("cannot open", from, errno);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return errno_error("cannot stat", from, errno);
  const std::string dir = std::filesystem::path(to).parent_path().string();
  auto tmp = create_temp_file(dir, "move", static_cast<int>(st.st_mode & 07777));
  if (!tmp) return tmp.error();
  Status result = ok_status();
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(in.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = errno_error("cannot read", from, errno);
      break;
    }
    if (n == 0) break;
    if (result = write_all(tmp->fd.get(), buf, static_cast<size_t>(n), tmp->path); !result) break;
  }
  if (result) result = fsync_fd(tmp->fd.get(), tmp->path);
  tmp->fd.reset();
  if (result && ::link(tmp->path.c_str(), to.c_str()) != 0) result = errno_error("cannot move to", to, errno);
  ::unlink(tmp->path.c_str());
  if (!result) return result;
  if (auto d = fsync_directory(dir); !d) return d;
  if (::unlink(from.c_str()) != 0) {  // a read-only source: undo, so the file is in one place
    const int err = errno;
    ::unlink(to.c_str());
    return errno_error("cannot remove", from, err);
  }
  return ok_status();
}

}  // namespace

std::optional<FileChangeStamp> file_change_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileChangeStamp{static_cast<long long>(st.st_size),
                         static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec,
                         static_cast<long long>(st.st_ino),
                         static_cast<long long>(st.st_ctim.tv_sec) * 1'000'000'000LL + st.st_ctim.tv_nsec};
}

bool rename_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno != EINVAL && errno != ENOSYS) return false;
  if (::link(from.c_str(), to.c_str()) != 0) return false;
  ::unlink(from.c_str());
  return true;
}

Result<std::string> sha256_of_fd(int fd, const std::string& path, const std::function<bool()>& cancelled) {
  Sha256 h;
  std::vector<char> buf(1 << 16);
  for (;;) {
    if (cancelled && cancelled()) return make_error(ErrorCode::kCancelled, "cancelled (shutting down)");
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot read", path, errno);
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  return h.hex_digest();
}

Status move_file(const std::string& from, const std::string& to) {
  if (!rename_noreplace(from, to)) {
    if (errno != EXDEV) return errno_error("cannot move " + from + " to", to, errno);
    if (auto st = copy_across(from, to); !st) return st;
  }
  for (const auto& p : {std::filesystem::path(to).parent_path(), std::filesystem::path(from).parent_path()}) {
    if (auto st = fsync_directory(p.empty() ? "." : p.string()); !st) return st;
  }
  return ok_status();
}

}  // namespace transfer
