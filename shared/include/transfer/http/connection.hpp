#pragma once
// One client connection: its non-blocking socket, its TLS session if any, the
// bytes received and not yet consumed, and who is at the other end. The
// connection front reads request heads into it and writes answers without
// waiting; a worker that streams a request body reads it through a BodyReader
// (body_reader.hpp), which waits with deadlines. A connection is used by one
// thread at a time: the front, or the worker it was handed to.

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "transfer/file_util.hpp"

namespace transfer::http {

struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// What a non-blocking step did.
enum class IoState {
  kDone,       // bytes moved (or the handshake finished)
  kWantRead,   // would block until the socket is readable
  kWantWrite,  // would block until the socket is writable
  kClosed,     // the peer closed the connection (an orderly end)
  kError,      // reset, TLS failure, ...
};

struct IoResult {
  IoState state = IoState::kError;
  size_t bytes = 0;
};

class Connection {
 public:
  Connection(UniqueFd fd, std::string peer_ip, int peer_port, SslPtr ssl);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_.get(); }
  bool tls() const { return ssl_ != nullptr; }
  const std::string& peer_ip() const { return peer_ip_; }
  int peer_port() const { return peer_port_; }
  std::string peer() const { return peer_ip_ + ":" + std::to_string(peer_port_); }

  // Never wait. With TLS, handshake() must have returned kDone before reading
  // or writing.
  IoResult handshake();
  IoResult read_some(char* data, size_t size);
  IoResult write_some(const char* data, size_t size);
  // Decrypted bytes TLS holds that the socket will not signal.
  bool tls_pending() const;
  // Tells the peer no more data follows (TLS close_notify, then a TCP
  // half-close).
  void shutdown_write();
  // Closes the socket (and ends TLS) now; the object stays until its owner
  // frees it.
  void close_now();

  // Bytes received and not yet consumed: buffer()[consumed(), size()).
  std::string& buffer() { return buffer_; }
  size_t unread() const { return buffer_.size() - consumed_; }
  // Takes up to `size` unread bytes.
  size_t take(char* data, size_t size);
  // Drops the consumed bytes (and the memory of a buffer that has become
  // empty).
  void compact();

  uint64_t requests_served = 0;

 private:
  IoResult tls_result(int ret, size_t bytes);

  UniqueFd fd_;
  std::string peer_ip_;
  int peer_port_;
  SslPtr ssl_;
  std::string buffer_;
  size_t consumed_ = 0;
};

// The address in `addr` as text ("127.0.0.1", "::1"), its port in `port` (0 for other families).
std::string socket_address_text(const sockaddr_storage& addr, int& port);

// A listening TCP socket on host:port (port 0: any free port; an empty host: every address),
// with SO_REUSEADDR; kIo naming the address when it cannot listen.
Result<UniqueFd> listen_tcp(const std::string& host, int port);
// The port a socket is bound to (0 when unknown).
int bound_port(int fd);

// A server TLS context as the receiver serves it: the certificate chain and
// key, and when `client_ca_file` is set, client certificates required and
// verified against it.
Result<SslCtxPtr> make_server_tls_context(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file);

}  // namespace transfer::http
