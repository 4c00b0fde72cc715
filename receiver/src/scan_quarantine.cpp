#include "scan_quarantine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "transfer/file_util.hpp"

namespace transfer::receiver {
namespace {

Status copy_fd(int from, const std::string& to) {
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out) return errno_error("cannot create", to, errno);
  std::vector<char> buf(1 << 16);
  off_t at = 0;
  for (;;) {
    const ssize_t n = ::pread(from, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read the refused upload for", to, errno);
    if (n == 0) break;
    if (auto st = write_all(out.get(), buf.data(), static_cast<size_t>(n), to); !st) return st;
    at += n;
  }
  return fsync_fd(out.get(), to);
}

}  // namespace

Result<std::string> ScanQuarantine::keep(const std::string& temp_path, int fd,
                                         const std::string& name, const CheckVerdict& verdict,
                                         const std::string& detail) const {
  if (auto st = ensure_directory(dir_); !st) return st.error();
  if (::fchmod(fd, 0600) != 0)
    return errno_error("cannot restrict the refused upload", temp_path, errno);
  std::string kept;
  for (int attempt = 0;; ++attempt) {  // another refused upload may take the same name meanwhile
    kept = unused_path_in(dir_, name + ".xml");
    if (rename_noreplace(temp_path, kept)) break;
    if (errno == EEXIST && attempt < 10) continue;
    if (errno != EXDEV) return errno_error("cannot move the refused upload to", kept, errno);
    if (auto st = copy_fd(fd, kept); !st) return st.error();  // another file system: a copy
    break;
  }
  const std::string reason =
      "name: " + name + "\ncheck: " + verdict.check + "\nreason: " + verdict.reason +
      (verdict.signature.empty() ? "" : "\nsignature: " + verdict.signature) +
      "\nmessage: " + verdict.message + "\n" + detail;
  UniqueFd out(::open((kept + ".reason").c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out) return errno_error("cannot write", kept + ".reason", errno);
  if (auto st = write_all(out.get(), reason.data(), reason.size(), kept + ".reason"); !st)
    return st.error();
  return kept;
}

}  // namespace transfer::receiver
