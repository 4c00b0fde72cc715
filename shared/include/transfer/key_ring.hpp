#pragma once
// The keys of a key file, reloaded when the file changes, so keys rotate without a restart
// (see README "Key rotation"). refresh() costs one stat() when nothing changed. A file that
// becomes unreadable or invalid leaves the keys held in place (uploads keep working) and makes
// refresh() and error() report it until it is fixed. The file must stay a regular file (see
// read_key_file): one replaced by a FIFO is refused at once, never waited on. Thread-safe.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transfer/file_util.hpp"
#include "transfer/key_file.hpp"
#include "transfer/result.hpp"

namespace transfer {

using KeySet = std::shared_ptr<const std::vector<FernetKey>>;

class KeyRing {
 public:
  // Loads `path` now (kInvalidKey with the reason when it cannot).
  static Result<std::shared_ptr<KeyRing>> load(const std::string& path);
  // Fixed keys, never reloaded (tests).
  static std::shared_ptr<KeyRing> fixed(std::vector<FernetKey> keys);

  // The keys in force: the first encrypts, any decrypts.
  KeySet keys() const;
  // Re-reads the file when its size, mtime or inode changed. Ok(true) when new keys were taken.
  Result<bool> refresh();
  // The last refresh's error, if the file is not usable now.
  std::optional<Error> error() const;
  // read_key_file()'s warning from the last successful read ("" when the mode is fine): the
  // services log it.
  std::string access_warning() const;
  const std::string& path() const { return path_; }

 private:
  using Stamp = FileChangeStamp;
  KeyRing(std::string path, KeyFileContents contents, Stamp stamp);
  static Result<Stamp> stamp_of(const std::string& path);

  std::string path_;
  mutable std::mutex mu_;
  KeySet keys_;
  Stamp stamp_;
  std::optional<Error> error_;
  std::string access_warning_;
};

}  // namespace transfer
