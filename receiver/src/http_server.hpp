#pragma once
// The HTTP adapter: cpp-httplib routes to plain functions. Knows nothing of
// Fernet or files. Connections are accepted and their request heads read by the
// ConnectionFront (one epoll thread, strict framing, bounded heads, no thread
// held by a slow or idle client); each complete request is served by a worker
// through cpp-httplib's request processing: requests with a body (uploads) by
// THREADS upload workers, the others by a small pool of their own, so health
// checks never wait behind uploads.
//   GET /                 -> the old pair's health body, byte for byte
//   (liveness) GET /readyz           -> ReceiverApi::readiness (200 or 503 with
//   the failing checks) GET /metrics          -> ReceiverApi::metrics
//   (Prometheus text) GET /files, /files/<name> -> ReceiverApi::list_files /
//   file (the ledger, metadata only) POST /upload/<name>   -> UploadGate
//   (signature, disk budget), then UploadSession, streamed
//                            through a ContentReader
//   anything else         -> JSON 404 / 405, like the old Flask app but in JSON
// Every upload carries a transfer id: the client's X-Transfer-Id when it is
// well formed (the sender makes one per attempt), else one made here; it is
// logged and echoed in the answer.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "connection_front.hpp"
#include "transfer/bounded_queue.hpp"
#include "transfer/logging.hpp"
#include "transfer/result.hpp"
#include "upload_gate.hpp"
#include "upload_session.hpp"

namespace transfer::receiver {

struct HttpServerOptions {
  std::string host;
  int port = 0;
  int threads = 8;             // upload workers
  double read_timeout_s = 30;  // a body may stall this long between two pieces
  // A body must arrive at this many bytes per second on average, after a grace of
  // read_timeout_s (Apache's mod_reqtimeout MinRate): a trickle cannot hold a worker for long.
  double min_body_rate = 1024;
  double write_timeout_s = 30;
  FrontOptions front;
  // HTTPS when cert_file is set; client certificates required when
  // client_ca_file is set too.
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
};

inline constexpr const char* kTransferIdHeader = "X-Transfer-Id";

// What the adapter hands over after each upload.
struct UploadEvent {
  const std::string& name;
  const std::string& transfer_id;
  const std::string& peer;
  double seconds;
  const UploadOutcome& outcome;
};
using UploadObserver = std::function<void(const UploadEvent&)>;

// A response made without the HTTP library's types.
struct PlainResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// The read-only endpoints, as plain functions of the request's path and query.
struct ReceiverApi {
  std::function<PlainResponse()> readiness;
  std::function<PlainResponse()> metrics;
  std::function<PlainResponse(const std::map<std::string, std::string>& query)> list_files;
  std::function<PlainResponse(const std::string& name)> file;
  // Called before each upload's body is read (the service reloads a changed key
  // file here).
  std::function<void()> before_upload;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const UploadSettings& settings, UploadGate& gate,
             OutputCommitter& committer, UploadObserver observer, ReceiverApi api, Logger logger);
  ~HttpServer();
  // Binds; returns the port actually bound (useful with port 0). With TLS,
  // first checks that the certificate and key were taken.
  Result<int> bind();
  // Serves until stop(); in-flight requests finish before it returns.
  Status serve();
  void stop();
  int uploads_in_flight() const { return in_flight_.load(); }
  // Null before bind().
  const FrontStats* front_stats() const { return front_ ? &front_->stats() : nullptr; }

 private:
  class Router;
  struct Job {
    Connection* connection;
    RequestHead head;
  };
  void work(BoundedQueue<Job>& queue);
  void serve_request(Connection& connection, const RequestHead& head);

  HttpServerOptions options_;
  const UploadSettings& settings_;
  UploadGate& gate_;
  OutputCommitter& committer_;
  UploadObserver observer_;
  ReceiverApi api_;
  std::atomic<int> in_flight_{0};
  Logger logger_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<ConnectionFront> front_;
  BoundedQueue<Job> uploads_;  // requests with a body
  BoundedQueue<Job> others_;   // requests without one
  std::vector<std::thread> workers_;
};

}  // namespace transfer::receiver
