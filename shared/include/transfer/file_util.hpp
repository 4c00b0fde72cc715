#pragma once
// Small POSIX file helpers with errors as values: owned descriptors, full writes, fsync of files
// and directories, hidden temporary files that are renamed into place.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "transfer/result.hpp"

namespace transfer {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release();
  void reset();
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// An error for a failed system call on `path`: ENOSPC/EDQUOT map to kNoSpace, others to kIo.
Error errno_error(const std::string& what, const std::string& path, int err);

Status write_all(int fd, const char* data, size_t size, const std::string& path);
Status fsync_fd(int fd, const std::string& path);
Status fsync_directory(const std::string& dir);

// Creates and opens for reading and writing (O_EXCL, mode 0600 unless given) a hidden file "<dir>/.<prefix>-<random>.tmp".
struct TempFile {
  UniqueFd fd;
  std::string path;
};
Result<TempFile> create_temp_file(const std::string& dir, std::string_view prefix, int mode = 0600);

// Writes `content` to `path` atomically (temp file in the same directory, fsync, rename).
Status write_file_atomic(const std::string& path, std::string_view content);

// What changes when a file is rewritten or replaced: size, mtime, inode (a rename over it) and
// ctime. Files reloaded when they change (the key file, XML_SCHEMA) compare these.
struct FileChangeStamp {
  long long size = -1, mtime_ns = 0, inode = 0, ctime_ns = 0;
  bool operator==(const FileChangeStamp&) const = default;
};
// The stamp of `path`; nothing (errno set by stat) when it cannot be had.
std::optional<FileChangeStamp> file_change_stamp(const std::string& path);

// Creates a directory (and parents) if missing.
Status ensure_directory(const std::string& dir);

// A path in `dir` for `name` that does not exist yet: "<dir>/<name>", else "<dir>/<name>.1", ...
std::string unused_path_in(const std::string& dir, const std::string& name);

// rename() that fails with EEXIST instead of replacing `to`; link() + unlink() where the file
// system has no RENAME_NOREPLACE. Returns false with errno set, like the system call.
bool rename_noreplace(const std::string& from, const std::string& to);

// Hex SHA-256 of everything `fd` reads from its current offset to the end; `cancelled`, when
// given, is polled between reads (kCancelled). `path` names the file in errors.
Result<std::string> sha256_of_fd(int fd, const std::string& path,
                                 const std::function<bool()>& cancelled = {});

// Moves `from` to `to` without replacing an existing `to` (kIo with EEXIST's message then). Across
// file systems (EXDEV) it copies to a temporary file beside `to`, fsyncs, renames it into place
// and only then removes `from`. Both directories are fsynced.
Status move_file(const std::string& from, const std::string& to);

}  // namespace transfer
