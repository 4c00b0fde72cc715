#pragma once
// A client of one S3-compatible bucket (AWS S3, radosgw, MinIO, ...) over libcurl, every request
// signed with AWS Signature V4 by libcurl (CURLOPT_AWS_SIGV4) and carrying the SHA-256 of its
// body (x-amz-content-sha256) and, when it has a body, its MD5 (Content-MD5): the server refuses
// a body damaged on the way.
//
// put() stores the bytes of one file version under a key and says whether they landed intact:
//   - up to `multipart_threshold` bytes: one PUT. The bytes are read twice from StoredBytes (once
//     for the MD5 and SHA-256 that the request head carries, then streamed as the body): nothing
//     but a 64 KiB piece is held in memory;
//   - above it: a multipart upload, one part (`part_size` bytes) in memory at a time, each with
//     its own Content-MD5 and payload hash, then CompleteMultipartUpload. On any failure the
//     upload is aborted (AbortMultipartUpload), so no parts are left behind; if even the abort
//     fails (the server went away), abort_incomplete_uploads() at the next start removes it;
//   - then what landed is verified before it counts: the ETag of the answer and a HEAD of the
//     object (Content-Length, ETag, every metadata value) must equal what we computed: the hex
//     MD5 of the body for a single PUT, MD5(part MD5s)-N for a multipart upload.
// Object keys: put() takes the key relative to the configured prefix and stores it at
// object_key(name) = prefix + "/" + name (see s3_object_key). Metadata go as x-amz-meta-<name>
// headers: names are lower-case letters, digits, '-' and '_'; values printable ASCII.
// Secrets: the access and secret keys are given to libcurl only; no message holds them.
//
// Thread-compatible: one operation at a time. abort() may be called from any thread; it and the
// cancel flag end the request in progress (a multipart upload is then aborted on the server with
// a short deadline, whatever the flag says) and the operation reports kTransient with an error
// that starts with "cancelled".

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "s3_protocol.hpp"
#include "stored_bytes.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

struct S3Settings {
  // "https://s3.eu-west-1.amazonaws.com" or "http://127.0.0.1:7480": scheme, host and optional
  // port; no path.
  std::string endpoint;
  std::string region = "us-east-1";  // signs every request (aws:amz:<region>:s3)
  std::string bucket;
  std::string prefix;  // keys are prefix + "/" + name (see s3_object_key); empty: none
  // true: http://host/bucket/key (radosgw, MinIO); false: http://bucket.host/key (AWS).
  bool path_style = false;
  std::string access_key;  // the key values themselves, read from their files by the caller
  std::string secret_key;
  std::string ca_file;                              // https: the CAs to trust (empty: the system's)
  uint64_t multipart_threshold = 16 * 1024 * 1024;  // larger bodies go in a multipart upload
  // Bytes per part (S3: at least 5 MiB but the last, at most 10,000 parts: raised if needed).
  uint64_t part_size = 8 * 1024 * 1024;
  long connect_timeout_s = 10;  // to connect (and finish TLS)
  long io_timeout_s = 60;       // a request that moves no byte for this long fails
};

// The settings' own errors ("s3 endpoint: ..."), before any request: a scheme other than
// http/https, a path in the endpoint, an empty bucket or region or key, a part size out of
// [5 MiB, 5 GiB], a threshold above 5 GiB (a single PUT's limit).
Status validate_s3_settings(const S3Settings& settings);

// What HEAD of an object said.
struct S3ObjectInfo {
  uint64_t size = 0;
  std::string etag;                             // unquoted
  std::map<std::string, std::string> metadata;  // x-amz-meta-<name> -> value, names lower-case
};

class S3Client {
 public:
  // `settings` must have passed validate_s3_settings. `cancel`: shutdown; it must outlive this.
  S3Client(S3Settings settings, const std::atomic<bool>& cancel);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Settings& settings() const { return settings_; }
  // The key `name` is stored under: s3_object_key(settings().prefix, name).
  std::string object_key(const std::string& name) const;
  // "s3://bucket/key", for messages and SendOutcome::location.
  std::string location(const std::string& key) const;

  // Stores `bytes` at object_key(name) with `metadata` (x-amz-meta-<name>: value; the caller
  // gives e.g. {"sha256", <hex SHA-256 of the plaintext XML>}), then verifies what landed (see
  // above). An object of the same key is replaced. kNone only once verified.
  SendOutcome put(const std::string& name, StoredBytes& bytes,
                  const std::map<std::string, std::string>& metadata);

  // HEAD of the bucket: can we reach it with these keys? Also ListObjects when HEAD failed, for
  // the server's own Code and Message (HEAD answers carry no body).
  ProbeOutcome probe();

  // HEAD of the object at `key` (a full key, prefix included).
  Result<S3ObjectInfo> head_object(const std::string& key);

  // The incomplete multipart uploads whose keys start with `key_prefix` (a full key prefix, e.g.
  // object_key("")), every page of them.
  Result<std::vector<S3MultipartUpload>> list_multipart_uploads(const std::string& key_prefix);
  // AbortMultipartUpload of one upload (an upload already gone counts as aborted).
  Status abort_multipart_upload(const std::string& key, const std::string& upload_id);
  // Aborts every incomplete multipart upload under `key_prefix` (what a killed sender left);
  // returns how many were aborted. Run it before any put() under that prefix: it cannot tell an
  // upload of another process sharing the prefix from an orphan.
  Result<size_t> abort_incomplete_uploads(const std::string& key_prefix);

  // From any thread: ends the request in progress now and fails the operation (cancelled).
  // Later operations run again (abort() ends what runs at the moment it is called).
  void abort();

 private:
  struct Request;   // one HTTP exchange: method, path, query, signed headers, body
  struct Response;  // its answer, or the transport's error
  class Transfer;   // one libcurl easy handle and the callbacks' state
  void begin_operation();
  // A failed exchange as a SendOutcome; `code_for_404`: the Code a 404 without a body means.
  SendOutcome failure(const Response& response, const std::string& what, SendOutcome outcome,
                      std::string_view code_for_404 = "NotFound");
  Response perform(const Request& request);
  std::string url_for(const std::string& encoded_path, const std::string& query) const;
  std::string bucket_path() const;  // the encoded path of the bucket ("/bucket" or "/")
  std::string object_path(const std::string& key) const;
  SendOutcome put_single(const std::string& key, StoredBytes& bytes,
                         const std::map<std::string, std::string>& metadata, SendOutcome outcome);
  SendOutcome put_multipart(const std::string& key, StoredBytes& bytes,
                            const std::map<std::string, std::string>& metadata,
                            SendOutcome outcome);
  SendOutcome verify(const std::string& key, uint64_t size, const std::string& etag,
                     const std::map<std::string, std::string>& metadata, SendOutcome outcome);
  bool cancelled() const;

  S3Settings settings_;
  const std::atomic<bool>& cancel_;
  std::atomic<uint64_t> abort_generation_{0};  // abort() bumps it: the operation running fails
  uint64_t operation_generation_ = 0;          // abort_generation_ when the operation began
  std::string base_url_;                       // scheme://host[:port] (path style)
  std::string bucket_base_url_;                // the same with the bucket's host (virtual style)
  std::unique_ptr<Transfer> transfer_;
};

}  // namespace transfer::sender
