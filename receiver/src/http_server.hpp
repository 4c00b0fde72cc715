#pragma once
// The HTTP adapter: cpp-httplib routes to plain functions. Knows nothing of Fernet or files.
//   GET /                 -> the old pair's health body, byte for byte
//   POST /upload/<name>   -> UploadSession, streamed through a ContentReader
//   anything else         -> JSON 404 / 405, like the old Flask app but in JSON

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "transfer/logging.hpp"
#include "transfer/result.hpp"
#include "upload_session.hpp"

namespace httplib {
class Server;
}

namespace transfer::receiver {

struct HttpServerOptions {
  std::string host;
  int port = 0;
  int threads = 8;
  double read_timeout_s = 30;
  // Accepted connections waiting for a free thread; beyond this the accept loop waits and new
  // clients queue in the kernel's listen backlog (bounded memory, no unbounded job list).
  int queue_limit = 32;
};

// Called after each upload with its outcome and the peer address (for the ledger).
using UploadObserver = std::function<void(const std::string& name, const UploadOutcome& outcome,
                                          const std::string& peer, double ms)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const UploadSettings& settings, OutputCommitter& committer,
             UploadObserver observer, Logger logger);
  ~HttpServer();
  // Binds; returns the port actually bound (useful with port 0).
  Result<int> bind();
  // Serves until stop(); in-flight requests finish before it returns.
  Status serve();
  void stop();
  int uploads_in_flight() const { return in_flight_.load(); }

 private:
  HttpServerOptions options_;
  const UploadSettings& settings_;
  OutputCommitter& committer_;
  UploadObserver observer_;
  std::atomic<int> in_flight_{0};
  Logger logger_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace transfer::receiver
