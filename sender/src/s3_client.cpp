#include "s3_client.hpp"

#include <curl/curl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <functional>
#include <mutex>
#include <utility>

#include "retry_policy.hpp"
#include "transfer/sha256.hpp"

namespace transfer::sender {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr size_t kPiece = 64 * 1024;     // what a single PUT reads at a time
constexpr size_t kMaxAnswer = 8 * kMiB;  // an answer's body kept (errors, listings)
constexpr size_t kMaxQuoted = 300;       // a server's message quoted in ours
constexpr long kCleanupTimeoutS = 15;    // an abort after a failure, whole request
// The SHA-256 of no bytes: the payload hash of a request without a body.
constexpr const char* kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct CurlUrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlFree {
  void operator()(char* s) const { curl_free(s); }
};
struct CurlEasyFree {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct CurlSlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The parts of the endpoint URL, or why it is not one we take.
struct EndpointParts {
  std::string scheme;
  std::string host;  // with brackets for IPv6
  std::string port;  // empty: the scheme's
};
Result<EndpointParts> parse_endpoint(const std::string& endpoint) {
  init_curl_once();
  const std::unique_ptr<CURLU, CurlUrlFree> url(curl_url());
  if (!url) return make_error(ErrorCode::kInvalidArgument, "s3 endpoint: out of memory");
  if (curl_url_set(url.get(), CURLUPART_URL, endpoint.c_str(), 0) != CURLUE_OK) {
    return make_error(ErrorCode::kInvalidArgument,
                      "s3 endpoint \"" + endpoint + "\" is not a URL (https://host[:port])");
  }
  auto part = [&](CURLUPart which) -> std::string {
    char* value = nullptr;
    if (curl_url_get(url.get(), which, &value, 0) != CURLUE_OK || value == nullptr) return {};
    const std::unique_ptr<char, CurlFree> owned(value);
    return value;
  };
  EndpointParts parts{part(CURLUPART_SCHEME), part(CURLUPART_HOST), part(CURLUPART_PORT)};
  if (parts.scheme != "http" && parts.scheme != "https") {
    return make_error(ErrorCode::kInvalidArgument,
                      "s3 endpoint \"" + endpoint + "\": the scheme must be http or https");
  }
  const std::string path = part(CURLUPART_PATH);
  if ((!path.empty() && path != "/") || !part(CURLUPART_QUERY).empty() ||
      !part(CURLUPART_USER).empty() || !part(CURLUPART_FRAGMENT).empty()) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "s3 endpoint \"" + endpoint + "\": only scheme, host and port (no path, query or user)");
  }
  if (parts.host.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "s3 endpoint \"" + endpoint + "\": no host");
  }
  return parts;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

// A server's text quoted in one of our messages: one line, bounded.
std::string quote_server_text(std::string_view s) {
  std::string out(s.substr(0, kMaxQuoted));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (s.size() > kMaxQuoted) out += "...";
  return out;
}

Status check_metadata(const std::map<std::string, std::string>& metadata) {
  for (const auto& [name, value] : metadata) {
    const bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
    const bool value_ok =
        std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; }) &&
        (value.empty() || (value.front() != ' ' && value.back() != ' '));
    if (!name_ok || !value_ok) {
      return make_error(ErrorCode::kInvalidArgument,
                        "s3 metadata \"" + quote_server_text(name) +
                            "\": names are [a-z0-9_-], values printable ASCII without "
                            "surrounding spaces");
    }
  }
  return ok_status();
}

std::string sha256_hex(std::string_view data) {
  Sha256 sha;
  sha.update(data);
  return sha.hex_digest();
}

}  // namespace

Status validate_s3_settings(const S3Settings& s) {
  if (auto endpoint = parse_endpoint(s.endpoint); !endpoint) return endpoint.error();
  auto invalid = [](const std::string& what) {
    return make_error(ErrorCode::kInvalidArgument, "s3 " + what);
  };
  if (s.bucket.empty() || s.bucket.find('/') != std::string::npos) {
    return invalid("bucket: a name without '/' is required");
  }
  if (s.region.empty() || s.region.find(':') != std::string::npos) {
    return invalid("region: a region name (e.g. us-east-1) is required");
  }
  if (s.access_key.empty() || s.secret_key.empty()) {
    return invalid("keys: the access key and the secret key must not be empty");
  }
  if (s.access_key.find(':') != std::string::npos) {
    return invalid("access key: must not contain ':'");
  }
  if (s.part_size < 5 * kMiB || s.part_size > 5 * kGiB) {
    return invalid("part size " + std::to_string(s.part_size) +
                   ": S3 takes parts of 5 MiB to 5 GiB");
  }
  if (s.multipart_threshold > 5 * kGiB) {
    return invalid("multipart threshold " + std::to_string(s.multipart_threshold) +
                   ": a single PUT takes at most 5 GiB");
  }
  if (s.connect_timeout_s <= 0 || s.io_timeout_s <= 0) {
    return invalid("timeouts must be positive");
  }
  return ok_status();
}

// ---- one HTTP exchange ----------------------------------------------------------------------

struct S3Client::Request {
  std::string method;                // GET, HEAD, PUT, POST, DELETE
  std::string path;                  // encoded (object_path / bucket_path)
  std::string query;                 // canonical (s3_canonical_query)
  std::vector<std::string> headers;  // "name: value"; libcurl signs every one of them
  std::string payload_sha256 = kEmptySha256;
  bool has_body = false;               // PUT and POST send a body (maybe empty)
  std::string_view memory_body;        // the body, when in memory
  StoredBytes* stream_body = nullptr;  // or streamed from here (from its start)
  uint64_t body_size = 0;
  bool ignore_cancel = false;  // the cleanup after a failure runs even when cancelled
  long timeout_s = 0;          // a limit for the whole exchange (0: only the io timeout)
};

struct S3Client::Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  int curl_code = CURLE_OK;
  std::string transport_error;  // libcurl's words
  bool request_sent = false;    // the request had gone out when it failed
  bool cancelled = false;
  std::string body_error;  // the bytes to store could not be read

  bool ok() const { return curl_code == CURLE_OK && status >= 200 && status < 300; }
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One libcurl easy handle (kept: its connections are reused) and the state its callbacks share.
// The sockets it opens are recorded so that abort() can shut them down from another thread: the
// close callback removes a socket from the record under the same lock before it is closed.
class S3Client::Transfer {
 public:
  explicit Transfer(std::function<bool()> cancelled) : cancelled_(std::move(cancelled)) {
    init_curl_once();
    easy_.reset(curl_easy_init());
    if (!easy_) std::abort();
  }
  ~Transfer() { easy_.reset(); }  // closes its connections through close_socket while alive
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  void shutdown_sockets() {
    const std::lock_guard lock(sockets_mutex_);
    for (const int fd : sockets_) ::shutdown(fd, SHUT_RDWR);
  }

  Response run(const S3Settings& settings, const std::string& url, const Request& request) {
    Response response;
    if (!request.ignore_cancel && cancelled_()) {
      response.cancelled = true;
      response.curl_code = CURLE_ABORTED_BY_CALLBACK;
      response.transport_error = "cancelled before it started";
      return response;
    }
    request_ = &request;
    response_ = &response;
    body_offset_ = 0;
    if (request.stream_body != nullptr) {
      if (auto rewound = request.stream_body->rewind(); !rewound) {
        response.body_error = rewound.error().message;
        response.curl_code = CURLE_READ_ERROR;
        return response;
      }
    }

    CURL* h = easy_.get();
    curl_easy_reset(h);
    std::unique_ptr<curl_slist, CurlSlistFree> headers;
    auto add_header = [&](const std::string& line) {
      curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
      if (appended == nullptr) std::abort();
      (void)headers.release();
      headers.reset(appended);
    };
    // libcurl 7.88 signs the payload hash only when this header is there (a streamed body is
    // otherwise signed as if empty).
    add_header("x-amz-content-sha256: " + request.payload_sha256);
    for (const auto& line : request.headers) add_header(line);
    const std::string sigv4 = "aws:amz:" + settings.region + ":s3";
    char error_buffer[CURL_ERROR_SIZE] = {0};

    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);  // keys with "../" stay as they are
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, settings.access_key.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, settings.secret_key.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, settings.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, settings.io_timeout_s);
    if (request.timeout_s > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT, request.timeout_s);
    if (!settings.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, settings.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &Transfer::open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, this);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, &Transfer::close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, this);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Transfer::on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, this);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    if (request.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (request.has_body) {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_size));
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &Transfer::on_read);
      curl_easy_setopt(h, CURLOPT_READDATA, this);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &Transfer::on_seek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, this);
      if (request.method != "PUT") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      }
    } else if (request.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    const CURLcode rc = curl_easy_perform(h);
    response.curl_code = rc;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
    if (rc != CURLE_OK) {
      curl_off_t pretransfer_us = 0;
      curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
      response.request_sent = pretransfer_us > 0;
      response.transport_error = curl_easy_strerror(rc);
      if (error_buffer[0] != '\0') response.transport_error += std::string(": ") + error_buffer;
      if (rc == CURLE_ABORTED_BY_CALLBACK ||
          (!request.ignore_cancel && cancelled_() && rc != CURLE_READ_ERROR)) {
        response.cancelled = true;
      }
    }
    // Nothing of this exchange outlives it.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    request_ = nullptr;
    response_ = nullptr;
    return response;
  }

 private:
  static curl_socket_t open_socket(void* self, curlsocktype /*purpose*/, curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(self);
    const int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    const std::lock_guard lock(t->sockets_mutex_);
    t->sockets_.push_back(fd);
    return fd;
  }

  static int close_socket(void* self, curl_socket_t fd) {
    auto* t = static_cast<Transfer*>(self);
    const std::lock_guard lock(t->sockets_mutex_);
    t->sockets_.erase(std::remove(t->sockets_.begin(), t->sockets_.end(), fd), t->sockets_.end());
    return ::close(fd);
  }

  static int on_progress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(self);
    return t->request_ != nullptr && !t->request_->ignore_cancel && t->cancelled_() ? 1 : 0;
  }

  static size_t on_header(char* data, size_t size, size_t count, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const std::string_view line(data, size * count);
    if (line.substr(0, 5) == "HTTP/") {
      t->response_->headers.clear();  // a new answer (after a 100 Continue)
    } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      t->response_->headers[lower(std::string(line.substr(0, colon)))] =
          trim(line.substr(colon + 1));
    }
    return size * count;
  }

  static size_t on_body(char* data, size_t size, size_t count, void* self) {
    auto* t = static_cast<Transfer*>(self);
    std::string& body = t->response_->body;
    const size_t n = size * count;
    if (body.size() < kMaxAnswer) body.append(data, std::min(n, kMaxAnswer - body.size()));
    return n;
  }

  static size_t on_read(char* buffer, size_t size, size_t count, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const Request& r = *t->request_;
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(size * count, r.body_size - t->body_offset_));
    if (want == 0) return 0;
    size_t got = 0;
    if (r.stream_body != nullptr) {
      auto n = r.stream_body->read(buffer, want);
      if (!n) {
        t->response_->body_error = n.error().message;
        return CURL_READFUNC_ABORT;
      }
      if (*n == 0) {
        t->response_->body_error = "the bytes to store ended at byte " +
                                   std::to_string(t->body_offset_) + " of " +
                                   std::to_string(r.body_size);
        return CURL_READFUNC_ABORT;
      }
      got = *n;
    } else {
      got = want;
      std::memcpy(buffer, r.memory_body.data() + t->body_offset_, got);
    }
    t->body_offset_ += got;
    return got;
  }

  static int on_seek(void* self, curl_off_t offset, int origin) {
    auto* t = static_cast<Transfer*>(self);
    if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
    if (t->request_->stream_body != nullptr && !t->request_->stream_body->rewind()) {
      return CURL_SEEKFUNC_FAIL;
    }
    t->body_offset_ = 0;
    return CURL_SEEKFUNC_OK;
  }

  std::function<bool()> cancelled_;
  const Request* request_ = nullptr;
  Response* response_ = nullptr;
  uint64_t body_offset_ = 0;
  std::mutex sockets_mutex_;
  std::vector<int> sockets_;
  std::unique_ptr<CURL, CurlEasyFree> easy_;  // last: destroyed first, while the above live
};

// ---- the client -----------------------------------------------------------------------------

S3Client::S3Client(S3Settings settings, const std::atomic<bool>& cancel)
    : settings_(std::move(settings)),
      cancel_(cancel),
      transfer_(std::make_unique<Transfer>([this] { return cancelled(); })) {
  auto endpoint = parse_endpoint(settings_.endpoint);
  if (endpoint) {
    const std::string port = endpoint->port.empty() ? "" : ":" + endpoint->port;
    base_url_ = endpoint->scheme + "://" + endpoint->host + port;
    bucket_base_url_ = endpoint->scheme + "://" + settings_.bucket + "." + endpoint->host + port;
  } else {
    base_url_ = bucket_base_url_ = settings_.endpoint;  // every request fails with its reason
  }
}

S3Client::~S3Client() = default;

std::string S3Client::object_key(const std::string& name) const {
  return s3_object_key(settings_.prefix, name);
}

std::string S3Client::location(const std::string& key) const {
  return "s3://" + settings_.bucket + "/" + key;
}

void S3Client::abort() {
  abort_generation_.fetch_add(1);
  transfer_->shutdown_sockets();
}

bool S3Client::cancelled() const {
  return cancel_.load() || abort_generation_.load() != operation_generation_;
}

void S3Client::begin_operation() { operation_generation_ = abort_generation_.load(); }

std::string S3Client::bucket_path() const {
  return settings_.path_style ? "/" + s3_encode_key(settings_.bucket) : "/";
}

std::string S3Client::object_path(const std::string& key) const {
  return (settings_.path_style ? "/" + s3_encode_key(settings_.bucket) + "/" : "/") +
         s3_encode_key(key);
}

std::string S3Client::url_for(const std::string& encoded_path, const std::string& query) const {
  return (settings_.path_style ? base_url_ : bucket_base_url_) + encoded_path +
         (query.empty() ? "" : "?" + query);
}

S3Client::Response S3Client::perform(const Request& request) {
  return transfer_->run(settings_, url_for(request.path, request.query), request);
}

// A failed exchange as a SendOutcome: the fault and a message with the server's own Code and
// Message (or libcurl's words).
SendOutcome S3Client::failure(const Response& r, const std::string& what, SendOutcome outcome,
                              std::string_view code_for_404) {
  if (r.cancelled) {
    outcome.fault = SendFault::kTransient;
    outcome.error = "cancelled: " + what + " (shutdown)";
    return outcome;
  }
  if (!r.body_error.empty()) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": cannot read the bytes to store: " + r.body_error;
    return outcome;
  }
  if (r.curl_code != CURLE_OK) {
    outcome.fault = classify_transport_error(r.curl_code, r.request_sent);
    outcome.error = what + ": " + r.transport_error;
    return outcome;
  }
  std::string code;
  std::string message;
  if (auto error = parse_s3_error(r.body)) {
    code = error->code;
    message = error->message;
  }
  if (code.empty()) {  // no error document (a HEAD): what the status means for S3
    if (r.status == 404) code = code_for_404;
    if (r.status == 403) code = "Forbidden";
    if (r.status == 301) code = "PermanentRedirect";
  }
  outcome.fault = classify_s3_answer(r.status, code);
  outcome.error = what + ": HTTP " + std::to_string(r.status) + " " + quote_server_text(code);
  outcome.error += message.empty() ? " (no message)" : ": " + quote_server_text(message);
  if (const std::string region = r.header("x-amz-bucket-region"); !region.empty()) {
    outcome.error += " (the bucket is in region " + quote_server_text(region) + ")";
  }
  if (const std::string after = r.header("retry-after"); !after.empty()) {
    if (auto seconds = parse_retry_after(after, static_cast<double>(std::time(nullptr)))) {
      outcome.retry_after_s = *seconds;
    }
  }
  return outcome;
}

SendOutcome S3Client::put(const std::string& name, StoredBytes& bytes,
                          const std::map<std::string, std::string>& metadata) {
  begin_operation();
  const std::string key = object_key(name);
  SendOutcome outcome;
  outcome.location = location(key);
  if (auto settings_ok = validate_s3_settings(settings_); !settings_ok) {
    outcome.fault = SendFault::kDestination;
    outcome.error = settings_ok.error().message;
    return outcome;
  }
  if (auto metadata_ok = check_metadata(metadata); !metadata_ok) {
    outcome.fault = SendFault::kPermanent;
    outcome.error = outcome.location + ": " + metadata_ok.error().message;
    return outcome;
  }
  if (key.empty() || key.size() > 1024) {
    outcome.fault = SendFault::kPermanent;
    outcome.error = outcome.location + ": an S3 key has 1 to 1024 bytes";
    return outcome;
  }
  if (bytes.size() <= settings_.multipart_threshold) {
    return put_single(key, bytes, metadata, std::move(outcome));
  }
  return put_multipart(key, bytes, metadata, std::move(outcome));
}

SendOutcome S3Client::put_single(const std::string& key, StoredBytes& bytes,
                                 const std::map<std::string, std::string>& metadata,
                                 SendOutcome outcome) {
  const std::string what = "PUT " + outcome.location;
  // First pass: the digests the request head carries.
  Md5 md5;
  Sha256 sha;
  uint64_t total = 0;
  {
    std::string piece(kPiece, '\0');
    auto rewound = bytes.rewind();
    while (rewound) {
      auto n = bytes.read(piece.data(), piece.size());
      if (!n) {
        rewound = n.error();
        break;
      }
      if (*n == 0) break;
      md5.update(piece.data(), *n);
      sha.update(piece.data(), *n);
      total += *n;
    }
    if (!rewound) {
      outcome.fault = SendFault::kTransient;
      outcome.error = what + ": cannot read the bytes to store: " + rewound.error().message;
      return outcome;
    }
  }
  if (total != bytes.size()) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": the bytes to store have " + std::to_string(total) + " bytes, not " +
                    std::to_string(bytes.size());
    return outcome;
  }
  const Md5Digest digest = md5.digest();
  Request request;
  request.method = "PUT";
  request.path = object_path(key);
  request.payload_sha256 = sha.hex_digest();
  request.has_body = true;
  request.stream_body = &bytes;  // second pass: streamed as the body
  request.body_size = total;
  request.headers.push_back("Content-MD5: " + md5_base64(digest));
  for (const auto& [name, value] : metadata) {
    request.headers.push_back("x-amz-meta-" + name + ": " + value);
  }
  const Response r = perform(request);
  if (!r.ok()) return failure(r, what, std::move(outcome));
  const std::string expected = md5_hex(digest);
  if (const std::string etag = s3_unquote_etag(r.header("etag")); etag != expected) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": the server's ETag \"" + quote_server_text(etag) +
                    "\" is not the MD5 of what was sent (" + expected + ")";
    return outcome;
  }
  outcome.bytes_sent = total;
  return verify(key, total, expected, metadata, std::move(outcome));
}

SendOutcome S3Client::put_multipart(const std::string& key, StoredBytes& bytes,
                                    const std::map<std::string, std::string>& metadata,
                                    SendOutcome outcome) {
  const uint64_t size = bytes.size();
  const uint64_t part_size = s3_effective_part_size(size, settings_.part_size);
  const auto parts = static_cast<int>(s3_part_count(size, part_size));
  const std::string what = "multipart upload of " + outcome.location;

  Request create;
  create.method = "POST";
  create.path = object_path(key);
  create.query = s3_canonical_query({{"uploads", ""}});
  create.has_body = true;
  for (const auto& [name, value] : metadata) {
    create.headers.push_back("x-amz-meta-" + name + ": " + value);
  }
  const Response created = perform(create);
  if (!created.ok()) return failure(created, what + ": CreateMultipartUpload", std::move(outcome));
  auto upload_id = parse_initiate_multipart(created.body);
  if (!upload_id) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": " + upload_id.error().message;
    return outcome;
  }

  // From here on, any failure aborts the upload on the server.
  auto give_up = [&](SendOutcome failed) {
    if (auto aborted = abort_multipart_upload(key, *upload_id); aborted) {
      failed.error += "; the upload was aborted";
    } else {
      failed.error += "; aborting the upload failed too (" + aborted.error().message +
                      "): abort_incomplete_uploads at the next start removes it";
    }
    return failed;
  };

  std::vector<Md5Digest> part_md5s;
  std::vector<std::string> part_etags;
  std::string buffer;
  buffer.resize(static_cast<size_t>(std::min<uint64_t>(part_size, size)));
  if (auto rewound = bytes.rewind(); !rewound) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": cannot read the bytes to store: " + rewound.error().message;
    return give_up(std::move(outcome));
  }
  uint64_t offset = 0;
  for (int number = 1; number <= parts; ++number) {
    const std::string part_what =
        what + ": part " + std::to_string(number) + " of " + std::to_string(parts);
    const auto length = static_cast<size_t>(std::min<uint64_t>(part_size, size - offset));
    size_t filled = 0;
    while (filled < length) {
      auto n = bytes.read(buffer.data() + filled, length - filled);
      if (!n || *n == 0) {
        outcome.fault = SendFault::kTransient;
        outcome.error =
            part_what + ": cannot read the bytes to store: " +
            (n ? "they ended at byte " + std::to_string(offset + filled) : n.error().message);
        return give_up(std::move(outcome));
      }
      filled += *n;
    }
    const std::string_view body(buffer.data(), length);
    Md5 md5;
    md5.update(body);
    const Md5Digest digest = md5.digest();
    Request upload;
    upload.method = "PUT";
    upload.path = object_path(key);
    upload.query =
        s3_canonical_query({{"partNumber", std::to_string(number)}, {"uploadId", *upload_id}});
    upload.has_body = true;
    upload.memory_body = body;
    upload.body_size = length;
    upload.payload_sha256 = sha256_hex(body);
    upload.headers.push_back("Content-MD5: " + md5_base64(digest));
    const Response r = perform(upload);
    if (!r.ok()) return give_up(failure(r, part_what, std::move(outcome)));
    const std::string etag = s3_unquote_etag(r.header("etag"));
    if (etag != md5_hex(digest)) {
      outcome.fault = SendFault::kTransient;
      outcome.error = part_what + ": the server's ETag \"" + quote_server_text(etag) +
                      "\" is not the MD5 of the part (" + md5_hex(digest) + ")";
      return give_up(std::move(outcome));
    }
    part_md5s.push_back(digest);
    part_etags.push_back(etag);
    offset += length;
  }
  buffer = std::string();  // the part is no longer needed: give its memory back

  const std::string body = s3_complete_multipart_body(part_etags);
  Md5 body_md5;
  body_md5.update(body);
  Request complete;
  complete.method = "POST";
  complete.path = object_path(key);
  complete.query = s3_canonical_query({{"uploadId", *upload_id}});
  complete.has_body = true;
  complete.memory_body = body;
  complete.body_size = body.size();
  complete.payload_sha256 = sha256_hex(body);
  complete.headers.push_back("Content-MD5: " + md5_base64(body_md5.digest()));
  complete.headers.push_back("Content-Type: application/xml");
  const Response r = perform(complete);
  if (!r.ok()) {
    return give_up(failure(r, what + ": CompleteMultipartUpload", std::move(outcome)));
  }
  auto completed = parse_complete_multipart(r.body);
  if (!completed) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": " + completed.error().message;
    return give_up(std::move(outcome));
  }
  if (completed->error) {  // S3 may answer 200 with an <Error>: its Code decides
    return give_up(failure(r, what + ": CompleteMultipartUpload", std::move(outcome)));
  }
  const std::string expected = s3_multipart_etag(part_md5s);
  if (!completed->etag.empty() && completed->etag != expected) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": the server's ETag \"" + quote_server_text(completed->etag) +
                    "\" is not the one of the parts sent (" + expected + ")";
    return outcome;  // completed: nothing to abort; a retry replaces the object
  }
  outcome.bytes_sent = size;
  outcome.parts = parts;
  return verify(key, size, expected, metadata, std::move(outcome));
}

SendOutcome S3Client::verify(const std::string& key, uint64_t size, const std::string& etag,
                             const std::map<std::string, std::string>& metadata,
                             SendOutcome outcome) {
  const std::string what = "HEAD " + outcome.location + " (verifying what landed)";
  Request head;
  head.method = "HEAD";
  head.path = object_path(key);
  const Response r = perform(head);
  if (!r.ok()) {
    outcome = failure(r, what, std::move(outcome), "NoSuchKey");
    // The object we were told is stored is not there (yet): try again, the file is not wrong.
    if (outcome.fault == SendFault::kPermanent) outcome.fault = SendFault::kTransient;
    return outcome;
  }
  std::string wrong;
  const std::string length = r.header("content-length");
  if (length != std::to_string(size)) {
    wrong = "Content-Length " + quote_server_text(length) + ", not " + std::to_string(size);
  } else if (const std::string got = s3_unquote_etag(r.header("etag")); got != etag) {
    wrong = "ETag \"" + quote_server_text(got) + "\", not \"" + etag + "\"";
  } else {
    for (const auto& [name, value] : metadata) {
      const std::string got_value = r.header("x-amz-meta-" + name);
      if (got_value != value) {
        wrong = "x-amz-meta-" + name + " \"" + quote_server_text(got_value) + "\", not \"" +
                quote_server_text(value) + "\"";
        break;
      }
    }
  }
  if (!wrong.empty()) {
    outcome.fault = SendFault::kTransient;
    outcome.error = what + ": the object has " + wrong;
  }
  return outcome;
}

ProbeOutcome S3Client::probe() {
  begin_operation();
  ProbeOutcome outcome;
  if (auto settings_ok = validate_s3_settings(settings_); !settings_ok) {
    outcome.fault = SendFault::kDestination;
    outcome.error = settings_ok.error().message;
    return outcome;
  }
  const std::string what = "HEAD s3://" + settings_.bucket;
  Request head;
  head.method = "HEAD";
  head.path = bucket_path();
  Response r = perform(head);
  if (r.ok()) return outcome;
  if (r.curl_code == CURLE_OK && !parse_s3_error(r.body)) {
    // A HEAD answer has no body: ask again with a GET (ListObjects, one key) for the server's
    // own Code and Message.
    Request get;
    get.method = "GET";
    get.path = bucket_path();
    get.query = s3_canonical_query({{"max-keys", "1"}});
    Response listed = perform(get);
    if (!listed.ok() && listed.curl_code == CURLE_OK && parse_s3_error(listed.body)) {
      r = std::move(listed);
    }
  }
  const SendOutcome failed = failure(r, what, SendOutcome{}, "NoSuchBucket");
  outcome.fault = failed.fault;
  outcome.error = failed.error;
  return outcome;
}

Result<S3ObjectInfo> S3Client::head_object(const std::string& key) {
  begin_operation();
  Request head;
  head.method = "HEAD";
  head.path = object_path(key);
  const Response r = perform(head);
  if (!r.ok()) {
    return make_error(ErrorCode::kIo,
                      failure(r, "HEAD " + location(key), SendOutcome{}, "NoSuchKey").error);
  }
  S3ObjectInfo info;
  info.size = std::strtoull(r.header("content-length").c_str(), nullptr, 10);
  info.etag = s3_unquote_etag(r.header("etag"));
  for (const auto& [name, value] : r.headers) {
    if (name.rfind("x-amz-meta-", 0) == 0) info.metadata[name.substr(11)] = value;
  }
  return info;
}

Result<std::vector<S3MultipartUpload>> S3Client::list_multipart_uploads(
    const std::string& key_prefix) {
  begin_operation();
  constexpr int kMaxPages = 10000;
  std::vector<S3MultipartUpload> uploads;
  std::string key_marker;
  std::string upload_id_marker;
  for (int page = 0; page < kMaxPages; ++page) {
    std::vector<std::pair<std::string, std::string>> params = {{"uploads", ""},
                                                               {"prefix", key_prefix}};
    if (!key_marker.empty()) params.emplace_back("key-marker", key_marker);
    if (!upload_id_marker.empty()) params.emplace_back("upload-id-marker", upload_id_marker);
    Request list;
    list.method = "GET";
    list.path = bucket_path();
    list.query = s3_canonical_query(std::move(params));
    const Response r = perform(list);
    const std::string what = "ListMultipartUploads s3://" + settings_.bucket + "/" + key_prefix;
    if (!r.ok()) return make_error(ErrorCode::kIo, failure(r, what, SendOutcome{}).error);
    auto parsed = parse_list_multipart_uploads(r.body);
    if (!parsed) return make_error(ErrorCode::kIo, what + ": " + parsed.error().message);
    for (auto& u : parsed->uploads) uploads.push_back(std::move(u));
    if (!parsed->truncated) return uploads;
    if (parsed->next_key_marker == key_marker &&
        parsed->next_upload_id_marker == upload_id_marker) {
      return make_error(ErrorCode::kIo, what + ": a truncated page without new markers");
    }
    key_marker = parsed->next_key_marker;
    upload_id_marker = parsed->next_upload_id_marker;
  }
  return make_error(ErrorCode::kIo, "ListMultipartUploads: more than 10000 pages");
}

Status S3Client::abort_multipart_upload(const std::string& key, const std::string& upload_id) {
  Request del;
  del.method = "DELETE";
  del.path = object_path(key);
  del.query = s3_canonical_query({{"uploadId", upload_id}});
  del.ignore_cancel = true;  // the cleanup of a failed or cancelled upload
  del.timeout_s = kCleanupTimeoutS;
  const Response r = perform(del);
  if (r.ok()) return ok_status();
  if (r.curl_code == CURLE_OK && r.status == 404) {
    const auto error = parse_s3_error(r.body);
    if (error && error->code == "NoSuchUpload") return ok_status();  // already gone
  }
  return make_error(ErrorCode::kIo,
                    failure(r, "AbortMultipartUpload " + location(key), SendOutcome{}).error);
}

Result<size_t> S3Client::abort_incomplete_uploads(const std::string& key_prefix) {
  auto uploads = list_multipart_uploads(key_prefix);
  if (!uploads) return uploads.error();
  size_t aborted = 0;
  std::string first_error;
  for (const auto& upload : *uploads) {
    if (cancelled()) return make_error(ErrorCode::kCancelled, "cancelled (shutdown)");
    if (auto done = abort_multipart_upload(upload.key, upload.upload_id); done) {
      ++aborted;
    } else if (first_error.empty()) {
      first_error = done.error().message;
    }
  }
  if (!first_error.empty()) {
    return make_error(ErrorCode::kIo, "aborted " + std::to_string(aborted) + " of " +
                                          std::to_string(uploads->size()) +
                                          " incomplete uploads: " + first_error);
  }
  return aborted;
}

}  // namespace transfer::sender
