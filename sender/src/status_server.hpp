#pragma once
// The sender's optional HTTP endpoint (METRICS_PORT): GET /metrics (Prometheus text) and
// GET /readyz (200 or 503 with the failing checks). Plain HTTP on its own thread; read-only.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "transfer/logging.hpp"
#include "transfer/readiness.hpp"
#include "transfer/result.hpp"

namespace httplib {
class Server;
}

namespace transfer::sender {

class StatusServer {
 public:
  StatusServer(std::function<std::string()> metrics, std::function<Readiness()> readiness, Logger logger);
  ~StatusServer();  // stops and joins
  // Binds address:port (0: any free port) and serves on a thread; returns the port.
  Result<int> start(const std::string& address, int port);

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  Logger logger_;
};

}  // namespace transfer::sender
