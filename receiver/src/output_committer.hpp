#pragma once
// The last step of an upload: a verified, fsynced temporary file becomes <name>.xml (or is
// recognised as a retry), decided under one lock so concurrent uploads of one name cannot race.
//   - name and plaintext digest already in the ledger: a duplicate, answered from the ledger,
//     nothing rewritten;
//   - otherwise ON_CONFLICT decides: overwrite (atomic rename over the old file, the default),
//     reject (409 when <name>.xml exists with other content), version (<name>.1.xml, .2, ...).
// A file renamed into place just before a crash (so missing from the ledger) is recognised by
// hashing it when a retry arrives, so a retry never makes a second copy.

#include <memory>
#include <mutex>
#include <string>

#include "directory_sync.hpp"
#include "transfer/file_util.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer::receiver {

enum class ConflictPolicy { kOverwrite, kReject, kVersion };
Result<ConflictPolicy> parse_conflict_policy(const std::string& text);

// A plaintext fully decrypted and authenticated, in a temporary file of the output directory.
struct VerifiedUpload {
  std::string name;
  std::string temp_path;
  std::string sha256;
  uint64_t bytes = 0;
  size_t key_index = 0;
  std::string idempotency_key;
};

struct CommitResult {
  int status = 201;          // 201, 409, 503 (ledger), 507 (no space), 500
  std::string message;
  std::string output_path;   // where the content is (for a duplicate: where it was put first)
  bool duplicate = false;
  std::string warning;       // something an operator should see, though the upload succeeded
};

class OutputCommitter {
 public:
  // `directory_lock` is also held by uploads while they create their temporary file in the
  // output directory (UploadSettings::create_lock): one change to the directory at a time.
  OutputCommitter(std::string output_dir, ConflictPolicy policy, bool fsync, UploadLedger& ledger,
                  std::shared_ptr<std::mutex> directory_lock = std::make_shared<std::mutex>())
      : output_dir_(std::move(output_dir)), policy_(policy), fsync_(fsync), ledger_(ledger),
        mu_(std::move(directory_lock)) {}

  // Moves upload.temp_path into place or removes it; never leaves it behind.
  CommitResult commit(const VerifiedUpload& upload, const std::string& peer);

 private:
  CommitResult place(const VerifiedUpload& upload, const std::string& peer);
  // True when `path` is not in the ledger but holds exactly this upload's plaintext.
  bool holds_unrecorded_copy(const std::string& path, const VerifiedUpload& upload);
  CommitResult duplicate_of(const Delivery& original, const std::string& peer);

  std::string output_dir_;
  ConflictPolicy policy_;
  bool fsync_;
  UploadLedger& ledger_;
  std::shared_ptr<std::mutex> mu_;
  DirectorySync directory_sync_{[this] { return fsync_directory(output_dir_); }};  // FSYNC=on
};

}  // namespace transfer::receiver
