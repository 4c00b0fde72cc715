#include "status_server.hpp"

#include <deque>
#include <map>

#include "transfer/http/request_target.hpp"
#include "transfer/metrics.hpp"

namespace transfer::sender {
namespace {

constexpr uint64_t kKeepAliveMaxRequests = 1000;

http::Answer refusal(int status, std::string_view message, const char* allow = nullptr) {
  http::HttpResponse r;
  r.status = status;
  r.body = http::json_message(status, message);
  if (allow) r.headers.emplace_back("Allow", allow);
  http::ConnectionTerms terms;
  terms.close = true;
  return http::Answer{http::render_response(r, terms), http::After::kLinger};
}

}  // namespace

StatusServer::StatusServer(std::function<std::string()> metrics,
                           std::function<Readiness()> readiness, StatusServerOptions options,
                           Logger logger)
    : metrics_(std::move(metrics)),
      readiness_(std::move(readiness)),
      options_(options),
      logger_(std::move(logger)),
      jobs_(options.max_connections) {}

StatusServer::~StatusServer() {
  if (front_) front_->stop();
  if (front_thread_.joinable()) front_thread_.join();
  jobs_.close();
  if (worker_.joinable()) worker_.join();
}

Result<int> StatusServer::start(const std::string& address, int port) {
  auto fd = http::listen_tcp(address, port);
  if (!fd) return make_error(ErrorCode::kIo, "METRICS_PORT: " + fd.error().message);
  const int bound = http::bound_port(fd->get());
  http::FrontOptions front;
  front.head_limits.max_head_bytes = 16 * 1024;
  front.head_limits.max_headers = 64;
  front.head_timeout_s = options_.head_timeout_s;
  front.keep_alive_timeout_s = options_.keep_alive_timeout_s;
  front.answer_timeout_s = options_.answer_timeout_s;
  front.max_connections = options_.max_connections;
  front.max_per_client = options_.max_per_client;
  front.head_budget_bytes = 4 << 20;
  front.answer_budget_bytes = 8 << 20;
  front_ = std::make_unique<http::ConnectionFront>(
      front, std::move(*fd), nullptr,
      [this](http::Connection& c, http::RequestHead& head) { return on_head(c, head); }, logger_);
  worker_ = std::thread([this] { render_loop(); });
  front_thread_ = std::thread([this] {
    if (auto st = front_->run(); !st)
      logger_->error("status server stopped: {}", st.error().message);
  });
  return bound;
}

// On the front's thread.
std::optional<http::Answer> StatusServer::on_head(http::Connection& connection,
                                                  http::RequestHead& head) {
  const std::string_view path = http::split_target(head.target).raw_path;
  Job job;
  if (path == "/metrics") {
    job.page = Page::kMetrics;
  } else if (path == "/readyz") {
    job.page = Page::kReadiness;
  } else {
    return refusal(404, "not found");
  }
  if (head.method != "GET" && head.method != "HEAD")
    return refusal(405, "method not allowed", "GET, HEAD");
  if (head.has_body()) return refusal(413, "this endpoint takes no request body");
  job.connection = &connection;
  job.terms.close = !head.keep_alive || front_->stopping() ||
                    ++connection.requests_served >= kKeepAliveMaxRequests;
  job.terms.keep_alive_field =
      "timeout=" + std::to_string(static_cast<int>(options_.keep_alive_timeout_s)) +
      ", max=" + std::to_string(kKeepAliveMaxRequests);
  job.terms.head_only = head.method == "HEAD";
  if (!jobs_.try_push(job)) return refusal(503, "busy; retry later");
  return std::nullopt;
}

// Renders each page once for all the requests waiting for it.
void StatusServer::render_loop() {
  while (auto first = jobs_.pop()) {
    std::deque<Job> batch = jobs_.take_all();
    batch.push_front(std::move(*first));
    std::map<Page, http::HttpResponse> pages;
    for (Job& job : batch) {
      auto it = pages.find(job.page);
      if (it == pages.end()) {
        http::HttpResponse r;
        try {
          if (job.page == Page::kMetrics) {
            r.content_type = kMetricsContentType;
            r.body = metrics_();
          } else {
            const Readiness ready = readiness_();
            r.status = ready.http_status();
            r.body = ready.json();
          }
        } catch (const std::exception& e) {
          logger_->error("status server: internal error: {}", log_value(e.what()));
          r = http::HttpResponse{
              500, "application/json", http::json_message(500, "internal error"), {}};
        }
        it = pages.emplace(job.page, std::move(r)).first;
      }
      front_->finished(*job.connection,
                       http::Answer{http::render_response(it->second, job.terms),
                                    job.terms.close ? http::After::kLinger : http::After::kKeep});
    }
  }
}

}  // namespace transfer::sender
