#include "status_server.hpp"

#include <httplib.h>

#include "transfer/metrics.hpp"

namespace transfer::sender {

StatusServer::StatusServer(std::function<std::string()> metrics, std::function<Readiness()> readiness,
                           Logger logger)
    : server_(std::make_unique<httplib::Server>()), logger_(std::move(logger)) {
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);
  server_->set_payload_max_length(1 << 16);
  server_->Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), kMetricsContentType);
  });
  server_->Get("/readyz", [readiness](const httplib::Request&, httplib::Response& res) {
    const Readiness r = readiness();
    res.status = r.http_status();
    res.set_content(r.json(), "application/json");
  });
  server_->set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
    logger_->error("internal error path={}", log_value(req.path));
    res.status = 500;
    res.set_content("{\"msg\":\"internal error\",\"status_code\":500}\n", "application/json");
  });
}

StatusServer::~StatusServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

Result<int> StatusServer::start(const std::string& address, int port) {
  const int bound = port == 0 ? server_->bind_to_any_port(address) : (server_->bind_to_port(address, port) ? port : -1);
  if (bound <= 0) {
    return make_error(ErrorCode::kIo, "METRICS_PORT: cannot listen on " + address + ":" + std::to_string(port) +
                                          " (address in use or not available)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return bound;
}

}  // namespace transfer::sender
