#pragma once
// Who may read the ledger (GET /files, /files/<name>) and the metrics (GET /metrics):
// FILES_ACCESS and METRICS_ACCESS, each open (anyone who reaches the port), signed (a request
// signed as an upload is: X-Transfer-Signature over the method, the target as sent, a
// Content-Length of 0 and the X-Transfer-Id, with the upload signing key of a loaded key; each
// signature once, inside SIGNATURE_WINDOW) or off (404, as if the endpoint did not exist).
// Liveness (/) and readiness (/readyz) are always open: health checks must not need a key.
// Thread-safe.

#include <optional>
#include <string>

#include "http_server.hpp"
#include "upload_gate.hpp"

namespace transfer::receiver {

enum class Access { kOpen, kSigned, kOff };
Result<Access> parse_access(const std::string& text, const std::string& option);

class ReadAccess {
 public:
  ReadAccess(Access files, Access metrics, UploadGate& gate)
      : files_(files), metrics_(metrics), gate_(gate) {}
  // Nothing when the request may be answered, else the refusal (401 or 404).
  std::optional<PlainResponse> check(const http::RequestHead& head, Endpoint endpoint,
                                     uint64_t now_unix_seconds);

 private:
  Access files_;
  Access metrics_;
  UploadGate& gate_;
};

}  // namespace transfer::receiver
