#pragma once
// The HTTP adapter: cpp-httplib routes to plain functions. Knows nothing of Fernet or files.
//   GET /                 -> the old pair's health body, byte for byte
//   POST /upload/<name>   -> UploadSession, streamed through a ContentReader
//   anything else         -> JSON 404 / 405, like the old Flask app but in JSON

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
};

// Called after each upload with its outcome and the peer address (for the ledger).
using UploadObserver = std::function<void(const std::string& name, const UploadOutcome& outcome,
                                          const std::string& peer, double ms)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const UploadSettings& settings, UploadObserver observer,
             Logger logger);
  ~HttpServer();
  // Binds; returns the port actually bound (useful with port 0).
  Result<int> bind();
  // Serves until stop(); in-flight requests finish before it returns.
  Status serve();
  void stop();

 private:
  HttpServerOptions options_;
  const UploadSettings& settings_;
  UploadObserver observer_;
  Logger logger_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace transfer::receiver
