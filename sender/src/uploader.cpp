#include "uploader.hpp"

#include <fcntl.h>
#include <httplib.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "transfer/config.hpp"
#include "transfer/fernet.hpp"
#include "transfer/file_util.hpp"
#include "transfer/sha256.hpp"

namespace transfer::sender {
namespace {

void set_timeout(httplib::Client& c, void (httplib::Client::*setter)(time_t, time_t), double s) {
  const auto split = split_seconds(s);
  (c.*setter)(split.sec, split.usec);
}

constexpr size_t kChunk = 1 << 16;

std::string safe_filename(const std::string& name) {
  std::string out;
  for (const char c : name) out += (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) ? '_' : c;
  return out;
}

}  // namespace

std::string percent_encode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string new_transfer_id() {
  uint8_t rnd[8];
  RAND_bytes(rnd, sizeof rnd);
  return to_hex(rnd, sizeof rnd);
}

uint64_t system_unix_time() {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count());
}

Uploader::Uploader(UploadTarget target, const std::atomic<bool>& cancel, UnixClock clock)
    : target_(std::move(target)),
      cancel_(cancel),
      clock_(std::move(clock)),
      client_(std::make_unique<httplib::Client>(
          target_.scheme + "://" +
              (target_.host.find(':') == std::string::npos ? target_.host
                                                           : "[" + target_.host + "]") +
              ":" + std::to_string(target_.port),
          target_.client_cert_file, target_.client_key_file)) {
  if (target_.scheme == "https") {
    if (!target_.ca_file.empty()) client_->set_ca_cert_path(target_.ca_file.c_str());
    client_->enable_server_certificate_verification(true);
  }
  set_timeout(*client_, &httplib::Client::set_connection_timeout, target_.connect_timeout_s);
  set_timeout(*client_, &httplib::Client::set_read_timeout, target_.io_timeout_s);
  set_timeout(*client_, &httplib::Client::set_write_timeout, target_.io_timeout_s);
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);
  client_->set_url_encode(false);  // the path is encoded here, exactly once
}

Uploader::~Uploader() = default;

std::string Uploader::describe(int error) const {
  const auto e = static_cast<httplib::Error>(error);
  switch (e) {
    case httplib::Error::SSLServerVerification:
      return "TLS: the receiver's certificate was refused (not signed by a CA in " +
             (target_.ca_file.empty() ? std::string("the system's store") : "CA_FILE=" + target_.ca_file) +
             ", expired, or not issued for the host name '" + target_.host + "')";
    case httplib::Error::SSLConnection:
      return "TLS handshake with the receiver failed (is it serving HTTPS? does it require a client "
             "certificate (CLIENT_CERT_FILE) or refuse this one?)";
    case httplib::Error::SSLLoadingCerts:
      return "TLS: cannot load CA_FILE or CLIENT_CERT_FILE/CLIENT_KEY_FILE";
    case httplib::Error::Read:
    case httplib::Error::Write:
      if (target_.scheme == "https") {
        // With TLS 1.3 a receiver that wants a client certificate lets the handshake finish and
        // then closes the connection: the client sees only a failed read or write.
        return httplib::to_string(e) + " (over TLS this is how a receiver that requires a client certificate " +
               (target_.client_cert_file.empty() ? std::string("closes the connection: set CLIENT_CERT_FILE and CLIENT_KEY_FILE)")
                                                 : "(CLIENT_CERT_FILE) may refuse this one)");
      }
      return httplib::to_string(e);
    default: return httplib::to_string(e);
  }
}

UploadResponse Uploader::probe() {
  UploadResponse response;
  auto result = client_->Get("/");
  if (!result) {
    response.error = "no answer from " + target_.scheme + "://" + target_.host + ":" + std::to_string(target_.port) +
                     "/: " + describe(static_cast<int>(result.error()));
    client_->stop();
    return response;
  }
  response.status = result->status;
  response.body = result->body.substr(0, 4096);
  return response;
}

std::string Uploader::url_for(const std::string& name) const {
  return target_.scheme + "://" + target_.host + ":" + std::to_string(target_.port) +
         target_for(name);
}

// cpp-httplib writes this on the request line as it is (set_url_encode(false)), so the target
// signed is the target sent.
std::string Uploader::target_for(const std::string& name) const {
  return target_.uri_prefix + "/" + percent_encode(name);
}

void Uploader::abort() { client_->stop(); }

UploadResponse Uploader::upload_token_file(const std::string& name, const std::string& token_path,
                                           uint64_t token_size, const UploadIdentity& identity,
                                           const FernetKey& key) {
  UniqueFd fd(::open(token_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    UploadResponse response;
    response.error = errno_error("cannot open", token_path, errno).message;
    return response;
  }
  uint64_t left = token_size;
  return send(name, token_size, identity, key, [&](std::string& out) -> Result<bool> {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, kChunk));
    const size_t at = out.size();  // appended after what is pending
    out.resize(at + want);
    size_t got = 0;
    while (got < want) {
      const ssize_t n = ::read(fd.get(), out.data() + at + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("cannot read", token_path, errno);
      if (n == 0)
        return make_error(ErrorCode::kIo, token_path + ": shorter than its token (" +
                                              std::to_string(token_size) + " bytes)");
      got += static_cast<size_t>(n);
    }
    left -= want;
    return left == 0;
  });
}

UploadResponse Uploader::upload_buffer(const std::string& name, std::string_view xml,
                                       const UploadIdentity& identity, const FernetKey& key) {
  auto enc = FernetStreamEncryptor::create(key);
  if (!enc) {
    UploadResponse response;
    response.error = enc.error().message;
    return response;
  }
  size_t pos = 0;
  return send(name, fernet_token_length(xml.size()), identity, key,
              [&](std::string& out) -> Result<bool> {
                const size_t n = std::min(kChunk, xml.size() - pos);
                if (n == 0) {
                  enc->finish(out);
                  return true;
                }
                enc->update(xml.data() + pos, n, out);
                pos += n;
                return false;
              });
}

UploadResponse Uploader::send(const std::string& name, uint64_t token_size,
                              const UploadIdentity& identity, const FernetKey& key,
                              const TokenProducer& produce) {
  UploadResponse response;
  // Derived per attempt (about 10 us: nothing next to an HTTP exchange), so no copy of key
  // material outlives the upload.
  auto signing_key = derive_upload_signing_key(key);
  if (!signing_key) {
    response.error = "cannot derive the upload signing key: " + signing_key.error().message;
    return response;
  }
  uint8_t rnd[16];
  RAND_bytes(rnd, sizeof rnd);
  const std::string boundary = to_hex(rnd, sizeof rnd);  // like requests: 32 hex digits
  const std::string head = "--" + boundary +
                           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" +
                           safe_filename(name) + ".xml.enc\"\r\n\r\n";
  const std::string tail = "\r\n--" + boundary + "--\r\n";
  const uint64_t length = head.size() + token_size + tail.size();

  // The body is produced in order: head, token, tail.
  std::string pending = head;
  bool token_done = false;
  bool tail_sent = false;
  std::string read_error;
  // Pieces are gathered up to kChunk before each write: a small upload's whole body goes out in
  // one send (each write is a poll and a send in cpp-httplib).
  auto provider = [&](size_t /*offset*/, size_t /*length*/, httplib::DataSink& sink) {
    if (cancel_.load()) return false;
    while (pending.size() < kChunk && !tail_sent) {
      if (!token_done) {
        auto done = produce(pending);
        if (!done) {
          read_error = done.error().message;
          return false;
        }
        token_done = *done;
      } else {
        pending += tail;
        tail_sent = true;
      }
    }
    if (!pending.empty()) {
      if (!sink.write(pending.data(), pending.size())) return false;
      pending.clear();
    }
    return true;
  };

  httplib::Headers headers = {{"Accept", "application/json"},
                              {"Idempotency-Key", identity.idempotency_key},
                              {"X-Transfer-Plaintext-SHA256", identity.plaintext_sha256}};
  if (!identity.transfer_id.empty()) headers.emplace("X-Transfer-Id", identity.transfer_id);
  const std::string path = target_for(name);
  // What the receiver sees: this method, this target on the request line, `length` as the
  // Content-Length cpp-httplib writes for a sized content provider, the headers above (the
  // transfer id is this attempt's nonce).
  const SignedHead signed_head{"POST",
                               path,
                               length,
                               identity.plaintext_sha256,
                               identity.idempotency_key,
                               identity.transfer_id};
  headers.emplace(std::string(kSignatureHeader),
                  sign_upload_head(*signing_key, signed_head, clock_()));
  auto result = client_->Post(path, headers, static_cast<size_t>(length), provider,
                              "multipart/form-data; boundary=" + boundary);
  if (!result) {
    response.cancelled = cancel_.load() || result.error() == httplib::Error::Canceled;
    response.error = response.cancelled ? "cancelled (shutting down)"
                     : !read_error.empty() ? read_error
                                           : "no answer from " + url_for(name) + ": " +
                                                 describe(static_cast<int>(result.error()));
    client_->stop();  // a half-sent request leaves the connection unusable
    return response;
  }
  response.status = result->status;
  response.retry_after = result->get_header_value("Retry-After");
  response.body = result->body.substr(0, 64 * 1024);
  return response;
}

}  // namespace transfer::sender
