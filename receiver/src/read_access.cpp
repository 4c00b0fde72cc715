#include "read_access.hpp"

#include "transfer/http/http_answer.hpp"

namespace transfer::receiver {

Result<Access> parse_access(const std::string& text, const std::string& option) {
  if (text == "open") return Access::kOpen;
  if (text == "signed") return Access::kSigned;
  if (text == "off") return Access::kOff;
  return make_error(ErrorCode::kInvalidArgument,
                    option + " must be open, signed or off, not '" + text + "'");
}

std::optional<PlainResponse> ReadAccess::check(const http::RequestHead& head, Endpoint endpoint,
                                               uint64_t now_unix_seconds) {
  Access access = Access::kOpen;
  if (endpoint == Endpoint::kFiles || endpoint == Endpoint::kFile) access = files_;
  if (endpoint == Endpoint::kMetrics) access = metrics_;
  if (access == Access::kOpen) return std::nullopt;
  if (access == Access::kOff)
    return PlainResponse{404, "application/json", http::json_message(404, "not found"), {}};
  const std::string* signature = head.field(kSignatureHeader);
  const std::string* transfer_id = head.field(kTransferIdHeader);
  GateRequest request{head.method,
                      head.target,
                      0,
                      "",
                      "",
                      transfer_id ? *transfer_id : "",
                      signature ? std::optional(*signature) : std::nullopt};
  auto auth = signature
                  ? gate_.authenticate(request, now_unix_seconds)
                  : Result<Authentication>(make_error(
                        ErrorCode::kUnauthenticated,
                        std::string(endpoint_label(endpoint)) + " needs a signed request (" +
                            std::string(kSignatureHeader) + "; `sender sign-request` makes one)"));
  if (auth && auth->key_index) return std::nullopt;
  const Error error = auth ? make_error(ErrorCode::kUnauthenticated, "not signed") : auth.error();
  const int status = error.code == ErrorCode::kBusy ? 503 : 401;
  PlainResponse r{status, "application/json", http::json_message(status, error.message), {}};
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", std::string(kSignatureHeader));
  return r;
}

}  // namespace transfer::receiver
