#include "upload_session.hpp"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "transfer/upload_name.hpp"

namespace transfer::receiver {

std::string UploadOutcome::json_body() const {
  nlohmann::json j;  // std::map underneath: keys come out sorted, as Flask's jsonify writes them
  j["msg"] = message;
  j["status_code"] = status;
  if (status == 201) {
    j["bytes"] = bytes;
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
    return refuse(415, "expected multipart/form-data with a boundary, got '" + head.content_type + "'");
  }
  return std::nullopt;
}

UploadSession::UploadSession(const UploadRequestHead& head, const UploadSettings& settings)
    : settings_(settings),
      name_(head.name),
      final_path_(settings.output_dir + "/" + head.name + ".xml"),
      parser_(multipart_boundary(head.content_type).value_or("-"),
              MultipartParser::Handler{
                  [this](const MultipartPart& p) { return on_part_begin(p); },
                  [this](const char* d, size_t n) { return on_part_data(d, n); },
                  [this] { return on_part_end(); }}) {}

UploadSession::~UploadSession() { discard_temps(); }

void UploadSession::discard_temps() {
  for (auto& out : outputs_) {
    if (out) ::unlink(out->temp.path.c_str());
  }
  outputs_.clear();
}

void UploadSession::fail(int status, const std::string& message) {
  if (failure_) return;
  UploadOutcome o;
  o.status = status;
  o.message = message;
  failure_ = std::move(o);
  discard_temps();
}

void UploadSession::fail(const Error& error) { fail(status_for(error), error.message); }

Status UploadSession::on_part_begin(const MultipartPart& part) {
  if (part.name != "file") return ok_status();  // other fields are ignored
  if (++file_parts_ > 1) {
    return make_error(ErrorCode::kMalformedRequest, "more than one part named 'file'");
  }
  in_file_part_ = true;
  auto dec = FernetStreamDecryptor::create(
      settings_.keys,
      [this](size_t k, const char* d, size_t n) { return write_plaintext(k, d, n); },
      settings_.ttl_seconds);
  if (!dec) return dec.error();
  decryptor_.emplace(std::move(*dec));
  outputs_.resize(settings_.keys.size());
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

Status UploadSession::write_plaintext(size_t key_index, const char* data, size_t size) {
  auto& out = outputs_[key_index];
  if (!out) {
    auto temp = create_temp_file(settings_.output_dir, "upload", 0644);
    if (!temp) return temp.error();
    out.emplace();
    out->temp = std::move(*temp);
  }
  out->hash.update(data, size);
  out->bytes += size;
  return write_all(out->temp.fd.get(), data, size, out->temp.path);
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

UploadOutcome UploadSession::finish(uint64_t now_unix_seconds) {
  if (failure_) return *failure_;
  if (auto st = parser_.finish(); !st) {
    fail(st.error());
    return *failure_;
  }
  if (!decryptor_) {
    fail(400, "the form has no part named 'file'");
    return *failure_;
  }
  auto key = decryptor_->finish(now_unix_seconds);
  if (!key) {
    fail(key.error());
    return *failure_;
  }
  auto& out = outputs_[*key];
  if (!out) {  // an empty plaintext writes nothing until here
    if (auto st = write_plaintext(*key, "", 0); !st) {
      fail(st.error());
      return *failure_;
    }
  }
  const std::string temp_path = out->temp.path;
  Status st = ok_status();
  if (settings_.fsync) st = fsync_fd(out->temp.fd.get(), temp_path);
  out->temp.fd.reset();
  if (st && std::rename(temp_path.c_str(), final_path_.c_str()) != 0) {
    st = errno_error("cannot rename into", final_path_, errno);
  }
  if (!st) {
    fail(st.error());
    return *failure_;
  }
  UploadOutcome o;
  o.status = 201;
  o.message = "File is decrypted and saved to " + final_path_;
  o.output_path = final_path_;
  o.bytes = out->bytes;
  o.sha256 = out->hash.hex_digest();
  o.key_index = *key;
  out.reset();  // committed: no longer a temporary file to remove
  discard_temps();
  if (settings_.fsync) {
    if (auto d = fsync_directory(settings_.output_dir); !d) {
      // The file is in place but its directory entry may not be durable yet: report it.
      UploadOutcome e;
      e.status = status_for(d.error());
      e.message = d.error().message;
      return e;
    }
  }
  return o;
}

}  // namespace transfer::receiver
