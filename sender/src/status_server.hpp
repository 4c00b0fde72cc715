#pragma once
// The sender's optional HTTP endpoint (METRICS_PORT): GET /metrics (Prometheus text) and
// GET /readyz (200 or 503 with the failing checks). Served by the same connection front as the
// receiver (shared/http): one epoll thread reads heads with a whole-head deadline, parks idle
// connections, caps connections in all and per client address and writes answers without
// blocking, so neither clients trickling heads nor idle or unread connections can keep /readyz
// from answering or take the descriptors the sender's own work needs. One worker renders the
// answers; requests waiting together for the same page share one rendering. Read-only.

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "transfer/bounded_queue.hpp"
#include "transfer/http/connection_front.hpp"
#include "transfer/http/http_answer.hpp"
#include "transfer/logging.hpp"
#include "transfer/readiness.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

struct StatusServerOptions {
  size_t max_connections = 256;  // METRICS_MAX_CONNECTIONS (the oldest idle one makes room)
  size_t max_per_client = 64;
  double head_timeout_s = 10;
  double keep_alive_timeout_s = 30;
  double answer_timeout_s = 10;
};

class StatusServer {
 public:
  StatusServer(std::function<std::string()> metrics, std::function<Readiness()> readiness,
               StatusServerOptions options, Logger logger);
  ~StatusServer();  // stops and joins
  // Binds address:port (0: any free port) and serves on threads of its own; returns the port.
  Result<int> start(const std::string& address, int port);

 private:
  enum class Page { kMetrics, kReadiness };
  struct Job {
    http::Connection* connection = nullptr;
    Page page = Page::kMetrics;
    http::ConnectionTerms terms;
  };
  std::optional<http::Answer> on_head(http::Connection& connection, http::RequestHead& head);
  void render_loop();

  std::function<std::string()> metrics_;
  std::function<Readiness()> readiness_;
  StatusServerOptions options_;
  Logger logger_;
  BoundedQueue<Job> jobs_;
  std::unique_ptr<http::ConnectionFront> front_;
  std::thread front_thread_;
  std::thread worker_;
};

}  // namespace transfer::sender
