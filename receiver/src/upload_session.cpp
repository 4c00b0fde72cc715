#include "upload_session.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "transfer/logging.hpp"
#include "transfer/upload_name.hpp"

namespace transfer::receiver {
namespace {
// A check that could not be done (clamd down or busy): when to try again.
constexpr int kCheckRetryAfterSeconds = 10;
}  // namespace

std::string UploadOutcome::json_body() const {
  nlohmann::json j;  // std::map underneath: keys come out sorted, as Flask's jsonify writes them
  j["msg"] = message;
  j["status_code"] = status;
  if (status == 201) {
    j["bytes"] = bytes;
    j["duplicate"] = duplicate;
    j["sha256"] = sha256;
  }
  return j.dump(-1, ' ', /*ensure_ascii=*/true) + "\n";
}

int status_for(const Error& error) {
  switch (error.code) {
    case ErrorCode::kInvalidName:
    case ErrorCode::kMalformedRequest:
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kTooLarge: return 413;
    case ErrorCode::kInvalidToken:
    case ErrorCode::kInvalidKey: return 422;
    case ErrorCode::kNoSpace: return 507;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kDatabase:
    case ErrorCode::kBusy: return 503;
    case ErrorCode::kUnauthenticated: return 401;
    default: return 500;
  }
}

std::optional<UploadOutcome> precheck_upload(const UploadRequestHead& head,
                                             const UploadSettings& settings) {
  auto refuse = [](int status, std::string msg) {
    UploadOutcome o;
    o.status = status;
    o.message = std::move(msg);
    return o;
  };
  if (auto st = validate_upload_name(head.name); !st) return refuse(400, st.error().message);
  const bool key_ok = std::all_of(head.idempotency_key.begin(), head.idempotency_key.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == ':';
  });
  if (head.idempotency_key.size() > 256 || !key_ok) {
    return refuse(400, std::string(kIdempotencyKeyHeader) + " must be at most 256 characters of [0-9A-Za-z-_.:]");
  }
  if (head.claimed_sha256 && (head.claimed_sha256->size() != 64 ||
                              head.claimed_sha256->find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return refuse(400, std::string(kPlaintextSha256Header) + " must be 64 lowercase hexadecimal digits");
  }
  if (head.has_content_encoding) {
    return refuse(415, "Content-Encoding is not accepted on uploads (its size cannot be bounded)");
  }
  if (head.chunked || !head.content_length) {
    return refuse(411, "Content-Length is required on uploads (chunked bodies are not accepted)");
  }
  if (*head.content_length > settings.max_upload_bytes) {
    return refuse(413, "upload of " + std::to_string(*head.content_length) +
                           " bytes is over the limit of " + std::to_string(settings.max_upload_bytes) +
                           " bytes (MAX_UPLOAD_BYTES)");
  }
  if (!multipart_boundary(head.content_type)) {
    return refuse(415, "expected multipart/form-data with a boundary, got '" +
                           client_value_prefix(head.content_type) + "'");
  }
  return std::nullopt;
}

UploadSession::UploadSession(const UploadRequestHead& head, const UploadSettings& settings,
                             std::optional<size_t> only_key)
    : settings_(settings),
      name_(head.name),
      idempotency_key_(head.idempotency_key),
      claimed_sha256_(head.claimed_sha256),
      expected_bytes_(head.content_length.value_or(0)),
      only_key_(only_key),
      parser_(multipart_boundary(head.content_type).value_or("-"),
              MultipartParser::Handler{
                  [this](const MultipartPart& p) { return on_part_begin(p); },
                  [this](const char* d, size_t n) { return on_part_data(d, n); },
                  [this] { return on_part_end(); }}) {}

UploadSession::~UploadSession() { discard_temp(); }

void UploadSession::discard_temp() {
  if (temp_) ::unlink(temp_->path.c_str());
  temp_.reset();
}

void UploadSession::fail(int status, const std::string& message) {
  if (failure_) return;
  UploadOutcome o;
  o.status = status;
  o.message = message;
  o.token_verified = token_verified_;
  failure_ = std::move(o);
  discard_temp();
}

void UploadSession::fail(const Error& error) { fail(status_for(error), error.message); }

Status UploadSession::on_part_begin(const MultipartPart& part) {
  if (part.name != "file") return ok_status();  // other fields are ignored
  if (++file_parts_ > 1) {
    return make_error(ErrorCode::kMalformedRequest, "more than one part named 'file'");
  }
  in_file_part_ = true;
  keys_ = settings_.keys->keys();
  std::vector<FernetKey> candidates;
  for (size_t k = 0; k < keys_->size(); ++k) {
    if (only_key_ && *only_key_ != k) continue;
    candidates.push_back((*keys_)[k]);
    key_map_.push_back(k);
  }
  if (candidates.empty()) return make_error(ErrorCode::kInvalidToken, "the key that signed the request is no longer loaded");
  in_place_ = candidates.size() > 1;
  if (settings_.checks) checks_ = settings_.checks(expected_bytes_);
  auto dec = in_place_
                 ? FernetStreamDecryptor::create_authenticator(
                       std::move(candidates), [this](const char* d, size_t n) { return write_temp(d, n); },
                       settings_.ttl_seconds)
                 : FernetStreamDecryptor::create(
                       std::move(candidates),
                       [this](size_t, const char* d, size_t n) {
                         hash_.update(d, n);
                         checks_.update(d, n);
                         return write_temp(d, n);
                       },
                       settings_.ttl_seconds);
  if (!dec) return dec.error();
  decryptor_.emplace(std::move(*dec));
  return ok_status();
}

Status UploadSession::on_part_data(const char* data, size_t size) {
  if (!in_file_part_) return ok_status();
  return decryptor_->update(data, size);
}

Status UploadSession::on_part_end() {
  in_file_part_ = false;
  return ok_status();
}

Status UploadSession::write_temp(const char* data, size_t size) {
  if (!temp_) {
    auto temp = [&] {
      std::lock_guard lock(*settings_.create_lock);
      return create_temp_file(settings_.output_dir, "upload", 0644);
    }();
    if (!temp) return temp.error();
    temp_.emplace(std::move(*temp));
  }
  written_ += size;
  return write_all(temp_->fd.get(), data, size, temp_->path);
}

bool UploadSession::feed(const char* data, size_t size) {
  if (failure_) return false;
  body_bytes_ += size;
  if (body_bytes_ > settings_.max_upload_bytes) {
    fail(413, "upload is over the limit of " + std::to_string(settings_.max_upload_bytes) +
                  " bytes (MAX_UPLOAD_BYTES)");
    return false;
  }
  if (auto st = parser_.feed(data, size); !st) {
    fail(st.error());
    return false;
  }
  return true;
}

UploadOutcome UploadSession::abandon(int status, const std::string& message) {
  fail(status, message);
  return *failure_;
}

UploadOutcome UploadSession::finish(uint64_t now_unix_seconds, OutputCommitter& committer,
                                    const std::string& peer) {
  if (failure_) return *failure_;
  if (auto st = parser_.finish(); !st) {
    fail(st.error());
    return *failure_;
  }
  if (!decryptor_) {
    fail(400, "the form has no part named 'file'");
    return *failure_;
  }
  auto matched = decryptor_->finish(now_unix_seconds);
  if (!matched) {
    fail(matched.error());
    return *failure_;
  }
  token_verified_ = true;
  if (!temp_) {  // an empty plaintext writes nothing until here
    if (auto st = write_temp("", 0); !st) {
      fail(st.error());
      return *failure_;
    }
  }
  uint64_t plaintext_bytes = written_;
  if (in_place_) {
    auto size = fernet_decrypt_in_place(temp_->fd.get(), written_, (*keys_)[key_map_[*matched]], decryptor_->iv(),
                                        [this](const char* d, size_t n) {
                                          hash_.update(d, n);
                                          checks_.update(d, n);
                                        },
                                        temp_->path);
    if (!size) {
      fail(size.error());
      return *failure_;
    }
    plaintext_bytes = *size;
  }
  VerifiedUpload verified;
  verified.name = name_;
  verified.temp_path = temp_->path;
  verified.sha256 = hash_.hex_digest();
  verified.bytes = plaintext_bytes;
  verified.key_index = key_map_[*matched];
  verified.idempotency_key = idempotency_key_;
  if (claimed_sha256_ && *claimed_sha256_ != verified.sha256) {
    fail(422, "the plaintext's SHA-256 " + verified.sha256 + " is not the " +
                  kPlaintextSha256Header + " sent (" + *claimed_sha256_ + ")");
    return *failure_;
  }
  if (!checks_.empty()) {
    CheckVerdict verdict = checks_.finish();
    if (!verdict.passed()) {
      const bool refused = verdict.outcome == CheckOutcome::kRefused;
      if (refused && settings_.keep_refused) settings_.keep_refused(temp_->path, temp_->fd.get(), name_, verdict);
      fail(refused ? 422 : 503, verdict.message);
      if (!refused) failure_->retry_after_s = kCheckRetryAfterSeconds;
      failure_->check = std::move(verdict);
      return *failure_;
    }
  }
  if (settings_.fsync) {
    if (auto st = fsync_fd(temp_->fd.get(), verified.temp_path); !st) {
      fail(st.error());
      return *failure_;
    }
  }
  temp_.reset();  // the committer owns the temporary file from here
  const CommitResult committed = committer.commit(verified, peer);
  UploadOutcome o;
  o.status = committed.status;
  o.message = committed.message;
  o.output_path = committed.output_path;
  o.bytes = verified.bytes;
  o.sha256 = verified.sha256;
  o.key_index = verified.key_index;
  o.duplicate = committed.duplicate;
  o.warning = committed.warning;
  o.token_verified = true;
  return o;
}

}  // namespace transfer::receiver
