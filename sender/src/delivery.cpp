#include "delivery.hpp"

#include <chrono>
#include <nlohmann/json.hpp>

#include "outbox_store.hpp"
#include "transfer/fernet.hpp"

namespace transfer::sender {

std::string answer_message(int status, const std::string& body) {
  std::string why = "receiver answered " + std::to_string(status);
  try {
    why += ": " + nlohmann::json::parse(body).at("msg").get<std::string>();
  } catch (const nlohmann::json::exception&) {
  }
  return why;
}

DeliveryResult deliver(FilePayload& payload, const std::string& destination, const FernetKey& key,
                       const std::string& transfer_id, Uploader& uploader) {
  DeliveryResult r;
  const auto& source = payload.source();
  const UploadIdentity identity{idempotency_key(source.name, source.sha256), payload.xml_sha256(),
                                transfer_id};
  const auto started = std::chrono::steady_clock::now();
  UploadResponse response;
  if (payload.in_memory()) {
    response = uploader.upload_buffer(payload.upload_name(), payload.xml(), identity, key);
  } else if (TokenSpoolSink* spool = payload.spool(destination); spool != nullptr) {
    response = uploader.upload_token_file(payload.upload_name(), spool->path(),
                                          spool->token_bytes(), identity, spool->key());
  } else {
    r.error = "no token was spooled for this destination";
    return r;
  }
  r.upload_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  r.cancelled = response.cancelled;
  r.answered = response.status != 0;
  r.status = response.status;
  r.body = response.body;
  r.retry_after = response.retry_after;
  if (response.status == 0) {
    r.error = response.error;
    return r;
  }
  r.verdict = classify_status(response.status);
  // 401 is a refused signature (stale, made before the receiver restarted, or by no key it has
  // loaded): each attempt signs afresh, so it is retried like a 5xx, never given up at once.
  if (response.status == 401) r.verdict = AttemptVerdict::kTransient;
  if (r.verdict != AttemptVerdict::kDelivered) {
    r.error = answer_message(response.status, response.body);
    return r;
  }
  try {  // a receiver that reports the plaintext digest (ours does) must have stored what we sent
    const auto answer = nlohmann::json::parse(response.body);
    if (answer.contains("sha256") && answer.at("sha256").get<std::string>() != payload.xml_sha256()) {
      r.verdict = AttemptVerdict::kTransient;
      r.error = "the receiver stored different bytes (sha256 mismatch)";
      return r;
    }
    r.duplicate = answer.value("duplicate", false);
    r.bytes_sent = payload.in_memory() ? fernet_token_length(payload.xml().size())
                                       : (payload.spool(destination) ? payload.spool(destination)->token_bytes() : 0);
  } catch (const nlohmann::json::exception&) {
  }
  return r;
}

}  // namespace transfer::sender
