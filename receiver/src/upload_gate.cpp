#include "upload_gate.hpp"

#include <algorithm>

namespace transfer::receiver {

Result<SignaturePolicy> parse_signature_policy(const std::string& text) {
  if (text == "optional") return SignaturePolicy::kOptional;
  if (text == "required") return SignaturePolicy::kRequired;
  return make_error(ErrorCode::kInvalidArgument,
                    "UPLOAD_SIGNATURES must be optional or required, not '" + text + "'");
}

UploadGate::UploadGate(UploadGateSettings settings, std::shared_ptr<KeyRing> keys,
                       FreeBytes free_bytes)
    : settings_(settings),
      keys_(std::move(keys)),
      free_bytes_(std::move(free_bytes)),
      replays_(settings.window_seconds, settings.replay_memory, settings.signatures_not_before) {}

std::shared_ptr<const std::vector<UploadSigningKey>> UploadGate::signing_keys() {
  KeySet current = keys_->keys();
  std::lock_guard lock(keys_mu_);
  if (current != derived_from_ || !derived_) {
    auto derived = std::make_shared<std::vector<UploadSigningKey>>();
    for (const FernetKey& key : *current) {
      auto k = derive_upload_signing_key(key);
      if (!k) return nullptr;
      derived->push_back(*k);
    }
    derived_ = std::move(derived);
    derived_from_ = std::move(current);
  }
  return derived_;
}

Result<Authentication> UploadGate::authenticate(const GateRequest& request,
                                                uint64_t now_unix_seconds) {
  if (!request.signature) {
    if (settings_.policy == SignaturePolicy::kRequired) {
      return make_error(ErrorCode::kUnauthenticated, "this receiver accepts signed uploads only (" +
                                                         std::string(kSignatureHeader) +
                                                         " is missing)");
    }
    return Authentication{};
  }
  const auto keys = signing_keys();
  if (!keys) return make_error(ErrorCode::kIo, "cannot derive the upload signing keys");
  const SignedHead signed_head{request.method,          request.target,
                               request.content_length,  request.plaintext_sha256,
                               request.idempotency_key, request.transfer_id};
  auto key = verify_upload_signature(*request.signature, signed_head, *keys, now_unix_seconds,
                                     settings_.window_seconds);
  if (!key) return key.error();
  const auto parsed = parse_upload_signature(*request.signature);  // cannot fail: verified
  if (!parsed) return parsed.error();
  if (auto first = replays_.first_use(parsed->v1_hex, parsed->time, now_unix_seconds); !first) {
    return first.error();
  }
  return Authentication{*key};
}

UploadGate::Admission& UploadGate::Admission::operator=(Admission&& o) noexcept {
  if (this != &o) {
    release();
    gate_ = o.gate_;
    declared_ = o.declared_;
    reserved_ = o.reserved_;
    unsigned_ = o.unsigned_;
    o.gate_ = nullptr;
  }
  return *this;
}

void UploadGate::Admission::release() {
  if (!gate_) return;
  std::lock_guard lock(gate_->mu_);
  gate_->reserved_ -= reserved_;
  if (unsigned_) {
    gate_->unsigned_reserved_ -= declared_;
    --gate_->unsigned_uploads_;
  }
  gate_ = nullptr;
}

void UploadGate::Admission::received(uint64_t bytes) {
  if (!gate_ || !unsigned_ || reserved_ >= declared_) return;
  const uint64_t more = std::min(bytes, declared_ - reserved_);
  std::lock_guard lock(gate_->mu_);
  reserved_ += more;
  gate_->reserved_ += more;
}

Result<UploadGate::Admission> UploadGate::admit(const Authentication& auth,
                                                uint64_t content_length) {
  const bool is_unsigned = !auth.key_index;
  if (is_unsigned && content_length > settings_.unsigned_budget_bytes) {
    return make_error(ErrorCode::kTooLarge, "an unsigned upload of " +
                                                std::to_string(content_length) +
                                                " bytes is over UNSIGNED_UPLOAD_BUDGET=" +
                                                std::to_string(settings_.unsigned_budget_bytes) +
                                                " (sign the upload, or raise the budget)");
  }
  auto free = free_bytes_();  // before taking the lock: statvfs can be slow
  std::lock_guard lock(mu_);
  if (is_unsigned && settings_.unsigned_upload_slots > 0 &&
      unsigned_uploads_ >= settings_.unsigned_upload_slots) {
    return make_error(ErrorCode::kBusy,
                      std::to_string(unsigned_uploads_) +
                          " unsigned uploads are in flight, as many as they may hold at once; "
                          "retry later (signed uploads are not limited)");
  }
  if (is_unsigned && unsigned_reserved_ + content_length > settings_.unsigned_budget_bytes) {
    return make_error(ErrorCode::kBusy,
                      "unsigned uploads in flight hold " + std::to_string(unsigned_reserved_) +
                          " of UNSIGNED_UPLOAD_BUDGET=" +
                          std::to_string(settings_.unsigned_budget_bytes) + " bytes; retry later");
  }
  if (free) {
    const uint64_t available = *free > reserved_ ? *free - reserved_ : 0;
    if (available < content_length || available - content_length < settings_.min_free_bytes) {
      return make_error(ErrorCode::kNoSpace,
                        "not enough space for " + std::to_string(content_length) + " more bytes: " +
                            std::to_string(*free) + " bytes free, " + std::to_string(reserved_) +
                            " reserved by uploads in flight, MIN_FREE_BYTES=" +
                            std::to_string(settings_.min_free_bytes));
    }
  }
  Admission a;
  a.gate_ = this;
  a.declared_ = content_length;
  a.unsigned_ = is_unsigned;
  if (is_unsigned) {
    unsigned_reserved_ += content_length;
    ++unsigned_uploads_;
  } else {
    reserved_ += content_length;
    a.reserved_ = content_length;
  }
  return a;
}

uint64_t UploadGate::unsigned_bytes_in_flight() const {
  std::lock_guard lock(mu_);
  return unsigned_reserved_;
}

uint64_t UploadGate::reserved_bytes() const {
  std::lock_guard lock(mu_);
  return reserved_;
}

}  // namespace transfer::receiver
