#pragma once
// Reading a request body of known length on a worker's thread: first the bytes the connection
// front already received after the head, then the socket, waiting (poll) at most
// `stall_timeout_s` between two pieces and, with a minimum rate, no longer in all than
// grace_s + received / min_rate (Apache mod_reqtimeout's MinRate): a client trickling a body
// cannot hold the worker for long. Reads in pieces of up to 64 KiB. Thread-compatible: one
// worker, one connection.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

#include "transfer/http/connection.hpp"

namespace transfer::http {

struct BodyTimeouts {
  double stall_timeout_s = 30;  // longest wait for the next piece (READ_TIMEOUT)
  double min_rate = 0;          // bytes per second on average after the grace (0: no minimum)
  double grace_s = 30;          // before the minimum rate counts
};

class BodyReader {
 public:
  BodyReader(Connection& connection, uint64_t length, BodyTimeouts timeouts);

  enum class Outcome {
    kComplete,  // `length` bytes were handed to the sink
    kStopped,   // the sink returned false
    kTimedOut,  // a stall, or slower than the minimum rate
    kEnded,     // the client closed or the connection failed before the end
  };
  // Hands every piece to `sink` until the body is complete or `sink` returns false.
  Outcome read(const std::function<bool(const char* data, size_t size)>& sink);
  uint64_t received() const { return received_; }

 private:
  Connection& c_;
  uint64_t length_;
  BodyTimeouts timeouts_;
  uint64_t received_ = 0;
  std::chrono::steady_clock::time_point start_;
};

// Waits until the connection's socket is ready for `state` (kWantRead or kWantWrite); false on
// timeout or error.
bool wait_ready(const Connection& connection, IoState state, int timeout_ms);

// Writes all of `bytes` from a worker's thread, waiting at most `timeout_ms` in all (for small
// interim answers such as "100 Continue"); false when it could not.
bool write_all_within(Connection& connection, std::string_view bytes, int timeout_ms);

}  // namespace transfer::http
