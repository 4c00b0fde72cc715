#include "http_server.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>

#include "http_answer.hpp"

namespace transfer::receiver {
namespace {

// Byte for byte what the old Flask receiver answered (jsonify: compact, sorted,
// newline).
constexpr std::string_view kHealthBody = "{\"msg\":\"Server is healthy\",\"status_code\":200}\n";
constexpr const char* kJson = "application/json";
constexpr const char* kUploadPrefix = "/upload/";
// cpp-httplib parses every multipart/form-data body itself; we stream ours
// through our own parser, so the header is moved aside before routing.
constexpr const char* kOriginalContentType = "X-Transfer-Original-Content-Type";
const std::string kSignatureHeaderName(kSignatureHeader);
// Seconds a client is asked to wait when a shared allowance is used up (503).
constexpr int kRetryAfterBusySeconds = 5;

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

std::optional<uint64_t> content_length(const httplib::Request& req) {
  if (!req.has_header("Content-Length")) return std::nullopt;
  const std::string v = req.get_header_value("Content-Length");
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 19) {
    return std::nullopt;
  }
  return std::stoull(v);
}

bool header_contains(const httplib::Request& req, const char* name, const char* token) {
  for (size_t i = 0; i < req.get_header_value_count(name); ++i) {
    std::string v = req.get_header_value(name, i);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    if (v.find(token) != std::string::npos) return true;
  }
  return false;
}

// Requests a connection may carry before it is closed (nginx's
// keepalive_requests).
constexpr size_t kKeepAliveMaxRequests = 1000;
// Workers for requests without a body (health, readiness, metrics, the ledger
// API).
constexpr int kOtherWorkers = 4;

int to_ms(double seconds) { return static_cast<int>(seconds * 1000); }

// A listening socket on host:port (port 0: any free port).
Result<UniqueFd> listen_on(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found) != 0) {
    return make_error(ErrorCode::kIo, "cannot resolve the address to listen on: " + host);
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  int last_errno = EADDRNOTAVAIL;
  for (const addrinfo* ai = found; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_errno = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), SOMAXCONN) == 0)
      return fd;
    last_errno = errno;
  }
  return make_error(ErrorCode::kIo, "cannot listen on " + host + ":" + std::to_string(port) + " (" +
                                        std::strerror(last_errno) + ")");
}

int bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  int port = 0;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    socket_address_text(addr, port);
  return port;
}

}  // namespace

// cpp-httplib's routing and response writing, fed one request at a time by a
// worker.
class HttpServer::Router : public httplib::Server {
 public:
  bool process(httplib::Stream& stream, bool close_connection, bool& connection_closed) {
    return process_request(stream, close_connection, connection_closed, nullptr);
  }
};

namespace {

// A transfer id a client may choose: 1 to 64 of [0-9A-Za-z_-].
bool well_formed_transfer_id(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) != 0 || c == '-' || c == '_';
  });
}

std::string new_transfer_id() {
  uint8_t rnd[8];
  RAND_bytes(rnd, sizeof rnd);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (const uint8_t b : rnd) {
    id += kHex[b >> 4];
    id += kHex[b & 0xF];
  }
  return id;
}

void send(httplib::Response& res, const PlainResponse& answer) {
  res.status = answer.status;
  res.set_content(answer.body, answer.content_type.c_str());
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const UploadSettings& settings, UploadGate& gate,
                       OutputCommitter& committer, UploadObserver observer, ReceiverApi api,
                       Logger logger)
    : options_(std::move(options)),
      settings_(settings),
      gate_(gate),
      committer_(committer),
      observer_(std::move(observer)),
      api_(std::move(api)),
      logger_(std::move(logger)),
      router_(std::make_unique<Router>()),
      uploads_(options_.front.max_connections),
      others_(options_.front.max_connections) {
  auto& svr = *router_;
  // Only for the Keep-Alive answer header: the front times idle connections out
  // itself.
  svr.set_keep_alive_timeout(static_cast<time_t>(options_.front.keep_alive_timeout_s));
  svr.set_keep_alive_max_count(kKeepAliveMaxRequests);
  svr.set_payload_max_length(settings_.max_upload_bytes);
  svr.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.get_header_value("Connection") == "close") res.headers.erase("Keep-Alive");
  });

  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (req.path.rfind(kUploadPrefix, 0) == 0 && req.has_header("Content-Type")) {
      // The Request object is not const where cpp-httplib owns it; only
      // this hook sees it early.
      auto& mutable_req = const_cast<httplib::Request&>(req);
      mutable_req.set_header(kOriginalContentType, req.get_header_value("Content-Type"));
      mutable_req.headers.erase("Content-Type");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  svr.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        logger_->error("internal error path={} error={}", log_value(req.path), log_value(what));
        res.status = 500;
        res.set_content(json_message(500, "internal error"),
                        kJson);  // never the exception text
      });

  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* msg = res.status == 404   ? "not found"
                      : res.status == 405 ? "method not allowed"
                      : res.status == 413 ? "request too large"
                                          : "bad request";
    res.set_content(json_message(res.status, msg), kJson);
  });

  svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(kHealthBody), kJson);
  });
  svr.Get("/readyz",
          [this](const httplib::Request&, httplib::Response& res) { send(res, api_.readiness()); });
  svr.Get("/metrics",
          [this](const httplib::Request&, httplib::Response& res) { send(res, api_.metrics()); });
  svr.Get("/files", [this](const httplib::Request& req, httplib::Response& res) {
    std::map<std::string, std::string> query;
    for (const auto& [k, v] : req.params) query.emplace(k, v);  // the first of each name
    send(res, api_.list_files(query));
  });
  svr.Get(R"(/files/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    send(res, api_.file(req.matches[1]));
  });

  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Connection", "close");
    res.set_content(json_message(405, "method not allowed"), kJson);
  };
  for (const char* pattern :
       {"/", R"(/upload/[^/]+)", "/readyz", "/metrics", "/files", R"(/files/[^/]+)"}) {
    if (std::string_view(pattern).rfind("/upload/", 0) == 0) svr.Get(pattern, not_allowed);
    svr.Put(pattern, not_allowed);
    svr.Delete(pattern, not_allowed);
    svr.Patch(pattern, not_allowed);
  }
  // With a content reader so a bodiless POST is not waited on for a body.
  for (const char* pattern : {"/", "/readyz", "/metrics", "/files", R"(/files/[^/]+)"}) {
    svr.Post(pattern, [not_allowed](const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader&) { not_allowed(req, res); });
  }

  // Every POST under /upload/ is streamed by this route, whatever its name: a name with a '/'
  // (or %2F) or none at all is refused by the name rules before the body is read. (A path no
  // route matched would have its body read into memory by cpp-httplib before its 404.)
  svr.Post(R"(/upload/(.*))", [this](const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader) {
    const auto started = std::chrono::steady_clock::now();
    UploadRequestHead head;
    head.name = req.matches[1];
    head.content_type = req.get_header_value(kOriginalContentType);
    head.content_length = content_length(req);
    head.chunked = header_contains(req, "Transfer-Encoding", "chunked");
    head.has_content_encoding = req.has_header("Content-Encoding");
    head.idempotency_key = req.get_header_value(kIdempotencyKeyHeader);
    if (req.has_header(kPlaintextSha256Header))
      head.claimed_sha256 = req.get_header_value(kPlaintextSha256Header);
    const std::string peer = req.remote_addr + ":" + std::to_string(req.remote_port);
    std::string transfer_id = req.get_header_value(kTransferIdHeader);
    if (!well_formed_transfer_id(transfer_id)) transfer_id = new_transfer_id();

    ++in_flight_;
    UploadOutcome outcome;
    bool body_fully_read = true;
    std::optional<UploadOutcome> refusal = precheck_upload(head, settings_);
    Authentication auth;
    UploadGate::Admission admission;
    if (!refusal) {
      const GateRequest g{req.method,
                          req.target,
                          *head.content_length,
                          head.claimed_sha256.value_or(""),
                          head.idempotency_key,
                          req.get_header_value(kTransferIdHeader),
                          req.has_header(kSignatureHeaderName)
                              ? std::optional(req.get_header_value(kSignatureHeaderName))
                              : std::nullopt};
      if (api_.before_upload) api_.before_upload();
      auto authenticated = gate_.authenticate(g, unix_now());
      if (!authenticated) {
        refusal = refusal_for(authenticated.error());
      } else if (auto admitted = gate_.admit(*authenticated, *head.content_length); !admitted) {
        refusal = refusal_for(admitted.error());
      } else {
        auth = *authenticated;
        admission = std::move(*admitted);
      }
    }
    if (refusal) {
      outcome = std::move(*refusal);  // the body is never read: the front lingers, then closes
      body_fully_read = head.content_length.value_or(1) == 0;
    } else {
      UploadSession session(head, settings_, auth.key_index);
      body_fully_read =
          reader([&](const char* data, size_t size) { return session.feed(data, size); });
      outcome = body_fully_read ? session.finish(unix_now(), committer_, peer)
                                : session.abandon(400,
                                                  "the request body ended early, or arrived too "
                                                  "slowly (READ_TIMEOUT, MIN_BODY_RATE)");
    }
    --in_flight_;
    if (!body_fully_read) res.set_header("Connection", "close");
    res.status = outcome.status;
    if (outcome.retry_after_s)
      res.set_header("Retry-After", std::to_string(*outcome.retry_after_s));
    if (outcome.status == 401) res.set_header("WWW-Authenticate", kSignatureHeaderName);
    res.set_header(kTransferIdHeader, transfer_id);
    res.set_content(outcome.json_body(), kJson);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    observer_(UploadEvent{head.name, transfer_id, peer, seconds, outcome});
  });
}

HttpServer::~HttpServer() {
  uploads_.close();
  others_.close();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

Result<int> HttpServer::bind() {
  SslCtxPtr tls;
  if (!options_.cert_file.empty()) {
    auto ctx =
        make_server_tls_context(options_.cert_file, options_.key_file, options_.client_ca_file);
    if (!ctx) {
      return make_error(ErrorCode::kInvalidArgument,
                        "cannot set up TLS from TLS_CERT_FILE, TLS_KEY_FILE "
                        "and CLIENT_CA_FILE: " +
                            ctx.error().message);
    }
    tls = std::move(*ctx);
  }
  auto fd = listen_on(options_.host, options_.port);
  if (!fd) return fd.error();
  const int port = bound_port(fd->get());
  auto accepts_body = [](const RequestHead& head) {
    return head.method == "POST" && head.path().rfind(kUploadPrefix, 0) == 0;
  };
  auto dispatch = [this](Connection& connection, RequestHead head) {
    auto& queue = head.has_body() ? uploads_ : others_;
    Job job{&connection, std::move(head)};
    return queue.try_push(job);
  };
  front_ = std::make_unique<ConnectionFront>(options_.front, std::move(*fd), std::move(tls),
                                             accepts_body, dispatch, logger_);
  // GET / (liveness) needs no work: the front answers it itself, the same bytes cpp-httplib
  // writes, so it costs no hand-off to a worker and never waits behind them.
  const std::string keep_alive_header =
      "Keep-Alive: timeout=" +
      std::to_string(static_cast<int>(options_.front.keep_alive_timeout_s)) +
      ", max=" + std::to_string(kKeepAliveMaxRequests) + "\r\n";
  front_->set_immediate_answers(
      [this, keep_alive_header](
          const RequestHead& head,
          Connection& connection) -> std::optional<ConnectionFront::ImmediateAnswer> {
        if (head.method != "GET" || head.path() != "/") return std::nullopt;
        const bool last = !head.keep_alive || front_->stopping() ||
                          ++connection.requests_served >= kKeepAliveMaxRequests;
        ConnectionFront::ImmediateAnswer answer;
        answer.close = last;
        answer.bytes = "HTTP/1.1 200 OK\r\n";
        if (last) answer.bytes += "Connection: close\r\n";
        answer.bytes += "Content-Length: " + std::to_string(kHealthBody.size()) +
                        "\r\nContent-Type: application/json\r\n";
        if (!last) answer.bytes += keep_alive_header;
        answer.bytes += "\r\n";
        answer.bytes += kHealthBody;
        return answer;
      });
  return port;
}

Status HttpServer::serve() {
  if (!front_) return make_error(ErrorCode::kInvalidArgument, "serve() before bind()");
  for (int i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { work(uploads_); });
  for (int i = 0; i < kOtherWorkers; ++i) workers_.emplace_back([this] { work(others_); });
  Status st = front_->run();
  uploads_.close();
  others_.close();
  for (auto& t : workers_) t.join();
  workers_.clear();
  return st;
}

void HttpServer::stop() {
  if (front_) front_->stop();
}

void HttpServer::work(BoundedQueue<Job>& queue) {
  while (auto job = queue.pop()) serve_request(*job->connection, job->head);
}

void HttpServer::serve_request(Connection& connection, const RequestHead& head) {
  using After = ConnectionFront::After;
  ConnectionStream stream(connection, to_ms(options_.read_timeout_s),
                          to_ms(options_.write_timeout_s));
  if (head.has_body()) {
    stream.require_min_rate(head.head_bytes, options_.min_body_rate, options_.read_timeout_s);
  }
  const bool last = !head.keep_alive || front_->stopping() ||
                    ++connection.requests_served >= kKeepAliveMaxRequests;
  bool closed = false;
  const bool answered = router_->process(stream, last, closed);
  // A body not read to its end leaves the connection at an unknown place in the
  // stream: the next request cannot be found, so it is closed (after lingering,
  // so the answer is seen).
  const uint64_t body_read =
      stream.bytes_read() - std::min<uint64_t>(stream.bytes_read(), head.head_bytes);
  const bool body_done = !head.chunked && body_read >= head.content_length.value_or(0);
  After after = After::kKeep;
  if (!answered) {
    after = After::kClose;
  } else if (last || closed || !body_done) {
    after = After::kLinger;
  }
  front_->finished(connection, after);
}

}  // namespace transfer::receiver
