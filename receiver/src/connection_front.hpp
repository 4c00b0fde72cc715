#pragma once
// The connection front: one thread with epoll that accepts connections, does
// their TLS handshakes, reads request heads and parks idle keep-alive
// connections, so that a client that is slow, idle or hostile costs a few
// hundred bytes and no worker thread. Only a request whose head is complete and
// valid (RequestHead's strict rules) goes to a worker, through `dispatch`; the
// worker hands the connection back with finished() when the request is
// answered.
//
// What it bounds (each with the option that sets it):
//   - the whole head must arrive within head_timeout (HEADER_TIMEOUT), from the
//   accept or from
//     the first byte of a later request: a client sending a byte a second
//     cannot keep a head open; an idle keep-alive connection is closed after
//     keep_alive_timeout;
//   - the head's bytes, fields and line length (RequestHeadLimits: 431/414
//   beyond);
//   - a body only reaches a route that streams it (`accepts_body`); any other
//   gets 413 and the
//     connection is closed without reading the body;
//   - open connections per client address (max_per_client, 429 beyond) and in
//   all
//     (max_connections: the oldest idle connection is closed to make room, then
//     the oldest still sending its head; only when every connection is with a
//     worker is a new one refused, 503);
//   - the bytes held for heads still arriving, over all connections
//   (head_budget_bytes): while
//     over it, a head longer than 4 KiB is refused with 431, so ordinary
//     requests still pass.
// Refusals are answered by the front itself ({"msg":..,"status_code":..},
// Connection: close), after which it reads and drops what the client still
// sends for up to linger_timeout, so the client sees the answer rather than a
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

#include "connection.hpp"
#include "request_head.hpp"
#include "transfer/logging.hpp"

namespace transfer::receiver {

struct FrontOptions {
  RequestHeadLimits head_limits;
  double head_timeout_s = 10;           // the whole request head, however it trickles in
  double keep_alive_timeout_s = 5;      // an idle connection between two requests
  size_t max_connections = 10000;       // open connections in all
  size_t max_per_client = 256;          // open connections from one client address
  size_t head_budget_bytes = 16 << 20;  // bytes of heads still arriving, over all connections
  double linger_timeout_s = 2;          // after a refusal, reading and dropping what still comes
};

// Counters for metrics and tests (read from any thread).
struct FrontStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused_per_client{0};  // 429
  std::atomic<uint64_t> refused_full{0};        // 503: every connection with a worker
  std::atomic<uint64_t> evicted{0};             // closed to make room for a new one
  std::atomic<uint64_t> head_timeouts{0};       // 408 or closed silently when nothing came
  std::atomic<uint64_t> head_refusals{0};       // 400/414/417/431/501/505 from the head rules
  std::atomic<uint64_t> bodies_refused{0};      // 413: a body on a route that does not stream one
  std::atomic<uint64_t> answered_here{0};       // requests answered by the front itself (GET /)
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> with_workers{0};
};

class ConnectionFront {
 public:
  // Takes `connection` (its head, parsed, is `head`; its buffer starts at the
  // request line) and must hand it back with finished() exactly once. False
  // when it cannot take it now: the front answers 503 and closes the
  // connection.
  using Dispatch = std::function<bool(Connection& connection, RequestHead head)>;
  using AcceptsBody = std::function<bool(const RequestHead& head)>;

  // `listen_fd` is a bound, listening socket (made non-blocking here); `tls`
  // may be null.
  ConnectionFront(FrontOptions options, UniqueFd listen_fd, SslCtxPtr tls, AcceptsBody accepts_body,
                  Dispatch dispatch, Logger logger);
  ~ConnectionFront();
  ConnectionFront(const ConnectionFront&) = delete;
  ConnectionFront& operator=(const ConnectionFront&) = delete;

  // Runs the loop until stop() and until every connection with a worker came
  // back.
  Status run();
  // A request the front answers itself, without a worker: the whole response, and whether the
  // connection ends with it. For answers that need no work (liveness), so they cost no hand-off
  // between threads and never wait behind the workers.
  struct ImmediateAnswer {
    std::string bytes;
    bool close = false;
  };
  using Immediate = std::function<std::optional<ImmediateAnswer>(const RequestHead& head,
                                                                 Connection& connection)>;
  // Before run(): consulted for every complete head before it is dispatched.
  void set_immediate_answers(Immediate immediate) { immediate_ = std::move(immediate); }

  // From any thread: stop accepting, close what is not with a worker, let run()
  // return once the workers are done. Workers should then answer with
  // Connection: close.
  void stop();
  bool stopping() const { return stopping_.load(); }

  // What a worker does with a connection whose request it answered.
  enum class After {
    kKeep,    // park it for the next request (or serve the next head already
              // buffered)
    kLinger,  // the answer is out but the client may still be sending:
              // half-close, read and drop for up to linger_timeout, then close
              // (so it sees the answer, not a reset)
    kClose,   // close at once (the connection failed)
  };
  // From the worker: the request is answered; the connection is the front's
  // again.
  void finished(Connection& connection, After after);

  const FrontStats& stats() const { return stats_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { kNew, kHandshake, kHead, kIdle, kBusy, kClosing };
  struct Entry;
  using Timeline = std::list<Entry*>;  // entries in the order of their deadlines

  void on_listen_ready();
  void accept_one(UniqueFd fd, const std::string& ip, int port);
  void on_event(Entry& e, uint32_t events);
  void on_returned();
  void read_head(Entry& e);
  void examine_head(Entry& e);
  void answer_now(Entry& e, size_t head_bytes, ImmediateAnswer answer);
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

  FrontOptions options_;
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;  // eventfd: stop() and finished() wake the loop
  SslCtxPtr tls_;
  AcceptsBody accepts_body_;
  Dispatch dispatch_;
  Immediate immediate_;
  Logger logger_;

  std::unordered_map<const Connection*, std::unique_ptr<Entry>> entries_;
  std::vector<const Connection*> dead_;  // closed during this batch of events: freed after it
  std::unordered_map<std::string, size_t> per_client_;
  Timeline heads_;    // kHandshake and kHead
  Timeline idle_;     // kIdle
  Timeline closing_;  // kClosing
  size_t head_bytes_ = 0;
  Clock::time_point accept_paused_until_{};
  bool listening_ = true;

  std::mutex returned_mu_;
  std::vector<std::pair<const Connection*, After>> returned_;
  std::atomic<bool> stopping_{false};
  FrontStats stats_;
};

}  // namespace transfer::receiver
