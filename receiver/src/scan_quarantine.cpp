#include "scan_quarantine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "transfer/file_util.hpp"

namespace transfer::receiver {
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
    if (auto st = move_file(temp_path, kept); !st)
      return st.error();  // another file system: a copy
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
