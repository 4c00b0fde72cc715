#include "clamd_client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

namespace transfer::receiver {
namespace {

using Clock = std::chrono::steady_clock;

// clamd refuses chunks above its own limits only through StreamMaxLength, but a bounded chunk
// keeps each header/body pair small enough to interleave with clamd's reads.
constexpr size_t kMaxChunk = size_t{1} << 20;
// clamd's replies are one short line; anything longer is not clamd, so stop reading.
constexpr size_t kMaxReply = 4096;
// Once a send failed because clamd closed the connection, its answer (if any) is already in our
// receive queue: a short wait is enough and keeps a dead clamd from costing a full io_s.
constexpr double kAnswerAfterCloseS = 1.0;
constexpr std::string_view kStreamPrefix = "stream: ";
constexpr std::string_view kFoundSuffix = " FOUND";
constexpr std::string_view kAddressHelp = " (expected unix:<absolute path> or <host>:<port>)";

std::string seconds_text(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", seconds);
  return buf;
}

// A reply fit for a log line: whatever answered may not be clamd (a wrong CLAMD_ADDRESS).
std::string printable(std::string_view text) {
  constexpr size_t kMax = 200;
  std::string out;
  for (const char c : text.substr(0, kMax)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (text.size() > kMax) out += "...";
  return out;
}

Error busy(const std::string& address, const std::string& what) {
  return make_error(ErrorCode::kBusy, "clamd " + address + ": " + what);
}

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(std::max(0.0, seconds)));
}

// Waits until `fd` is ready for `events` (or has an error or hang-up) or `deadline` passes.
// Returns the revents, 0 on timeout, -1 with errno on failure.
int wait_ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX));
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n > 0) return p.revents;
    if (timeout_ms == 0) return 0;
  }
}

// Writes all of `data` on the non-blocking `fd`; each wait for room in the socket buffer is
// bounded by `io_s` (a clamd that stops reading is a timeout, not a hang). Returns 0 or an errno,
// ETIMEDOUT for the timeout. MSG_NOSIGNAL: a closed peer is EPIPE, not a SIGPIPE.
int send_all(int fd, const char* data, size_t size, double io_s, int flags = 0) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL | flags);
    if (n >= 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    const int ready = wait_ready(fd, POLLOUT, deadline_after(io_s));
    if (ready == 0) return ETIMEDOUT;
    if (ready < 0) return errno;
    // POLLERR/POLLHUP: the next send() reports the error itself.
  }
  return 0;
}

// Reads one reply up to its NUL (clamd ends the replies of z-commands with one) or the end of the
// connection, within `deadline`. Returns 0 or an errno (ETIMEDOUT, EMSGSIZE past kMaxReply);
// `reply` holds what arrived, without the NUL, even on failure.
int read_reply(int fd, Clock::time_point deadline, std::string& reply) {
  char buf[512];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      reply.append(buf, static_cast<size_t>(n));
      const size_t nul = reply.find('\0');
      if (nul != std::string::npos) {
        reply.resize(nul);
        return 0;
      }
      if (reply.size() > kMaxReply) return EMSGSIZE;
      continue;
    }
    if (n == 0) return 0;  // clamd closed the connection: what came is the whole reply
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    const int ready = wait_ready(fd, POLLIN, deadline);
    if (ready == 0) return ETIMEDOUT;
    if (ready < 0) return errno;
  }
}

// One attempt: a non-blocking connect, finished by poll() within `deadline`.
Result<UniqueFd> connect_socket(const sockaddr* addr, socklen_t len, Clock::time_point deadline,
                                double connect_s, const std::string& address) {
  UniqueFd fd(::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("cannot create a socket for clamd", address, errno);
  if (::connect(fd.get(), addr, len) == 0) return fd;
  // EINTR: the connect goes on asynchronously, as with EINPROGRESS. A unix socket whose backlog
  // is full fails at once with EAGAIN instead: clamd is busy, reported below.
  if (errno != EINPROGRESS && errno != EINTR) {
    return busy(address, std::string("cannot connect: ") + std::strerror(errno));
  }
  const int ready = wait_ready(fd.get(), POLLOUT, deadline);
  if (ready == 0) return busy(address, "connect timed out after " + seconds_text(connect_s));
  if (ready < 0) return busy(address, std::string("cannot connect: ") + std::strerror(errno));
  int err = 0;
  socklen_t err_len = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) err = errno;
  if (err != 0) return busy(address, std::string("cannot connect: ") + std::strerror(err));
  return fd;
}

Result<UniqueFd> connect_to(const ClamdAddress& address, const ClamdTimeouts& timeouts) {
  if (!address.unix_path.empty()) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (address.unix_path.size() >= sizeof sun.sun_path) {
      return make_error(ErrorCode::kInvalidArgument,
                        "clamd " + address.text + ": socket path too long");
    }
    std::memcpy(sun.sun_path, address.unix_path.data(), address.unix_path.size());
    return connect_socket(reinterpret_cast<const sockaddr*>(&sun), sizeof sun,
                          deadline_after(timeouts.connect_s), timeouts.connect_s, address.text);
  }

  // getaddrinfo() has no timeout of its own; CLAMD_ADDRESS is normally an IP address or a name
  // from /etc/hosts (a compose service), which resolve without waiting on DNS.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc =
      ::getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found);
  if (rc != 0) {
    return busy(address.text, std::string("cannot resolve ") + address.host + ": " +
                                  (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  // "localhost" may list ::1 first while clamd listens on 127.0.0.1 only: try each in turn.
  Error last = busy(address.text, "no address for " + address.host);
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    auto fd = connect_socket(ai->ai_addr, ai->ai_addrlen, deadline_after(timeouts.connect_s),
                             timeouts.connect_s, address.text);
    if (fd.ok()) return std::move(fd).value();
    last = fd.error();
  }
  return last;
}

// A whole command on a connection of its own: zPING, zVERSION.
Result<std::string> command(const ClamdAddress& address, const ClamdTimeouts& timeouts,
                            std::string_view cmd) {
  auto fd = connect_to(address, timeouts);
  if (!fd.ok()) return fd.error();
  const int err = send_all(fd->get(), cmd.data(), cmd.size(), timeouts.io_s);
  if (err == ETIMEDOUT) {
    return busy(address.text, "timed out sending a command after " + seconds_text(timeouts.io_s));
  }
  if (err != 0) return busy(address.text, std::string("cannot send: ") + std::strerror(err));
  std::string reply;
  const int rerr = read_reply(fd->get(), deadline_after(timeouts.io_s), reply);
  if (rerr == ETIMEDOUT) {
    return busy(address.text, "no reply within " + seconds_text(timeouts.io_s));
  }
  if (rerr != 0) return busy(address.text, std::string("cannot read: ") + std::strerror(rerr));
  if (reply.empty()) return busy(address.text, "closed the connection without a reply");
  return reply;
}

bool parse_port(std::string_view text, int& port) {
  if (text.empty() || text.size() > 5) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && end == text.data() + text.size() && port >= 1 && port <= 65535;
}

}  // namespace

Result<ClamdAddress> parse_clamd_address(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument, "CLAMD_ADDRESS \"" + printable(text) +
                                                       "\": " + why + std::string(kAddressHelp));
  };
  ClamdAddress out;
  out.text = text;
  const std::string_view view(text);
  if (view.find_first_of(std::string_view(" \t\r\n\0", 5)) != std::string_view::npos) {
    return bad("contains a space or control character");
  }
  if (view.starts_with("unix:")) {
    const std::string_view path = view.substr(5);
    if (!path.starts_with('/')) return bad("the socket path must be absolute");
    if (path.size() >= sizeof(sockaddr_un::sun_path)) return bad("the socket path is too long");
    out.unix_path = std::string(path);
    return out;
  }

  std::string_view host;
  std::string_view port;
  if (view.starts_with('[')) {  // "[::1]:3310": an IPv6 address carries colons of its own
    const size_t close = view.find(']');
    if (close == std::string_view::npos || view.substr(close + 1, 1) != ":") {
      return bad("an IPv6 address needs the form [address]:port");
    }
    host = view.substr(1, close - 1);
    port = view.substr(close + 2);
  } else {
    const size_t colon = view.find(':');
    if (colon == std::string_view::npos) return bad("no port");
    if (view.find(':', colon + 1) != std::string_view::npos) {
      return bad("an IPv6 address needs the form [address]:port");
    }
    host = view.substr(0, colon);
    port = view.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  if (!parse_port(port, out.port)) return bad("the port must be a number from 1 to 65535");
  out.host = std::string(host);
  return out;
}

ScanReply parse_scan_reply(std::string_view reply) {
  // z-commands end the reply with a NUL, n-commands with a newline: accept either.
  while (!reply.empty() && (reply.back() == '\0' || reply.back() == '\n')) reply.remove_suffix(1);
  if (reply.starts_with(kStreamPrefix)) reply.remove_prefix(kStreamPrefix.size());
  ScanReply out;
  out.text = std::string(reply);
  if (reply == "OK") {
    out.kind = ScanReply::Kind::kClean;
  } else if (reply.size() > kFoundSuffix.size() && reply.ends_with(kFoundSuffix)) {
    out.kind = ScanReply::Kind::kFound;
    out.signature = std::string(reply.substr(0, reply.size() - kFoundSuffix.size()));
  }
  return out;  // kError: "... ERROR" and anything else we do not understand
}

ClamdScan::ClamdScan(std::string address_text, ClamdTimeouts timeouts, UniqueFd fd)
    : address_text_(std::move(address_text)), timeouts_(timeouts), fd_(std::move(fd)) {}
ClamdScan::ClamdScan(ClamdScan&&) noexcept = default;
ClamdScan& ClamdScan::operator=(ClamdScan&&) noexcept = default;
ClamdScan::~ClamdScan() = default;

Result<ClamdScan> ClamdScan::open(const ClamdAddress& address, const ClamdTimeouts& timeouts) {
  auto fd = connect_to(address, timeouts);
  if (!fd.ok()) return fd.error();
  constexpr std::string_view kCommand("zINSTREAM\0", 10);
  const int err = send_all(fd->get(), kCommand.data(), kCommand.size(), timeouts.io_s);
  if (err == ETIMEDOUT) {
    return busy(address.text, "timed out sending zINSTREAM after " + seconds_text(timeouts.io_s));
  }
  if (err != 0) return busy(address.text, std::string("cannot send: ") + std::strerror(err));
  return ClamdScan(address.text, timeouts, std::move(fd).value());
}

Error ClamdScan::fail(Error error) {
  spent_ = true;
  failure_ = std::move(error);
  fd_.reset();
  return failure_;
}

Status ClamdScan::send(const char* data, size_t size) {
  if (spent_) return failure_;
  while (size > 0) {
    const size_t n = std::min(size, kMaxChunk);
    const uint32_t length = htonl(static_cast<uint32_t>(n));
    // MSG_MORE: the 4-byte header leaves with its chunk, not as a segment of its own.
    int err = send_all(fd_.get(), reinterpret_cast<const char*>(&length), sizeof length,
                       timeouts_.io_s, MSG_MORE);
    if (err == 0) err = send_all(fd_.get(), data, n, timeouts_.io_s);
    if (err == ETIMEDOUT) {
      return fail(busy(address_text_, "took no data for " + seconds_text(timeouts_.io_s) +
                                          " after " + std::to_string(bytes_sent_) + " bytes"));
    }
    if (err == EPIPE || err == ECONNRESET) {
      // clamd closes the connection right after it answered an error (StreamMaxLength:
      // "INSTREAM size limit exceeded. ERROR"): the answer says why, so read it. Over TCP a
      // reset may have discarded it; then the errno is all there is.
      std::string reply;
      (void)read_reply(fd_.get(), deadline_after(std::min(timeouts_.io_s, kAnswerAfterCloseS)),
                       reply);
      if (!reply.empty()) return fail(busy(address_text_, printable(reply)));
      return fail(busy(address_text_, "closed the connection after " + std::to_string(bytes_sent_) +
                                          " bytes: " + std::strerror(err)));
    }
    if (err != 0)
      return fail(busy(address_text_, std::string("cannot send: ") + std::strerror(err)));
    bytes_sent_ += n;
    data += n;
    size -= n;
  }
  return ok_status();
}

Result<ScanReply> ClamdScan::finish() {
  if (spent_) return failure_;
  spent_ = true;
  failure_ = busy(address_text_, "finish() was called twice");
  const char end[4] = {0, 0, 0, 0};
  const int err = send_all(fd_.get(), end, sizeof end, timeouts_.io_s);
  if (err == ETIMEDOUT) {
    return fail(busy(address_text_, "took no data for " + seconds_text(timeouts_.io_s) + " after " +
                                        std::to_string(bytes_sent_) + " bytes"));
  }
  // EPIPE/ECONNRESET: clamd may have answered and closed before our end-of-stream arrived (its
  // StreamMaxLength was passed by the last chunk); that answer is the verdict.
  if (err != 0 && err != EPIPE && err != ECONNRESET) {
    return fail(busy(address_text_, std::string("cannot send: ") + std::strerror(err)));
  }
  std::string reply;
  const int rerr = read_reply(fd_.get(), deadline_after(timeouts_.io_s), reply);
  fd_.reset();
  if (rerr == ETIMEDOUT) {
    return fail(busy(address_text_, "no reply within " + seconds_text(timeouts_.io_s) + " after " +
                                        std::to_string(bytes_sent_) + " bytes"));
  }
  if (rerr != 0) {
    return fail(
        busy(address_text_, std::string("cannot read the reply: ") + std::strerror(rerr) +
                                (reply.empty() ? "" : " (got \"" + printable(reply) + "\")")));
  }
  if (reply.empty()) {
    return fail(busy(address_text_, std::string("closed the connection without a reply") +
                                        (err != 0 ? std::string(": ") + std::strerror(err) : "")));
  }
  return parse_scan_reply(reply);
}

Result<std::string> clamd_ping(const ClamdAddress& address, const ClamdTimeouts& timeouts) {
  constexpr std::string_view kPing("zPING\0", 6);
  auto reply = command(address, timeouts, kPing);
  if (!reply.ok()) return reply.error();
  if (*reply != "PONG") {
    return busy(address.text, "unexpected reply to zPING: \"" + printable(*reply) + "\"");
  }
  return reply;
}

Result<std::string> clamd_version(const ClamdAddress& address, const ClamdTimeouts& timeouts) {
  constexpr std::string_view kVersion("zVERSION\0", 9);
  auto reply = command(address, timeouts, kVersion);
  if (!reply.ok()) return reply.error();
  while (!reply->empty() && reply->back() == '\n') reply->pop_back();
  return printable(*reply);
}

}  // namespace transfer::receiver
