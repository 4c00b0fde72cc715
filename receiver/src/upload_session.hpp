#pragma once
// One upload, POST /upload/<name>, independent of the HTTP library: the adapter checks the
// request line and headers with precheck_upload(), feeds body bytes to an UploadSession and
// turns the UploadOutcome into a response. The body (multipart/form-data with one part named
// `file` holding a Fernet token) is streamed into one hidden temporary file in the output
// directory, whatever the number of keys:
//   - with one key to try (one loaded, or the one that signed the request head): token text ->
//     plaintext -> the file, whose HMAC is verified at the end;
//   - with several: token text -> ciphertext -> the file while every key's HMAC is computed;
//     at the end the matching key decrypts the file in place.
// The plaintext is fed to the checks (UploadSettings::checks) as it is decrypted; their verdict is
// taken once the token is verified, so it only ever concerns the sender's bytes. The verified
// plaintext is fsynced and handed to the OutputCommitter (which renames it into
// place or answers a retry from the ledger). On any error the temporary file is removed and
// nothing is written.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transfer/fernet.hpp"
#include "transfer/file_util.hpp"
#include "transfer/key_ring.hpp"
#include "transfer/multipart.hpp"
#include "transfer/sha256.hpp"
#include "output_committer.hpp"
#include "plaintext_check.hpp"

namespace transfer::receiver {

struct UploadOutcome {
  int status = 500;
  std::string message;      // "File is decrypted and saved to ..." or the reason for refusal
  std::string output_path;  // set on success
  uint64_t bytes = 0;       // plaintext bytes written
  std::string sha256;       // of the plaintext
  size_t key_index = 0;
  bool duplicate = false;   // a retry answered from the ledger
  std::string warning;      // logged, not sent
  std::optional<int> retry_after_s;  // a refusal that may succeed later (503): Retry-After
  std::optional<CheckVerdict> check;  // set when a plaintext check refused it or could not be done
  bool token_verified = false;  // the token verified with a loaded key (the client has the key)
  // The JSON body: {"bytes":..,"duplicate":..,"msg":..,"sha256":..,"status_code":..} on 201,
  // {"msg":..,"status_code":..} otherwise (keys sorted, compact, as Flask's jsonify).
  std::string json_body() const;
};

struct UploadSettings {
  std::string output_dir;
  std::shared_ptr<KeyRing> keys;  // each upload takes the keys in force when its token starts
  uint64_t max_upload_bytes = 16ULL << 30;
  std::optional<uint64_t> ttl_seconds;
  bool fsync = true;
  // Held while a temporary file is created in output_dir. On ext4, concurrent creates in one
  // directory contend on its lock and on inode allocation so badly that one at a time is
  // several times faster (bench/fsync_limit: 9,100 creates/s from 1 thread, 3,000 from 4).
  std::shared_ptr<std::mutex> create_lock = std::make_shared<std::mutex>();
  // The plaintext checks of each upload (XML, schema, virus scan); none when empty.
  CheckFactory checks;
  // Given a refused upload's plaintext, still in its temporary file (descriptor open), before it
  // is removed: SCAN_QUARANTINE_DIR keeps what the virus scan found this way.
  std::function<void(const std::string& temp_path, int fd, const std::string& name, const CheckVerdict& verdict)>
      keep_refused;
};

struct UploadRequestHead {
  std::string name;  // percent-decoded <name>
  std::string content_type;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool has_content_encoding = false;
  std::string idempotency_key;                // Idempotency-Key, if sent
  std::optional<std::string> claimed_sha256;  // X-Transfer-Plaintext-SHA256, if sent
};

// Headers of an upload besides Content-Type.
inline constexpr const char* kIdempotencyKeyHeader = "Idempotency-Key";
inline constexpr const char* kPlaintextSha256Header = "X-Transfer-Plaintext-SHA256";

// Refuses what can be refused before reading the body (name, type, length, encodings).
std::optional<UploadOutcome> precheck_upload(const UploadRequestHead& head,
                                             const UploadSettings& settings);

class UploadSession {
 public:
  // `head` must have passed precheck_upload(). `only_key`: the index of the one key the token may
  // be for (the key that signed the request), else any loaded key.
  UploadSession(const UploadRequestHead& head, const UploadSettings& settings,
                std::optional<size_t> only_key = std::nullopt);
  UploadSession(const UploadSession&) = delete;
  UploadSession& operator=(const UploadSession&) = delete;
  ~UploadSession();  // removes temporary files unless the upload was committed

  // False once the session has failed; the outcome then says why.
  bool feed(const char* data, size_t size);
  // Verifies the token and hands the plaintext to `committer`.
  UploadOutcome finish(uint64_t now_unix_seconds, OutputCommitter& committer, const std::string& peer);
  // The body did not arrive whole: the failure seen first, else (status, message).
  UploadOutcome abandon(int status, const std::string& message);

 private:
  Status on_part_begin(const MultipartPart& part);
  Status on_part_data(const char* data, size_t size);
  Status on_part_end();
  Status write_temp(const char* data, size_t size);
  void fail(int status, const std::string& message);
  void fail(const Error& error);
  void discard_temp();

  const UploadSettings& settings_;
  std::string name_;
  std::string idempotency_key_;
  std::optional<std::string> claimed_sha256_;
  uint64_t expected_bytes_ = 0;  // Content-Length: the checks' size hint
  std::optional<size_t> only_key_;
  MultipartParser parser_;
  KeySet keys_;                  // the keys in force when the token started
  std::vector<size_t> key_map_;  // decryptor's key index -> index in keys_
  bool in_place_ = false;        // the file holds ciphertext until finish()
  std::optional<FernetStreamDecryptor> decryptor_;
  std::optional<TempFile> temp_;
  Sha256 hash_;                  // of the plaintext
  CheckPipeline checks_;         // fed the plaintext with hash_
  uint64_t written_ = 0;         // bytes in the temporary file
  bool in_file_part_ = false;
  int file_parts_ = 0;
  uint64_t body_bytes_ = 0;
  bool token_verified_ = false;
  std::optional<UploadOutcome> failure_;
};

// Maps an error to the HTTP status the receiver answers.
int status_for(const Error& error);

}  // namespace transfer::receiver
