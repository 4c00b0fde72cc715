#include "transfer/http/connection.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace transfer::http {

Connection::Connection(UniqueFd fd, std::string peer_ip, int peer_port, SslPtr ssl)
    : fd_(std::move(fd)),
      peer_ip_(std::move(peer_ip)),
      peer_port_(peer_port),
      ssl_(std::move(ssl)) {
  if (ssl_) SSL_set_fd(ssl_.get(), fd_.get());
}

IoResult Connection::tls_result(int ret, size_t bytes) {
  if (ret > 0) return {IoState::kDone, bytes};
  const int err = SSL_get_error(ssl_.get(), ret);
  ERR_clear_error();  // the error queue is per thread and the connection moves
                      // between threads
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return {IoState::kWantRead, 0};
    case SSL_ERROR_WANT_WRITE:
      return {IoState::kWantWrite, 0};
    case SSL_ERROR_ZERO_RETURN:
      return {IoState::kClosed, 0};
    default:
      return {IoState::kError, 0};
  }
}

IoResult Connection::handshake() {
  if (!ssl_) return {IoState::kDone, 0};
  return tls_result(SSL_accept(ssl_.get()), 0);
}

IoResult Connection::read_some(char* data, size_t size) {
  if (ssl_) {
    size_t n = 0;
    const int ret = SSL_read_ex(ssl_.get(), data, size, &n);
    return tls_result(ret, n);
  }
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), data, size, 0);
    if (n > 0) return {IoState::kDone, static_cast<size_t>(n)};
    if (n == 0) return {IoState::kClosed, 0};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoState::kWantRead, 0};
    return {IoState::kError, 0};
  }
}

IoResult Connection::write_some(const char* data, size_t size) {
  if (ssl_) {
    size_t n = 0;
    const int ret = SSL_write_ex(ssl_.get(), data, size, &n);
    return tls_result(ret, n);
  }
  for (;;) {
    const ssize_t n = ::send(fd_.get(), data, size, MSG_NOSIGNAL);
    if (n >= 0) return {IoState::kDone, static_cast<size_t>(n)};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoState::kWantWrite, 0};
    return {IoState::kError, 0};
  }
}

bool Connection::tls_pending() const { return ssl_ && SSL_pending(ssl_.get()) > 0; }

void Connection::shutdown_write() {
  if (ssl_) {
    SSL_shutdown(ssl_.get());  // one non-blocking attempt at close_notify
    ERR_clear_error();
  }
  ::shutdown(fd_.get(), SHUT_WR);
}

void Connection::close_now() {
  ssl_.reset();
  fd_.reset();
}

size_t Connection::take(char* data, size_t size) {
  const size_t n = std::min(size, unread());
  std::memcpy(data, buffer_.data() + consumed_, n);
  consumed_ += n;
  return n;
}

void Connection::compact() {
  buffer_.erase(0, consumed_);
  consumed_ = 0;
  if (buffer_.empty()) std::string().swap(buffer_);  // an idle connection holds no buffer
}

std::string socket_address_text(const sockaddr_storage& addr, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  return text;
}

// A listening socket on host:port (port 0: any free port).
Result<UniqueFd> listen_tcp(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found) != 0) {
    return make_error(ErrorCode::kIo, "cannot resolve the address to listen on: " + host);
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  int last_errno = EADDRNOTAVAIL;
  for (const addrinfo* ai = found; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_errno = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), SOMAXCONN) == 0)
      return fd;
    last_errno = errno;
  }
  return make_error(ErrorCode::kIo, "cannot listen on " + host + ":" + std::to_string(port) + " (" +
                                        std::strerror(last_errno) + ")");
}

int bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  int port = 0;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    http::socket_address_text(addr, port);
  return port;
}

Result<SslCtxPtr> make_server_tls_context(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file) {
  auto fail = [](const std::string& what) {
    ERR_clear_error();
    return make_error(ErrorCode::kInvalidArgument, what);
  };
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return fail("cannot create a TLS context");
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // An idle connection keeps no TLS read/write buffers.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return fail("cannot use TLS_CERT_FILE " + cert_file + " as a PEM certificate chain");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail("cannot use TLS_KEY_FILE " + key_file + " as a PEM private key");
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return fail("TLS_KEY_FILE " + key_file + " is not the key of TLS_CERT_FILE " + cert_file);
  }
  if (!client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), client_ca_file.c_str(), nullptr) != 1) {
      return fail("cannot load CLIENT_CA_FILE " + client_ca_file);
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

}  // namespace transfer::http
