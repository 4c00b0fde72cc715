#include "http_server.hpp"

#include <openssl/rand.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>

#include "transfer/http/http_answer.hpp"

namespace transfer::receiver {
namespace {

// Byte for byte what the old Flask receiver answered (jsonify: compact, sorted, newline).
constexpr std::string_view kHealthBody = "{\"msg\":\"Server is healthy\",\"status_code\":200}\n";
constexpr const char* kJson = "application/json";
// Requests a connection may carry before it is closed (nginx's keepalive_requests).
constexpr uint64_t kKeepAliveMaxRequests = 1000;
// Workers for the read-only endpoints: readiness has one of its own, so it never waits behind
// metrics or ledger pages; those two share two.
constexpr int kReadWorkers = 2;

using Clock = std::chrono::steady_clock;

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

std::string transfer_id_of(const http::RequestHead& head) {
  const std::string* sent = head.field(kTransferIdHeader);
  return sent && well_formed_transfer_id(*sent) ? *sent : new_transfer_id();
}

http::HttpResponse to_http(PlainResponse r) {
  http::HttpResponse out;
  out.status = r.status;
  out.content_type = std::move(r.content_type);
  out.body = std::move(r.body);
  out.headers = std::move(r.headers);
  return out;
}

PlainResponse json_answer(int status, std::string_view msg) {
  return PlainResponse{status, kJson, http::json_message(status, msg), {}};
}

http::Answer upload_answer(const UploadOutcome& outcome, const std::string& transfer_id,
                           http::ConnectionTerms terms, bool body_complete) {
  http::HttpResponse r;
  r.status = outcome.status;
  r.content_type = kJson;
  r.body = outcome.json_body();
  if (outcome.retry_after_s)
    r.headers.emplace_back("Retry-After", std::to_string(*outcome.retry_after_s));
  if (outcome.status == 401)
    r.headers.emplace_back("WWW-Authenticate", std::string(kSignatureHeader));
  r.headers.emplace_back(kTransferIdHeader, transfer_id);
  // A body not read to its end leaves the connection at an unknown place in the stream: it
  // ends after the answer (the front lingers, so the client sees the answer).
  if (!body_complete) terms.close = true;
  return http::Answer{http::render_response(r, terms),
                      terms.close ? http::After::kLinger : http::After::kKeep};
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const UploadSettings& settings, UploadGate& gate,
                       OutputCommitter& committer, UploadObserver observer, ReceiverApi api,
                       Logger logger)
    : options_(std::move(options)),
      observer_(std::move(observer)),
      api_(std::move(api)),
      logger_(std::move(logger)),
      settings_(settings),
      uploads_handler_(settings, gate, committer,
                       http::BodyTimeouts{options_.read_timeout_s, options_.min_body_rate,
                                          options_.read_timeout_s},
                       options_.write_timeout_s, api_.before_upload),
      keep_alive_field_(
          "timeout=" + std::to_string(static_cast<int>(options_.front.keep_alive_timeout_s)) +
          ", max=" + std::to_string(kKeepAliveMaxRequests)),
      uploads_(options_.front.max_connections),
      readiness_(options_.front.max_connections),
      reads_(options_.front.max_connections) {}

HttpServer::~HttpServer() {
  uploads_.close();
  readiness_.close();
  reads_.close();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

Result<int> HttpServer::bind() {
  http::SslCtxPtr tls;
  if (!options_.cert_file.empty()) {
    auto ctx = http::make_server_tls_context(options_.cert_file, options_.key_file,
                                             options_.client_ca_file);
    if (!ctx) {
      return make_error(ErrorCode::kInvalidArgument,
                        "cannot set up TLS from TLS_CERT_FILE, TLS_KEY_FILE and CLIENT_CA_FILE: " +
                            ctx.error().message);
    }
    tls = std::move(*ctx);
  }
  auto fd = http::listen_tcp(options_.host, options_.port);
  if (!fd) return fd.error();
  const int port = http::bound_port(fd->get());
  front_ = std::make_unique<http::ConnectionFront>(
      options_.front, std::move(*fd), std::move(tls),
      [this](http::Connection& connection, http::RequestHead& head) {
        return on_head(connection, head);
      },
      logger_);
  return port;
}

http::ConnectionTerms HttpServer::terms_for(const http::RequestHead& head,
                                            http::Connection& connection, bool head_only) const {
  http::ConnectionTerms terms;
  terms.close = !head.keep_alive || front_->stopping() ||
                ++connection.requests_served >= kKeepAliveMaxRequests;
  terms.keep_alive_field = keep_alive_field_;
  terms.head_only = head_only;
  return terms;
}

// On the front's thread: route, answer what needs no work, hand the rest to a worker.
std::optional<http::Answer> HttpServer::on_head(http::Connection& connection,
                                                http::RequestHead& head) {
  auto routed = route_request(head);
  if (auto* refused = std::get_if<RouteRefusal>(&routed)) {
    ++(refused->status == 413 ? route_stats_.body_refused : route_stats_.not_routed);
    PlainResponse r = json_answer(refused->status, refused->message);
    if (!refused->allow.empty()) r.headers.emplace_back("Allow", refused->allow);
    http::ConnectionTerms terms = terms_for(head, connection, head.method == "HEAD");
    terms.close = true;
    return http::Answer{http::render_response(to_http(std::move(r)), terms), http::After::kLinger};
  }
  Job job;
  job.route = std::move(std::get<Route>(routed));
  job.terms = terms_for(head, connection, job.route.head_only);
  const auto keep_or_linger = [&] {
    return job.terms.close ? http::After::kLinger : http::After::kKeep;
  };
  if (job.route.endpoint == Endpoint::kHealth) {
    // Liveness needs no work: answered here, so it never waits behind a worker.
    http::HttpResponse r;
    r.content_type = kJson;
    r.body = std::string(kHealthBody);
    return http::Answer{http::render_response(r, job.terms), keep_or_linger()};
  }
  if (job.route.endpoint == Endpoint::kUpload) {
    job.transfer_id = transfer_id_of(head);
    job.upload = upload_request_head(head, job.route.name);
    if (auto refusal = precheck_upload(job.upload, settings_)) {
      const std::string peer = connection.peer();
      observer_(UploadEvent{job.upload.name, job.transfer_id, peer, 0.0, *refusal, false});
      return upload_answer(*refusal, job.transfer_id, job.terms, !head.has_body());
    }
  }
  job.connection = &connection;
  job.head = std::move(head);
  BoundedQueue<Job>& queue = job.route.endpoint == Endpoint::kUpload      ? uploads_
                             : job.route.endpoint == Endpoint::kReadiness ? readiness_
                                                                          : reads_;
  if (!queue.try_push(job)) {
    http::ConnectionTerms terms = job.terms;
    terms.close = true;
    PlainResponse r = json_answer(503, "the server is busy; retry later");
    r.headers.emplace_back("Retry-After", "1");
    return http::Answer{http::render_response(to_http(std::move(r)), terms), http::After::kLinger};
  }
  return std::nullopt;
}

Status HttpServer::serve() {
  if (!front_) return make_error(ErrorCode::kInvalidArgument, "serve() before bind()");
  for (int i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { serve_uploads(); });
  workers_.emplace_back([this] { serve_reads(readiness_); });
  for (int i = 0; i < kReadWorkers; ++i) workers_.emplace_back([this] { serve_reads(reads_); });
  Status st = front_->run();
  uploads_.close();
  readiness_.close();
  reads_.close();
  for (auto& t : workers_) t.join();
  workers_.clear();
  return st;
}

void HttpServer::stop() {
  if (front_) front_->stop();
}

void HttpServer::serve_uploads() {
  while (auto job = uploads_.pop()) {
    const auto started = Clock::now();
    ++in_flight_;
    UploadResult result = uploads_handler_.serve(*job->connection, job->head, job->upload);
    --in_flight_;
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    const std::string peer = job->connection->peer();
    observer_(UploadEvent{job->upload.name, job->transfer_id, peer, seconds, result.outcome,
                          result.signed_upload || result.outcome.token_verified});
    front_->finished(*job->connection, upload_answer(result.outcome, job->transfer_id, job->terms,
                                                     result.body_complete));
  }
}

PlainResponse HttpServer::render(const Job& job) {
  try {
    switch (job.route.endpoint) {
      case Endpoint::kReadiness:
        return api_.readiness();
      case Endpoint::kMetrics:
        return api_.metrics();
      case Endpoint::kFiles: {
        std::map<std::string, std::string> query;
        for (const auto& [k, v] : job.route.query) query.emplace(k, v);  // the first of each name
        return api_.list_files(query);
      }
      case Endpoint::kFile:
        return api_.file(job.route.name);
      case Endpoint::kHealth:
      case Endpoint::kUpload:
        break;
    }
  } catch (const std::exception& e) {
    logger_->error("internal error endpoint={} error={}", endpoint_label(job.route.endpoint),
                   log_value(e.what()));
  }
  return json_answer(500, "internal error");  // never the exception text
}

// Takes every request waiting and renders each distinct one once: a flood of identical requests
// (a thousand readiness probes, the same metrics page) costs one rendering per round.
void HttpServer::serve_reads(BoundedQueue<Job>& queue) {
  while (auto first = queue.pop()) {
    std::deque<Job> batch = queue.take_all();
    batch.push_front(std::move(*first));
    std::map<std::pair<Endpoint, std::string>, PlainResponse> rendered;
    for (Job& job : batch) {
      std::optional<PlainResponse> response;
      if (api_.authorize) response = api_.authorize(job.head, job.route.endpoint);
      if (!response) {
        // Readiness and metrics do not depend on the target's query; ledger pages do.
        const std::string key =
            job.route.endpoint == Endpoint::kFiles || job.route.endpoint == Endpoint::kFile
                ? job.head.target
                : std::string();
        auto it = rendered.find({job.route.endpoint, key});
        if (it == rendered.end())
          it = rendered.emplace(std::pair(job.route.endpoint, key), render(job)).first;
        response = it->second;
      }
      front_->finished(*job.connection,
                       http::Answer{http::render_response(to_http(std::move(*response)), job.terms),
                                    job.terms.close ? http::After::kLinger : http::After::kKeep});
    }
  }
}

}  // namespace transfer::receiver
