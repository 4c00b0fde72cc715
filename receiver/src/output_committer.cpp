#include "output_committer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace transfer::receiver {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

CommitResult failure(int status, std::string message) {
  CommitResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

}  // namespace

Result<ConflictPolicy> parse_conflict_policy(const std::string& text) {
  if (text == "overwrite") return ConflictPolicy::kOverwrite;
  if (text == "reject") return ConflictPolicy::kReject;
  if (text == "version") return ConflictPolicy::kVersion;
  return make_error(ErrorCode::kInvalidArgument,
                    "ON_CONFLICT must be overwrite, reject or version, not '" + text + "'");
}

CommitResult OutputCommitter::commit(const VerifiedUpload& upload, const std::string& peer) {
  CommitResult r;
  {
    std::lock_guard lock(*mu_);
    r = place(upload, peer);
    if (r.status != 201 || r.duplicate) ::unlink(upload.temp_path.c_str());
  }
  if (r.status != 201 || r.duplicate) return r;
  if (fsync_) {
    // The rename must be durable before the 201 (the file itself was fsynced before); uploads
    // finishing together share one directory fsync.
    if (auto st = directory_sync_.sync_after_change(); !st) {
      return failure(st.error().code == ErrorCode::kNoSpace ? 507 : 500, st.error().message);
    }
  }
  return r;
}

CommitResult OutputCommitter::duplicate_of(const Delivery& original, const std::string& peer) {
  if (auto st = ledger_.record_duplicate(original, peer); !st) {
    return failure(503, "the upload ledger is unavailable: " + st.error().message);
  }
  CommitResult r;
  r.duplicate = true;
  r.output_path = original.output_path;
  r.message = "File is decrypted and saved to " + original.output_path;
  return r;
}

bool OutputCommitter::holds_unrecorded_copy(const std::string& path, const VerifiedUpload& upload) {
  auto row = ledger_.find_by_path(path);
  if (!row || *row) return false;  // recorded (with other content, or the lookup failed)
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return false;
  auto sha = sha256_of_fd(fd.get(), path);
  return sha && *sha == upload.sha256;
}

CommitResult OutputCommitter::place(const VerifiedUpload& upload, const std::string& peer) {
  auto known = ledger_.find(upload.name, upload.sha256);
  if (!known) return failure(503, "the upload ledger is unavailable: " + known.error().message);
  if (*known) return duplicate_of(**known, peer);

  Delivery d;
  d.name = upload.name;
  d.sha256 = upload.sha256;
  d.bytes = static_cast<int64_t>(upload.bytes);
  d.key_index = static_cast<int64_t>(upload.key_index);
  d.idempotency_key = upload.idempotency_key;
  auto recover = [&](const std::string& path) {  // renamed just before a crash: record it now
    d.output_path = path;
    if (auto st = ledger_.record_delivery(d, peer); !st) {
      return failure(503, "the upload ledger is unavailable: " + st.error().message);
    }
    return duplicate_of(d, peer);
  };

  const std::string base = output_dir_ + "/" + upload.name;
  const std::string primary = base + ".xml";
  switch (policy_) {
    case ConflictPolicy::kOverwrite:
      d.output_path = primary;
      if (std::rename(upload.temp_path.c_str(), primary.c_str()) != 0) {
        const auto e = errno_error("cannot rename into", primary, errno);
        return failure(e.code == ErrorCode::kNoSpace ? 507 : 500, e.message);
      }
      break;
    case ConflictPolicy::kReject:
      d.output_path = primary;
      if (!rename_noreplace(upload.temp_path, primary)) {
        if (errno != EEXIST) return failure(500, errno_error("cannot rename into", primary, errno).message);
        if (holds_unrecorded_copy(primary, upload)) return recover(primary);
        return failure(409, primary + " exists with other content (ON_CONFLICT=reject)");
      }
      break;
    case ConflictPolicy::kVersion: {
      auto version_path = [&](int n) {
        return n == 0 ? primary : base + "." + std::to_string(n) + ".xml";
      };
      int n = 0;
      while (exists(version_path(n))) ++n;
      // The newest existing version is the one a crash may have left unrecorded.
      if (n > 0 && holds_unrecorded_copy(version_path(n - 1), upload)) return recover(version_path(n - 1));
      for (int tries = 0;; ++tries, ++n) {  // another process may create names too: never replace one
        if (rename_noreplace(upload.temp_path, version_path(n))) break;
        if (errno != EEXIST || tries > 1000) {
          return failure(500, errno_error("cannot rename into", version_path(n), errno).message);
        }
      }
      d.output_path = version_path(n);
      break;
    }
  }
  CommitResult r;
  r.output_path = d.output_path;
  r.message = "File is decrypted and saved to " + d.output_path;
  if (auto st = ledger_.record_delivery(d, peer); !st) {
    // The file is in place and a retry would find it by its content: the upload succeeded.
    r.warning = "ledger write failed: " + st.error().message;
  }
  return r;
}

}  // namespace transfer::receiver
