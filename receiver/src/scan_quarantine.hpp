#pragma once
// SCAN_QUARANTINE_DIR: the plaintext of an upload the virus scan refused, kept for forensics
// instead of discarded: "<dir>/<name>.xml" (".1", ".2", ... when taken), mode 0600, beside a
// "<that>.reason" naming the upload, the check, the signature and the time. Moved by rename when
// the directory is on the output directory's file system, else copied (move_file). Never in
// OUTPUT_DIR's listing: nothing refused is ever visible there.

#include <string>

#include "plaintext_check.hpp"
#include "transfer/result.hpp"

namespace transfer::receiver {

class ScanQuarantine {
 public:
  explicit ScanQuarantine(std::string dir) : dir_(std::move(dir)) {}
  // Keeps the plaintext in `temp_path` (open as `fd`); returns where it went. The temporary file
  // may be gone afterwards (moved); the caller still removes whatever is left at temp_path.
  Result<std::string> keep(const std::string& temp_path, int fd, const std::string& name,
                           const CheckVerdict& verdict, const std::string& detail) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace transfer::receiver
