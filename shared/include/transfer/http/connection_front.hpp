#pragma once
// The connection front: one thread with epoll that accepts connections, does their TLS
// handshakes, reads and parses request heads (RequestHead's strict rules: the one parse every
// handler sees), writes every answer and parks idle keep-alive connections, so that a client
// that is slow, idle, hostile or does not read costs a few hundred bytes and no worker thread.
// Each complete, valid head goes to the program's `Handler` on the front's thread, which either
// answers at once (cheap, fixed answers and refusals) or takes the connection to a worker; the
// worker hands it back with finished() and the answer's bytes, which the front writes without
// blocking.
//
// What it bounds (each with the option that sets it):
//   - the whole head must arrive within head_timeout (HEADER_TIMEOUT), from the accept or from
//     the first byte of a later request; an idle keep-alive connection is closed after
//     keep_alive_timeout;
//   - the head's bytes, fields and line length (RequestHeadLimits: 431/414 beyond);
//   - one request at a time per connection: pipelined requests wait unread (TCP flow control
//     holds the rest back) until the answer before them is written whole;
//   - the whole answer must be taken by the client within answer_timeout (ANSWER_TIMEOUT), or
//     the connection is closed: a client that does not read holds no worker and no more than
//     its answer's bytes;
//   - answers waiting for slow readers, over all connections (answer_budget_bytes): while over
//     it, an answer larger than 4 KiB is replaced by a 503, so small ones (health, readiness)
//     still go out;
//   - open connections per client address (max_per_client, 429 beyond) and in all
//     (max_connections: the oldest idle connection is closed to make room, then the oldest
//     still sending its head; only when every connection is busy is a new one refused, 503);
//   - the bytes held for heads still arriving, over all connections (head_budget_bytes): while
//     over it, a head longer than 4 KiB is refused with 431, so ordinary requests still pass.
// Refusals close the connection after the answer; the front then reads and drops what the
// client still sends for up to linger_timeout, so the client sees the answer rather than a
// reset.

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "transfer/http/connection.hpp"
#include "transfer/http/request_head.hpp"
#include "transfer/logging.hpp"

namespace transfer::http {

struct FrontOptions {
  RequestHeadLimits head_limits;
  double head_timeout_s = 10;             // the whole request head, however it trickles in
  double keep_alive_timeout_s = 5;        // an idle connection between two requests
  double answer_timeout_s = 10;           // the whole answer, however slowly the client reads
  size_t max_connections = 10000;         // open connections in all
  size_t max_per_client = 256;            // open connections from one client address
  size_t head_budget_bytes = 16 << 20;    // bytes of heads still arriving, over all connections
  size_t answer_budget_bytes = 32 << 20;  // bytes of answers not yet taken, over all connections
  double linger_timeout_s = 2;            // after a refusal, reading and dropping what still comes
};

// Counters for metrics and tests (read from any thread).
struct FrontStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused_per_client{0};   // 429
  std::atomic<uint64_t> refused_full{0};         // 503: every connection busy, or no worker free
  std::atomic<uint64_t> evicted{0};              // closed to make room for a new one
  std::atomic<uint64_t> head_timeouts{0};        // 408 or closed silently when nothing came
  std::atomic<uint64_t> head_refusals{0};        // 400/414/417/431/501/505 from the head rules
  std::atomic<uint64_t> answer_timeouts{0};      // closed: the client did not take its answer
  std::atomic<uint64_t> answers_over_budget{0};  // a large answer replaced by 503
  std::atomic<uint64_t> answered_here{0};        // requests answered on the front's thread
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> with_workers{0};
};

// What the connection does once an answer is written.
enum class After {
  kKeep,    // park it for the next request (or serve the next head already buffered)
  kLinger,  // the answer is the last (the client may still be sending): half-close, read and
            // drop for up to linger_timeout, then close, so it sees the answer, not a reset
  kClose,   // close at once (the connection failed; `bytes` is ignored)
};

struct Answer {
  std::string bytes;  // the whole response (render_response)
  After after = After::kKeep;
};

class ConnectionFront {
 public:
  // Called on the front's thread for every complete, valid head (the connection's buffer starts
  // at the request line; head.head_bytes of it are the head). Returns the answer to write now,
  // or nothing when it handed the connection to a worker, which must then call finished()
  // exactly once. Must not block.
  using Handler = std::function<std::optional<Answer>(Connection& connection, RequestHead& head)>;

  // `listen_fd` is a bound, listening socket (made non-blocking here); `tls` may be null.
  ConnectionFront(FrontOptions options, UniqueFd listen_fd, SslCtxPtr tls, Handler handler,
                  Logger logger);
  ~ConnectionFront();
  ConnectionFront(const ConnectionFront&) = delete;
  ConnectionFront& operator=(const ConnectionFront&) = delete;

  // Runs the loop until stop(), until every connection with a worker came back and every
  // answer was written (or its deadline passed).
  Status run();

  // From any thread: stop accepting, close what is idle or reading a head, let run() return
  // once the workers are done. Answers made from then on should close the connection.
  void stop();
  bool stopping() const { return stopping_.load(); }

  // From the worker: the request is answered (or failed: After::kClose); the connection is the
  // front's again. The request's head and any body the worker read are consumed.
  void finished(Connection& connection, Answer answer);

  const FrontStats& stats() const { return stats_; }
  const FrontOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { kNew, kHandshake, kHead, kIdle, kBusy, kAnswer, kClosing };
  struct Entry;
  using Timeline = std::list<Entry*>;  // entries in the order of their deadlines

  void on_listen_ready();
  void accept_one(UniqueFd fd, const std::string& ip, int port);
  void on_event(Entry& e);
  void on_returned();
  void read_head(Entry& e);
  void examine_head(Entry& e);
  void start_answer(Entry& e, Answer answer);
  void continue_answer(Entry& e);
  void after_answer(Entry& e);
  void refuse(Entry& e, int status, const std::string& reason, const char* extra_headers = "");
  void continue_closing(Entry& e);
  void enter(Entry& e, Phase phase);
  void watch(Entry& e, uint32_t events);
  void close(Entry& e);
  bool evict_one();
  void expire(Clock::time_point now);
  int next_timeout_ms(Clock::time_point now) const;
  Timeline* timeline_of(Phase phase);
  Clock::duration timeout_of(Phase phase) const;
  void count_head_bytes(Entry& e, size_t bytes);
  void set_answer_bytes(Entry& e, size_t bytes);

  FrontOptions options_;
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;  // eventfd: stop() and finished() wake the loop
  SslCtxPtr tls_;
  Handler handler_;
  Logger logger_;

  std::unordered_map<const Connection*, std::unique_ptr<Entry>> entries_;
  std::vector<const Connection*> dead_;  // closed during this batch of events: freed after it
  std::unordered_map<std::string, size_t> per_client_;
  Timeline heads_;    // kHandshake and kHead
  Timeline idle_;     // kIdle
  Timeline answers_;  // kAnswer
  Timeline closing_;  // kClosing
  size_t head_bytes_ = 0;
  size_t answer_bytes_ = 0;  // unsent bytes of answers, over all connections
  Clock::time_point accept_paused_until_{};
  bool listening_ = true;

  std::mutex returned_mu_;
  std::vector<std::pair<const Connection*, Answer>> returned_;
  std::atomic<bool> stopping_{false};
  FrontStats stats_;
};

}  // namespace transfer::http
