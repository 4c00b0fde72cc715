#include "http_server.hpp"

#include <httplib.h>

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

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const UploadSettings& settings,
                       OutputCommitter& committer, UploadObserver observer, Logger logger)
    : options_(std::move(options)),
      settings_(settings),
      committer_(committer),
      observer_(std::move(observer)),
      logger_(std::move(logger)),
      server_(std::make_unique<httplib::Server>()) {
  auto& svr = *server_;
  const auto threads = static_cast<size_t>(options_.threads);
  const auto queue_limit = static_cast<size_t>(options_.queue_limit);
  svr.new_task_queue = [threads, queue_limit] { return new BoundedThreadPool(threads, queue_limit); };
  const auto read_timeout = split_seconds(options_.read_timeout_s);
  svr.set_read_timeout(read_timeout.sec, read_timeout.usec);
  svr.set_write_timeout(30, 0);
  svr.set_keep_alive_timeout(5);
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

  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Connection", "close");
    res.set_content(json_message(405, "method not allowed"), kJson);
  };
  for (const char* pattern : {"/", R"(/upload/[^/]+)"}) {
    if (std::string_view(pattern) != "/") svr.Get(pattern, not_allowed);
    svr.Put(pattern, not_allowed);
    svr.Delete(pattern, not_allowed);
    svr.Patch(pattern, not_allowed);
  }
  // With a content reader so a bodiless POST is not waited on for a body.
  svr.Post("/", [not_allowed](const httplib::Request& req, httplib::Response& res,
                              const httplib::ContentReader&) { not_allowed(req, res); });

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

    ++in_flight_;
    UploadOutcome outcome;
    bool body_fully_read = true;
    if (auto refusal = precheck_upload(head, settings_)) {
      outcome = std::move(*refusal);
      const bool drainable = !head.chunked && !head.has_content_encoding && head.content_length &&
                             *head.content_length <= kDrainLimit;
      body_fully_read = drainable && reader([](const char*, size_t) { return true; });
    } else {
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
    res.set_content(outcome.json_body(), kJson);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    observer_(head.name, outcome, peer, ms);
  });
}

HttpServer::~HttpServer() = default;

Result<int> HttpServer::bind() {
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
