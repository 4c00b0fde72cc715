#pragma once
// Uploads one file: multipart/form-data with one part `file` holding the Fernet token, with an
// exact Content-Length: either a token already spooled to a file (large inputs: encrypted while
// they were converted) or XML in memory, encrypted while it is sent. Each attempt's request head
// is signed (X-Transfer-Signature, see transfer/upload_signature.hpp) with the key derived from
// the Fernet key that encrypted the token, at the wall clock's time of the attempt. The
// attempt's transfer id (random) is signed too, so attempts within the same second still carry
// signatures of their own (the receiver refuses a signature it has seen), with no waiting and no
// state shared between uploaders or sender processes. Keeps its connection alive between
// uploads. The HTTP library stays behind this interface.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "transfer/key_file.hpp"
#include "transfer/result.hpp"
#include "transfer/upload_signature.hpp"

namespace httplib {
class Client;
}

namespace transfer::sender {

struct UploadTarget {
  std::string scheme = "http";  // or https: the receiver's certificate and host name are verified
  std::string host;
  int port = 8080;
  std::string uri_prefix;  // "/upload"
  double connect_timeout_s = 10;
  double io_timeout_s = 60;
  std::string ca_file;           // https: CAs to trust (empty: the system's)
  std::string client_cert_file;  // https: client certificate for mutual TLS
  std::string client_key_file;
};

struct UploadResponse {
  int status = 0;    // 0 when no HTTP answer came (connection error, timeout, cancelled)
  std::string body;  // the receiver's answer
  std::string error; // why there was no answer
  std::string retry_after;  // the Retry-After header, if any
  bool cancelled = false;   // stopped by abort() or the cancel flag (shutdown)
};

// What identifies one upload to the receiver (so it can recognise a retry).
struct UploadIdentity {
  std::string idempotency_key;
  std::string plaintext_sha256;  // of the XML sent
  std::string transfer_id;       // this attempt, logged by both sides (X-Transfer-Id)
};

// A new transfer id: 16 random hex digits.
std::string new_transfer_id();

// Seconds since the Unix epoch: what upload signatures are dated with.
using UnixClock = std::function<uint64_t()>;
uint64_t system_unix_time();

class Uploader {
 public:
  // `clock` dates the signatures.
  Uploader(UploadTarget target, const std::atomic<bool>& cancel,
           UnixClock clock = system_unix_time);
  ~Uploader();
  // Streams the Fernet token in `token_path` (`token_size` bytes of token text) to
  // <uri_prefix>/<name> as it is; `key` is the one that encrypted it (it signs the request).
  UploadResponse upload_token_file(const std::string& name, const std::string& token_path,
                                   uint64_t token_size, const UploadIdentity& identity,
                                   const FernetKey& key);
  // The same from memory (the XML of a small file), encrypted and signed with `key`.
  UploadResponse upload_buffer(const std::string& name, std::string_view xml, const UploadIdentity& identity,
                               const FernetKey& key);
  // GET / on the receiver (is it there?): the status, or 0 with the error.
  UploadResponse probe();
  // From another thread: ends an upload in progress now (its socket is shut down).
  void abort();
  std::string url_for(const std::string& name) const;
  // The request target sent (and signed) for `name`: <uri_prefix>/<percent-encoded name>.
  std::string target_for(const std::string& name) const;

 private:
  std::string describe(int error) const;  // an httplib::Error, in operator's words
  // Appends the next piece of token text to `out`; true once the token is complete.
  using TokenProducer = std::function<Result<bool>(std::string& out)>;
  // The body is produced in order: multipart head, the token (`token_size` bytes from
  // `produce`), tail; with an exact Content-Length. The head is signed with `key`'s upload key.
  UploadResponse send(const std::string& name, uint64_t token_size, const UploadIdentity& identity,
                      const FernetKey& key, const TokenProducer& produce);
  UploadTarget target_;
  const std::atomic<bool>& cancel_;
  UnixClock clock_;
  std::unique_ptr<httplib::Client> client_;
};

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string percent_encode(const std::string& s);

}  // namespace transfer::sender
