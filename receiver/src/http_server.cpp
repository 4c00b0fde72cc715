#include "http_server.hpp"

#include <httplib.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "transfer/config.hpp"

namespace transfer::receiver {
namespace {

// Byte for byte what the old Flask receiver answered (jsonify: compact, sorted, newline).
constexpr std::string_view kHealthBody = "{\"msg\":\"Server is healthy\",\"status_code\":200}\n";
constexpr const char* kJson = "application/json";
constexpr const char* kUploadPrefix = "/upload/";
// cpp-httplib parses every multipart/form-data body itself; we stream ours through our own
// parser, so the header is moved aside before routing.
constexpr const char* kOriginalContentType = "X-Transfer-Original-Content-Type";
// After a refusal, a body this small is read and dropped so the connection stays usable.
constexpr uint64_t kDrainLimit = 1 << 20;

std::string json_message(int status, const std::string& msg) {
  nlohmann::json j;
  j["msg"] = msg;
  j["status_code"] = status;
  return j.dump(-1, ' ', true) + "\n";
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

// cpp-httplib's ThreadPool keeps an unbounded list of accepted connections. This one blocks the
// accept loop once `limit` connections wait, so a flood costs kernel backlog, not our memory.
class BoundedThreadPool : public httplib::TaskQueue {
 public:
  BoundedThreadPool(size_t threads, size_t limit) : limit_(limit) {
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~BoundedThreadPool() override { shutdown(); }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    space_.wait(lock, [this] { return jobs_.size() < limit_ || shutdown_; });
    jobs_.push_back(std::move(fn));
    ready_.notify_one();
  }
  void shutdown() override {  // runs what is queued, then joins
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    ready_.notify_all();
    space_.notify_all();
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        ready_.wait(lock, [this] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      space_.notify_one();
      fn();
    }
  }
  const size_t limit_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::condition_variable space_;
  std::deque<std::function<void()>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> workers_;
};

std::unique_ptr<httplib::Server> make_server(const HttpServerOptions& o) {
  if (o.cert_file.empty()) return std::make_unique<httplib::Server>();
  return std::make_unique<httplib::SSLServer>(o.cert_file.c_str(), o.key_file.c_str(),
                                              o.client_ca_file.empty() ? nullptr : o.client_ca_file.c_str());
}

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

HttpServer::HttpServer(HttpServerOptions options, const UploadSettings& settings,
                       OutputCommitter& committer, UploadObserver observer, ReceiverApi api,
                       Logger logger)
    : options_(std::move(options)),
      settings_(settings),
      committer_(committer),
      observer_(std::move(observer)),
      api_(std::move(api)),
      logger_(std::move(logger)),
      server_(make_server(options_)) {
  auto& svr = *server_;
  const auto threads = static_cast<size_t>(options_.threads);
  const auto queue_limit = static_cast<size_t>(options_.queue_limit);
  svr.new_task_queue = [threads, queue_limit] { return new BoundedThreadPool(threads, queue_limit); };
  const auto read_timeout = split_seconds(options_.read_timeout_s);
  svr.set_read_timeout(read_timeout.sec, read_timeout.usec);
  svr.set_write_timeout(30, 0);
  svr.set_keep_alive_timeout(5);
  // cpp-httplib closes a keep-alive connection after 5 requests by default; reconnecting cost
  // a quarter of the GET / throughput (wrk, 16 connections). 100 is nginx's old default.
  svr.set_keep_alive_max_count(100);
  svr.set_tcp_nodelay(true);
  svr.set_payload_max_length(settings_.max_upload_bytes);

  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (req.path.rfind(kUploadPrefix, 0) == 0 && req.has_header("Content-Type")) {
      // The Request object is not const where cpp-httplib owns it; only this hook sees it early.
      auto& mutable_req = const_cast<httplib::Request&>(req);
      mutable_req.set_header(kOriginalContentType, req.get_header_value("Content-Type"));
      mutable_req.headers.erase("Content-Type");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  svr.set_exception_handler([this](const httplib::Request& req, httplib::Response& res,
                                   std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    logger_->error("internal error path={} error={}", log_value(req.path), log_value(what));
    res.status = 500;
    res.set_content(json_message(500, "internal error"), kJson);  // never the exception text
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
  svr.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { send(res, api_.readiness()); });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { send(res, api_.metrics()); });
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
  for (const char* pattern : {"/", R"(/upload/[^/]+)", "/readyz", "/metrics", "/files", R"(/files/[^/]+)"}) {
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

  svr.Post(R"(/upload/([^/]+))", [this](const httplib::Request& req, httplib::Response& res,
                                         const httplib::ContentReader& reader) {
    const auto started = std::chrono::steady_clock::now();
    UploadRequestHead head;
    head.name = req.matches[1];
    head.content_type = req.get_header_value(kOriginalContentType);
    head.content_length = content_length(req);
    head.chunked = header_contains(req, "Transfer-Encoding", "chunked");
    head.has_content_encoding = req.has_header("Content-Encoding");
    head.idempotency_key = req.get_header_value(kIdempotencyKeyHeader);
    if (req.has_header(kPlaintextSha256Header)) head.claimed_sha256 = req.get_header_value(kPlaintextSha256Header);
    const std::string peer = req.remote_addr + ":" + std::to_string(req.remote_port);
    std::string transfer_id = req.get_header_value(kTransferIdHeader);
    if (!well_formed_transfer_id(transfer_id)) transfer_id = new_transfer_id();

    ++in_flight_;
    UploadOutcome outcome;
    bool body_fully_read = true;
    if (auto refusal = precheck_upload(head, settings_)) {
      outcome = std::move(*refusal);
      const bool drainable = !head.chunked && !head.has_content_encoding && head.content_length &&
                             *head.content_length <= kDrainLimit;
      body_fully_read = drainable && reader([](const char*, size_t) { return true; });
    } else {
      if (api_.before_upload) api_.before_upload();
      UploadSession session(head, settings_);
      uint64_t drained = 0;
      body_fully_read = reader([&](const char* data, size_t size) {
        if (session.feed(data, size)) return true;
        drained += size;  // failed already: drop a little more so keep-alive survives
        return drained <= kDrainLimit;
      });
      if (!body_fully_read) {
        outcome = session.abandon(400, "the request body ended early");
      } else {
        outcome = session.finish(unix_now(), committer_, peer);
      }
    }
    --in_flight_;
    if (!body_fully_read) res.set_header("Connection", "close");
    res.status = outcome.status;
    res.set_header(kTransferIdHeader, transfer_id);
    res.set_content(outcome.json_body(), kJson);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    observer_(UploadEvent{head.name, transfer_id, peer, seconds, outcome});
  });
}

HttpServer::~HttpServer() = default;

Result<int> HttpServer::bind() {
  if (!server_->is_valid()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot set up TLS from TLS_CERT_FILE, TLS_KEY_FILE and CLIENT_CA_FILE");
  }
  int port = options_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    if (port < 0) port = 0;
  } else if (!server_->bind_to_port(options_.host, port)) {
    port = 0;
  }
  if (port == 0) {
    return make_error(ErrorCode::kIo, "cannot listen on " + options_.host + ":" +
                                          std::to_string(options_.port) +
                                          " (address in use or not available)");
  }
  return port;
}

Status HttpServer::serve() {
  if (!server_->listen_after_bind()) return make_error(ErrorCode::kIo, "the HTTP server stopped with an error");
  return ok_status();
}

void HttpServer::stop() { server_->stop(); }

}  // namespace transfer::receiver
