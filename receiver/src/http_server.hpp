#pragma once
// The HTTP adapter: the connection front (shared/http: one epoll thread that parses every head
// once, writes every answer without blocking and bounds slow, idle and hostile clients) in front
// of the receiver's routes (receiver_routes.hpp) and its worker pools. Knows nothing of Fernet
// or files.
//   GET /                 -> the old pair's health body, byte for byte (answered by the front)
//   GET /readyz           -> ReceiverApi::readiness, on a worker of its own
//   GET /metrics          -> ReceiverApi::metrics      } on two workers for both; requests for
//   GET /files, /files/<n> -> ReceiverApi::list_files / } the same target waiting together are
//                            file (the ledger)         } answered from one rendering
//   POST /upload/<name>   -> precheck on the front's thread (name rules, headers, size), then an
//                            upload worker: UploadHandler (gate, body, UploadSession)
//   anything else         -> JSON 404 / 405 / 413 / 415 from the routes, unread body
// Workers render an answer and hand it back to the front: none ever waits on a client that does
// not read. Every upload carries a transfer id: the client's X-Transfer-Id when it is well formed
// (the sender makes one per attempt), else one made here; it is logged and echoed in the answer.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "receiver_routes.hpp"
#include "transfer/bounded_queue.hpp"
#include "transfer/http/connection_front.hpp"
#include "transfer/http/http_answer.hpp"
#include "transfer/logging.hpp"
#include "transfer/result.hpp"
#include "upload_gate.hpp"
#include "upload_handler.hpp"
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
  double write_timeout_s = 30;  // an interim "100 Continue"
  http::FrontOptions front;
  // HTTPS when cert_file is set; client certificates required when client_ca_file is set too.
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
};

inline constexpr const char* kTransferIdHeader = "X-Transfer-Id";

// What the adapter hands over after each upload it answered.
struct UploadEvent {
  const std::string& name;
  const std::string& transfer_id;
  const std::string& peer;
  double seconds;
  const UploadOutcome& outcome;
  // The client showed it holds a key (a valid signature, or a token that verified): only such
  // refusals are worth a row in the ledger; the others cost no disk.
  bool key_proven;
};
using UploadObserver = std::function<void(const UploadEvent&)>;

// A response made without the HTTP layer's types.
struct PlainResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields
};

// The read-only endpoints, as plain functions of the request's path and query.
struct ReceiverApi {
  std::function<PlainResponse()> readiness;
  std::function<PlainResponse()> metrics;
  std::function<PlainResponse(const std::map<std::string, std::string>& query)> list_files;
  std::function<PlainResponse(const std::string& name)> file;
  // Called before each upload's body is read (the service reloads a changed key file here).
  std::function<void()> before_upload;
  // Whether a GET of /files, /files/<name> or /metrics may be answered (FILES_ACCESS,
  // METRICS_ACCESS): nothing when it may, else the refusal. Called on a worker.
  std::function<std::optional<PlainResponse>(const http::RequestHead& head, Endpoint endpoint)>
      authorize;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const UploadSettings& settings, UploadGate& gate,
             OutputCommitter& committer, UploadObserver observer, ReceiverApi api, Logger logger);
  ~HttpServer();
  // Binds; returns the port actually bound (useful with port 0). With TLS, first checks that the
  // certificate and key were taken.
  Result<int> bind();
  // Serves until stop(); in-flight requests finish before it returns.
  Status serve();
  void stop();
  int uploads_in_flight() const { return in_flight_.load(); }
  // Null before bind().
  const http::FrontStats* front_stats() const { return front_ ? &front_->stats() : nullptr; }
  const RouteStats& route_stats() const { return route_stats_; }

 private:
  struct Job {
    http::Connection* connection = nullptr;
    http::RequestHead head;
    Route route;
    http::ConnectionTerms terms;
    UploadRequestHead upload;  // kUpload
    std::string transfer_id;   // kUpload
  };
  std::optional<http::Answer> on_head(http::Connection& connection, http::RequestHead& head);
  http::ConnectionTerms terms_for(const http::RequestHead& head, http::Connection& connection,
                                  bool head_only) const;
  void serve_uploads();
  void serve_reads(BoundedQueue<Job>& queue);
  PlainResponse render(const Job& job);
  void answer_upload(Job& job, const UploadOutcome& outcome, bool body_complete, bool key_proven,
                     std::chrono::steady_clock::time_point started);

  HttpServerOptions options_;
  UploadObserver observer_;
  ReceiverApi api_;
  Logger logger_;
  const UploadSettings& settings_;
  UploadHandler uploads_handler_;
  std::atomic<int> in_flight_{0};
  RouteStats route_stats_;
  std::string keep_alive_field_;
  std::unique_ptr<http::ConnectionFront> front_;
  BoundedQueue<Job> uploads_;    // POST /upload/<name>
  BoundedQueue<Job> readiness_;  // GET /readyz: a worker of its own
  BoundedQueue<Job> reads_;      // GET /metrics, /files, /files/<name>
  std::vector<std::thread> workers_;
};

}  // namespace transfer::receiver
