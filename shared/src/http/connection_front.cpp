#include "transfer/http/connection_front.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "transfer/http/http_answer.hpp"

namespace transfer::http {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
// While the head budget is exhausted, heads up to this size still pass.
constexpr size_t kSmallHead = 4 * 1024;
// While the answer budget is exhausted, answers up to this size still go out.
constexpr size_t kSmallAnswer = 4 * 1024;
// While closing, at most this much of what the client still sends is read and
// dropped.
constexpr size_t kLingerBytes = 1 << 20;
constexpr int kAcceptsPerWakeup = 128;
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

// epoll_event.data.ptr of the two descriptors that are not connections.
char kListenTag;
char kWakeTag;

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// One write of a whole small answer to a plain socket that is about to be
// closed.
void answer_and_close(UniqueFd fd, int status, const std::string& reason, const char* extra = "") {
  const std::string answer = plain_http_answer(status, reason, extra);
  [[maybe_unused]] const ssize_t n =
      ::send(fd.get(), answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

struct ConnectionFront::Entry {
  std::unique_ptr<Connection> conn;
  Phase phase = Phase::kNew;
  Clock::time_point since;  // when the current phase's deadline started
  Timeline* timeline = nullptr;
  Timeline::iterator where;
  HeadScanner scanner;
  size_t head_bytes_counted = 0;    // this entry's share of head_bytes_
  size_t answer_bytes_counted = 0;  // this entry's share of answer_bytes_
  uint32_t watched = 0;             // epoll events registered (0: not registered)
  std::string out;                  // the answer being written
  size_t out_sent = 0;
  After after = After::kKeep;  // what follows the answer being written
  size_t dropped = 0;          // bytes read and dropped while closing
  bool write_shut = false;
  bool dead = false;  // closed; freed after the current batch of events
};

ConnectionFront::ConnectionFront(FrontOptions options, UniqueFd listen_fd, SslCtxPtr tls,
                                 Handler handler, Logger logger)
    : options_(options),
      listen_fd_(std::move(listen_fd)),
      epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      tls_(std::move(tls)),
      handler_(std::move(handler)),
      logger_(std::move(logger)) {
  set_nonblocking(listen_fd_.get());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &kListenTag;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &ev);
  ev.data.ptr = &kWakeTag;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
}

ConnectionFront::~ConnectionFront() = default;

void ConnectionFront::stop() {
  stopping_ = true;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
}

void ConnectionFront::finished(Connection& connection, Answer answer) {
  {
    std::lock_guard lock(returned_mu_);
    returned_.emplace_back(&connection, std::move(answer));
  }
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
}

ConnectionFront::Timeline* ConnectionFront::timeline_of(Phase phase) {
  switch (phase) {
    case Phase::kHandshake:
    case Phase::kHead:
      return &heads_;
    case Phase::kIdle:
      return &idle_;
    case Phase::kAnswer:
      return &answers_;
    case Phase::kClosing:
      return &closing_;
    case Phase::kNew:
    case Phase::kBusy:
      return nullptr;
  }
  return nullptr;
}

ConnectionFront::Clock::duration ConnectionFront::timeout_of(Phase phase) const {
  auto seconds = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  switch (phase) {
    case Phase::kHandshake:
    case Phase::kHead:
      return seconds(options_.head_timeout_s);
    case Phase::kIdle:
      return seconds(options_.keep_alive_timeout_s);
    case Phase::kAnswer:
      return seconds(options_.answer_timeout_s);
    case Phase::kClosing:
      return seconds(options_.linger_timeout_s);
    case Phase::kNew:
    case Phase::kBusy:
      break;
  }
  return Clock::duration::max();
}

void ConnectionFront::count_head_bytes(Entry& e, size_t bytes) {
  head_bytes_ -= e.head_bytes_counted;
  e.head_bytes_counted = bytes;
  head_bytes_ += bytes;
}

void ConnectionFront::set_answer_bytes(Entry& e, size_t bytes) {
  answer_bytes_ -= e.answer_bytes_counted;
  e.answer_bytes_counted = bytes;
  answer_bytes_ += bytes;
}

void ConnectionFront::enter(Entry& e, Phase phase) {
  if (e.phase == Phase::kHead && phase != Phase::kHead) count_head_bytes(e, 0);
  // The head's deadline runs from the accept, through the TLS handshake.
  const bool same_deadline = e.phase == Phase::kHandshake && phase == Phase::kHead;
  if (e.phase == Phase::kBusy && phase != Phase::kBusy) --stats_.with_workers;
  if (phase == Phase::kBusy && e.phase != Phase::kBusy) ++stats_.with_workers;
  if (!same_deadline) {
    if (e.timeline) e.timeline->erase(e.where);
    e.timeline = timeline_of(phase);
    e.since = Clock::now();
    if (e.timeline) e.where = e.timeline->insert(e.timeline->end(), &e);
  }
  e.phase = phase;
}

void ConnectionFront::watch(Entry& e, uint32_t events) {
  if (events == e.watched) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &e;
  const int fd = e.conn->fd();
  if (events == 0) {
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, &ev);
  } else {
    ::epoll_ctl(epoll_fd_.get(), e.watched == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
  }
  e.watched = events;
}

void ConnectionFront::close(Entry& e) {
  if (e.dead) return;
  if (e.phase == Phase::kHead) count_head_bytes(e, 0);
  set_answer_bytes(e, 0);
  if (e.phase == Phase::kBusy) --stats_.with_workers;
  if (e.timeline) e.timeline->erase(e.where);
  e.timeline = nullptr;
  watch(e, 0);
  if (auto it = per_client_.find(e.conn->peer_ip()); it != per_client_.end() && --it->second == 0) {
    per_client_.erase(it);
  }
  --stats_.open;
  e.dead = true;
  dead_.push_back(e.conn.get());
  // The socket closes now; the object lives until the end of the batch of events, so that no
  // new connection can take its address (the key of entries_) while it is still listed.
  e.conn->close_now();
}

Status ConnectionFront::run() {
  std::vector<epoll_event> events(256);
  bool stop_seen = false;
  for (;;) {
    if (stopping_ && !stop_seen) {
      stop_seen = true;
      ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
      listen_fd_.reset();
      listening_ = false;
      for (auto& [conn, entry] : entries_) {
        if (entry->phase != Phase::kBusy && entry->phase != Phase::kAnswer) close(*entry);
      }
    }
    if (stop_seen && stats_.with_workers.load() == 0) {
      on_returned();
      if (stats_.with_workers.load() == 0 && answers_.empty()) break;
    }
    const int n = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()),
                               next_timeout_ms(Clock::now()));
    if (n < 0 && errno != EINTR) return errno_error("epoll_wait failed", "", errno);
    for (int i = 0; i < n; ++i) {
      void* tag = events[static_cast<size_t>(i)].data.ptr;
      if (tag == &kListenTag) {
        on_listen_ready();
      } else if (tag == &kWakeTag) {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t r = ::read(wake_fd_.get(), &count, sizeof count);
        on_returned();
      } else {
        auto* e = static_cast<Entry*>(tag);
        if (!e->dead) on_event(*e);
      }
    }
    const auto now = Clock::now();
    expire(now);
    if (!listening_ && listen_fd_ && !stopping_ && now >= accept_paused_until_) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = &kListenTag;
      ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &ev);
      listening_ = true;
    }
    // Entries closed during this batch are freed only now: a later event of the same batch may
    // still point at one.
    for (const Connection* gone : dead_) entries_.erase(gone);
    dead_.clear();
    if (stop_seen) {
      for (auto& [conn, entry] : entries_) {
        if (entry->phase != Phase::kBusy && entry->phase != Phase::kAnswer) close(*entry);
      }
      for (const Connection* gone : dead_) entries_.erase(gone);
      dead_.clear();
    }
  }
  return ok_status();
}

void ConnectionFront::on_listen_ready() {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: make room and stop accepting for a moment, or this would spin.
        logger_->warn("cannot accept a connection: {} (open={}); pausing accepts for 100 ms",
                      std::strerror(errno), stats_.open.load());
        evict_one();
        ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
        listening_ = false;
        accept_paused_until_ = Clock::now() + kAcceptPause;
      }
      return;
    }
    int port = 0;
    const std::string ip = socket_address_text(addr, port);
    accept_one(UniqueFd(fd), ip, port);
  }
}

void ConnectionFront::accept_one(UniqueFd fd, const std::string& ip, int port) {
  ++stats_.accepted;
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (per_client_[ip] >= options_.max_per_client) {
    ++stats_.refused_per_client;
    logger_->debug("connection refused peer={}:{} reason=over MAX_CONNECTIONS_PER_CLIENT={}", ip,
                   port, options_.max_per_client);
    if (!tls_) {
      answer_and_close(std::move(fd), 429,
                       "too many connections from " + ip + " (MAX_CONNECTIONS_PER_CLIENT=" +
                           std::to_string(options_.max_per_client) + ")",
                       "Retry-After: 1\r\n");
    }
    return;
  }
  if (static_cast<size_t>(stats_.open.load()) >= options_.max_connections && !evict_one()) {
    ++stats_.refused_full;
    if (per_client_[ip] == 0) per_client_.erase(ip);
    if (!tls_) {
      answer_and_close(std::move(fd), 503, "every connection is busy; retry later",
                       "Retry-After: 1\r\n");
    }
    return;
  }
  SslPtr ssl;
  if (tls_) {
    ssl.reset(SSL_new(tls_.get()));
    if (!ssl) return;
  }
  auto entry = std::make_unique<Entry>();
  entry->conn = std::make_unique<Connection>(std::move(fd), ip, port, std::move(ssl));
  entry->scanner = HeadScanner(options_.head_limits);
  Entry& e = *entry;
  entries_.emplace(e.conn.get(), std::move(entry));
  ++per_client_[ip];
  ++stats_.open;
  enter(e, tls_ ? Phase::kHandshake : Phase::kHead);
  watch(e, EPOLLIN);
}

bool ConnectionFront::evict_one() {
  for (Timeline* t : {&idle_, &heads_}) {
    if (!t->empty()) {
      Entry& victim = *t->front();
      logger_->debug("connection closed to make room peer={} phase={}", victim.conn->peer(),
                     victim.phase == Phase::kIdle ? "idle" : "head");
      close(victim);
      ++stats_.evicted;
      return true;
    }
  }
  return false;
}

void ConnectionFront::on_event(Entry& e) {
  switch (e.phase) {
    case Phase::kHandshake: {
      const IoResult r = e.conn->handshake();
      if (r.state == IoState::kDone) {
        enter(e, Phase::kHead);
        read_head(e);
      } else if (r.state == IoState::kWantRead || r.state == IoState::kWantWrite) {
        watch(e, r.state == IoState::kWantRead ? EPOLLIN : EPOLLOUT);
      } else {
        close(e);
      }
      return;
    }
    case Phase::kIdle:
      enter(e, Phase::kHead);
      read_head(e);
      return;
    case Phase::kHead:
      read_head(e);
      return;
    case Phase::kAnswer:
      continue_answer(e);
      if (!e.dead && e.phase == Phase::kHead) {
        examine_head(e);
        if (!e.dead && e.phase == Phase::kHead) read_head(e);
      }
      return;
    case Phase::kClosing:
      continue_closing(e);
      return;
    case Phase::kNew:
    case Phase::kBusy:
      return;  // not watched while a worker has it
  }
}

void ConnectionFront::read_head(Entry& e) {
  char chunk[kReadChunk];
  for (;;) {
    const IoResult r = e.conn->read_some(chunk, sizeof chunk);
    if (r.state == IoState::kWantRead || r.state == IoState::kWantWrite) {
      watch(e, r.state == IoState::kWantRead ? EPOLLIN : EPOLLOUT);
      return;
    }
    if (r.state != IoState::kDone || r.bytes == 0) {
      close(e);  // the client went away (or reset) before its head was complete
      return;
    }
    e.conn->buffer().append(chunk, r.bytes);
    count_head_bytes(e, e.head_bytes_counted + r.bytes);
    if (head_bytes_ > options_.head_budget_bytes && e.conn->buffer().size() > kSmallHead) {
      ++stats_.head_refusals;
      refuse(e, 431,
             "the server holds too many large request heads at the moment; send a head under " +
                 std::to_string(kSmallHead) + " bytes or retry later");
      return;
    }
    examine_head(e);
    if (e.dead || e.phase != Phase::kHead) return;
  }
}

void ConnectionFront::examine_head(Entry& e) {
  // In a loop: requests answered at once may be followed by more in the buffer (pipelining);
  // each is taken only once the answer before it is written whole.
  while (!e.dead && e.phase == Phase::kHead) {
    std::string& buf = e.conn->buffer();
    const auto outcome = e.scanner.scan(buf);
    if (std::holds_alternative<HeadScanner::NeedMore>(outcome)) return;
    if (const auto* err = std::get_if<HeadError>(&outcome)) {
      ++stats_.head_refusals;
      refuse(e, status_for_refusal(err->kind), err->reason);
      return;
    }
    const auto done = std::get<HeadScanner::Complete>(outcome);
    auto parsed = parse_request_head(
        std::string_view(buf).substr(done.start, done.end - done.start), options_.head_limits);
    if (const auto* err = std::get_if<HeadError>(&parsed)) {
      ++stats_.head_refusals;
      refuse(e, status_for_refusal(err->kind), err->reason);
      return;
    }
    RequestHead head = std::move(std::get<RequestHead>(parsed));
    buf.erase(0, done.end);  // the head (and empty lines before it) is consumed
    e.scanner.reset();
    count_head_bytes(e, 0);
    auto answer = handler_(*e.conn, head);
    if (!answer) {
      enter(e, Phase::kBusy);  // a worker has it until finished()
      watch(e, 0);
      return;
    }
    ++stats_.answered_here;
    // A body nobody read leaves the stream at an unknown place: the connection ends.
    if (answer->after == After::kKeep && head.has_body()) answer->after = After::kLinger;
    start_answer(e, std::move(*answer));
  }
}

void ConnectionFront::start_answer(Entry& e, Answer answer) {
  if (answer.after == After::kClose) {
    close(e);
    return;
  }
  if (answer.bytes.size() > kSmallAnswer &&
      answer_bytes_ + answer.bytes.size() > options_.answer_budget_bytes) {
    ++stats_.answers_over_budget;
    answer.bytes = plain_http_answer(
        503, "the server holds too many answers its clients have not read; retry later",
        "Retry-After: 1\r\n");
    answer.after = After::kLinger;
  }
  if (stopping_ && answer.after == After::kKeep) answer.after = After::kLinger;
  e.out = std::move(answer.bytes);
  e.out_sent = 0;
  e.after = answer.after;
  set_answer_bytes(e, e.out.size());
  enter(e, Phase::kAnswer);
  continue_answer(e);
}

void ConnectionFront::continue_answer(Entry& e) {
  while (e.out_sent < e.out.size()) {
    const IoResult r = e.conn->write_some(e.out.data() + e.out_sent, e.out.size() - e.out_sent);
    if (r.state == IoState::kDone) {
      e.out_sent += r.bytes;
    } else if (r.state == IoState::kWantRead || r.state == IoState::kWantWrite) {
      set_answer_bytes(e, e.out.size() - e.out_sent);
      watch(e, r.state == IoState::kWantRead ? EPOLLIN : EPOLLOUT);
      return;
    } else {
      close(e);
      return;
    }
  }
  set_answer_bytes(e, 0);
  std::string().swap(e.out);
  e.out_sent = 0;
  after_answer(e);
}

void ConnectionFront::after_answer(Entry& e) {
  if (e.after != After::kKeep || stopping_) {
    enter(e, Phase::kClosing);
    continue_closing(e);
    return;
  }
  e.conn->compact();
  enter(e, Phase::kIdle);  // restarts the head's deadline for the next request
  if (e.conn->unread() == 0 && !e.conn->tls_pending()) {
    watch(e, EPOLLIN);
    return;
  }
  // Bytes of the next request came with the last one (pipelining): its head's deadline runs
  // from now; the caller examines it.
  enter(e, Phase::kHead);
  count_head_bytes(e, e.conn->buffer().size());
  watch(e, EPOLLIN);
}

void ConnectionFront::refuse(Entry& e, int status, const std::string& reason,
                             const char* extra_headers) {
  logger_->debug("request refused peer={} status={} reason={}", e.conn->peer(), status,
                 log_value(reason));
  start_answer(e, Answer{plain_http_answer(status, reason, extra_headers), After::kLinger});
}

void ConnectionFront::continue_closing(Entry& e) {
  if (!e.write_shut) {
    e.conn->shutdown_write();
    e.write_shut = true;
    std::string().swap(e.out);
    std::string().swap(e.conn->buffer());
  }
  char chunk[kReadChunk];
  for (;;) {  // read and drop until the client closes, or enough
    const IoResult r = e.conn->read_some(chunk, sizeof chunk);
    if (r.state == IoState::kDone && r.bytes > 0) {
      e.dropped += r.bytes;
      if (e.dropped > kLingerBytes) break;
      continue;
    }
    if (r.state == IoState::kWantRead || r.state == IoState::kWantWrite) {
      watch(e, r.state == IoState::kWantRead ? EPOLLIN : EPOLLOUT);
      return;
    }
    break;
  }
  close(e);
}

void ConnectionFront::on_returned() {
  std::vector<std::pair<const Connection*, Answer>> returned;
  {
    std::lock_guard lock(returned_mu_);
    returned.swap(returned_);
  }
  for (auto& [conn, answer] : returned) {
    auto it = entries_.find(conn);
    if (it == entries_.end()) continue;
    Entry& e = *it->second;
    if (e.dead) continue;
    e.conn->compact();  // the body the worker read
    start_answer(e, std::move(answer));
    if (!e.dead && e.phase == Phase::kHead) {
      examine_head(e);
      if (!e.dead && e.phase == Phase::kHead) read_head(e);
    }
  }
}

void ConnectionFront::expire(Clock::time_point now) {
  for (Timeline* t : {&heads_, &idle_, &answers_, &closing_}) {
    while (!t->empty()) {
      Entry& e = *t->front();
      if (now - e.since < timeout_of(e.phase)) break;
      if (e.phase == Phase::kHead && e.conn->unread() > 0) {
        ++stats_.head_timeouts;
        refuse(e, 408,
               "the request head did not arrive within " +
                   std::to_string(static_cast<int>(options_.head_timeout_s)) +
                   " s (HEADER_TIMEOUT)");
      } else {
        if (e.phase == Phase::kHead || e.phase == Phase::kHandshake) ++stats_.head_timeouts;
        if (e.phase == Phase::kAnswer) ++stats_.answer_timeouts;
        close(e);  // nothing came, the answer was not taken, or it is done closing
      }
    }
  }
}

int ConnectionFront::next_timeout_ms(Clock::time_point now) const {
  Clock::time_point next = Clock::time_point::max();
  for (const Timeline* t : {&heads_, &idle_, &answers_, &closing_}) {
    if (!t->empty()) next = std::min(next, t->front()->since + timeout_of(t->front()->phase));
  }
  if (!listening_ && listen_fd_) next = std::min(next, accept_paused_until_);
  if (next == Clock::time_point::max()) return -1;
  if (next <= now) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

}  // namespace transfer::http
