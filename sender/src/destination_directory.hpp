#pragma once
// The directories the sender moves input files into: the quarantine (QUARANTINE_DIR, default
// $INPUT_DIR/.quarantine) and the ON_SUCCESS=move:<dir> target. Anyone who can write the input
// directory could make `.quarantine` a symlink and choose where the sender writes, so each is
// opened without following a symlink in its last component (O_NOFOLLOW), and every file is then
// created, renamed and linked relative to that descriptor (openat, renameat2, linkat): a symlink
// swapped in after the check cannot redirect a write. A symlinked directory is refused with an
// error naming it, at start (check_destination_directory) and at each use (open).
//
// Header-only because the CMake source lists are frozen while issue 13 is worked on in parallel;
// it moves to a .cpp beside it with the next edit of sender/CMakeLists.txt.

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "transfer/file_util.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

namespace destination_detail {

// `path` as (parent, last component), with trailing slashes dropped: "a/b/" -> ("a", "b"). A
// trailing slash would make the kernel resolve a symlink in the last component.
inline std::pair<std::string, std::string> split_last(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return {".", p};
  return {slash == 0 ? "/" : p.substr(0, slash), p.substr(slash + 1)};
}

// What is at `path` if it is not a directory we may use: "a symbolic link (to /x)", "not a
// directory", or "" (a directory, or nothing yet).
inline std::string unusable_kind(int parent_fd, const std::string& last) {
  struct stat st {};
  if (::fstatat(parent_fd, last.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return {};
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    const ssize_t n = ::readlinkat(parent_fd, last.c_str(), target, sizeof target - 1);
    if (n <= 0) return "a symbolic link";
    std::string shown(target, static_cast<size_t>(n));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';  // one log line
    }
    return "a symbolic link (to " + shown + ")";
  }
  return S_ISDIR(st.st_mode) ? std::string() : std::string("not a directory");
}

inline Error refused(const std::string& option, const std::string& path, const std::string& kind) {
  const bool link = kind.rfind("a symbolic link", 0) == 0;
  return make_error(ErrorCode::kInvalidArgument,
                    option + " " + path + " is " + kind +
                        (link ? ": refusing to write through it (whoever can write its parent "
                                "would choose where files go); make it a real directory"
                              : ": make it a directory"));
}

inline std::string random_suffix() {
  uint8_t rnd[8];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return std::to_string(::getpid());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (const uint8_t b : rnd) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

}  // namespace destination_detail

// At start: refuses (kInvalidArgument, one line naming the option and the path) a `path` whose
// last component is a symlink or something other than a directory. A missing one is fine: it is
// created at first use. `option` names the setting in the message ("QUARANTINE_DIR").
inline Status check_destination_directory(const std::string& path, const std::string& option) {
  const auto [parent, last] = destination_detail::split_last(path);
  UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd) return ok_status();  // nothing there yet (or not ours to judge): first use says
  const std::string kind = destination_detail::unusable_kind(parent_fd.get(), last);
  if (!kind.empty()) return destination_detail::refused(option, path, kind);
  return ok_status();
}

// One open destination directory. Not thread-safe; open one per use.
class DestinationDirectory {
 public:
  // Creates the directory (and its parents) when missing and opens it without following a
  // symlink in its last component; a symlink or non-directory there is refused as at start.
  static Result<DestinationDirectory> open(const std::string& path, const std::string& option) {
    namespace d = destination_detail;
    const auto [parent, last] = d::split_last(path);
    if (auto st = ensure_directory(parent); !st) return st.error();
    UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent_fd) return errno_error("cannot open directory", parent, errno);
    if (::mkdirat(parent_fd.get(), last.c_str(), 0777) != 0 && errno != EEXIST) {
      return errno_error("cannot create directory", path, errno);
    }
    UniqueFd fd(
        ::openat(parent_fd.get(), last.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      const int err = errno;
      const std::string kind = d::unusable_kind(parent_fd.get(), last);
      if (!kind.empty()) return d::refused(option, path, kind);
      return errno_error("cannot open directory", path, err);
    }
    return DestinationDirectory(std::move(fd), path);
  }

  const std::string& path() const { return path_; }

  // A name free in the directory: `name`, else "name.1", "name.2", ...
  std::string unused_name(const std::string& name) const {
    std::string candidate = name;
    struct stat st {};
    for (int n = 1; ::fstatat(fd_.get(), candidate.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0; ++n) {
      candidate = name + "." + std::to_string(n);
    }
    return candidate;
  }

  // Writes `content` to `name` atomically: a hidden temporary file in the directory, fsync,
  // renamed over `name`.
  Status write_file(const std::string& name, std::string_view content) const {
    const std::string tmp = ".write-" + destination_detail::random_suffix() + ".tmp";
    UniqueFd out(::openat(fd_.get(), tmp.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!out) return errno_error("cannot create a temporary file in", path_, errno);
    Status st = write_all(out.get(), content.data(), content.size(), in(tmp));
    if (st) st = fsync_fd(out.get(), in(tmp));
    out.reset();
    if (st && ::renameat(fd_.get(), tmp.c_str(), fd_.get(), name.c_str()) != 0) {
      st = errno_error("cannot rename to", in(name), errno);
    }
    if (!st) ::unlinkat(fd_.get(), tmp.c_str(), 0);
    return st;
  }

  // Moves the file at `from` to `name` here, never replacing an existing `name` (kIo with
  // EEXIST's message then). Across file systems it copies to a temporary file here, fsyncs, links
  // it into place and only then removes `from`. This directory and `from`'s are fsynced.
  Status move_in(const std::string& from, const std::string& name) const {
    if (::renameat2(AT_FDCWD, from.c_str(), fd_.get(), name.c_str(), RENAME_NOREPLACE) != 0) {
      const int err = errno;
      if (err == EINVAL || err == ENOSYS) {  // no RENAME_NOREPLACE here: link + unlink
        if (::linkat(AT_FDCWD, from.c_str(), fd_.get(), name.c_str(), 0) != 0) {
          return errno_error("cannot move " + from + " to", in(name), errno);
        }
        ::unlink(from.c_str());
      } else if (err == EXDEV) {
        if (auto st = copy_in(from, name); !st) return st;
      } else {
        return errno_error("cannot move " + from + " to", in(name), err);
      }
    }
    if (auto st = fsync_fd(fd_.get(), path_); !st) return st;
    const std::string from_dir = std::filesystem::path(from).parent_path().string();
    return fsync_directory(from_dir.empty() ? "." : from_dir);
  }

  // Removes `name` here (no error when it is already gone).
  void remove(const std::string& name) const { ::unlinkat(fd_.get(), name.c_str(), 0); }

 private:
  DestinationDirectory(UniqueFd fd, std::string path)
      : fd_(std::move(fd)), path_(std::move(path)) {}

  std::string in(const std::string& name) const { return path_ + "/" + name; }

  Status copy_in(const std::string& from, const std::string& name) const {
    UniqueFd src(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!src) return errno_error("cannot open", from, errno);
    struct stat st {};
    if (::fstat(src.get(), &st) != 0) return errno_error("cannot stat", from, errno);
    const std::string tmp = ".move-" + destination_detail::random_suffix() + ".tmp";
    UniqueFd out(::openat(fd_.get(), tmp.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          st.st_mode & 07777));
    if (!out) return errno_error("cannot create a temporary file in", path_, errno);
    Status result = ok_status();
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(src.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        result = errno_error("cannot read", from, errno);
        break;
      }
      if (n == 0) break;
      if (result = write_all(out.get(), buf, static_cast<size_t>(n), in(tmp)); !result) break;
    }
    if (result) result = fsync_fd(out.get(), in(tmp));
    out.reset();
    if (result && ::linkat(fd_.get(), tmp.c_str(), fd_.get(), name.c_str(), 0) != 0) {
      result = errno_error("cannot move to", in(name), errno);
    }
    ::unlinkat(fd_.get(), tmp.c_str(), 0);
    if (!result) return result;
    if (auto d = fsync_fd(fd_.get(), path_); !d) return d;
    if (::unlink(from.c_str()) != 0) {  // a read-only source: undo, so the file is in one place
      const int err = errno;
      ::unlinkat(fd_.get(), name.c_str(), 0);
      return errno_error("cannot remove", from, err);
    }
    return ok_status();
  }

  UniqueFd fd_;
  std::string path_;
};

}  // namespace transfer::sender
