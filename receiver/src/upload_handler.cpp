#include "upload_handler.hpp"

#include <chrono>

#include "transfer/http/body_reader.hpp"

namespace transfer::receiver {
namespace {

// Seconds a client is asked to wait when a shared allowance is used up (503).
constexpr int kRetryAfterBusySeconds = 5;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

UploadOutcome refusal_for(const Error& error) {
  UploadOutcome o;
  o.status = status_for(error);
  o.message = error.message;
  if (error.code == ErrorCode::kBusy) o.retry_after_s = kRetryAfterBusySeconds;
  return o;
}

uint64_t unix_now() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string field_or_empty(const http::RequestHead& head, std::string_view name) {
  const std::string* v = head.field(name);
  return v ? *v : std::string();
}

}  // namespace

UploadRequestHead upload_request_head(const http::RequestHead& head, std::string name) {
  UploadRequestHead u;
  u.name = std::move(name);
  u.content_type = field_or_empty(head, "Content-Type");
  u.content_length = head.content_length;
  u.chunked = head.chunked;
  u.has_content_encoding = head.field("Content-Encoding") != nullptr;
  u.idempotency_key = field_or_empty(head, kIdempotencyKeyHeader);
  if (const std::string* sha = head.field(kPlaintextSha256Header)) u.claimed_sha256 = *sha;
  return u;
}

UploadResult UploadHandler::serve(http::Connection& connection, const http::RequestHead& head,
                                  const UploadRequestHead& upload) {
  UploadResult result;
  const uint64_t length = upload.content_length.value_or(0);
  const std::string* signature = head.field(kSignatureHeader);
  const GateRequest request{head.method,
                            head.target,
                            length,
                            upload.claimed_sha256.value_or(""),
                            upload.idempotency_key,
                            field_or_empty(head, "X-Transfer-Id"),
                            signature ? std::optional(*signature) : std::nullopt};
  if (before_upload_) before_upload_();
  auto authenticated = gate_.authenticate(request, unix_now());
  if (!authenticated) {
    result.outcome = refusal_for(authenticated.error());
    result.body_complete = length == 0;
    return result;
  }
  result.signed_upload = authenticated->key_index.has_value();
  auto admitted = gate_.admit(*authenticated, length);
  if (!admitted) {
    result.outcome = refusal_for(admitted.error());
    result.body_complete = length == 0;
    return result;
  }
  UploadGate::Admission admission = std::move(*admitted);
  if (head.expect_continue && head.minor_version == 1 && length > 0 &&
      !http::write_all_within(connection, kContinue, static_cast<int>(write_timeout_s_ * 1000))) {
    result.outcome = refusal_for(make_error(ErrorCode::kIo, "could not send 100 Continue"));
    result.body_complete = false;
    return result;
  }
  UploadSession session(upload, settings_, authenticated->key_index);
  http::BodyReader reader(connection, length, timeouts_);
  const auto read = reader.read([&](const char* data, size_t size) {
    admission.received(size);
    return session.feed(data, size);
  });
  switch (read) {
    case http::BodyReader::Outcome::kComplete:
      result.outcome = session.finish(unix_now(), committer_, connection.peer());
      break;
    case http::BodyReader::Outcome::kStopped:
      result.outcome = session.abandon(400, "the request body was refused");
      result.body_complete = false;
      break;
    case http::BodyReader::Outcome::kTimedOut:
    case http::BodyReader::Outcome::kEnded:
      result.outcome = session.abandon(
          400, "the request body ended early, or arrived too slowly (READ_TIMEOUT, MIN_BODY_RATE)");
      result.body_complete = false;
      break;
  }
  return result;
}

}  // namespace transfer::receiver
