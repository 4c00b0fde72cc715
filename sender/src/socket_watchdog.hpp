#pragma once
// Ends a blocking exchange on a socket from outside: for client libraries that block in poll()
// with no way to be interrupted or bounded (libssh 0.10's SFTP calls wait for a reply forever,
// re-polling after each SSH_OPTIONS_TIMEOUT). The watchdog shuts the socket down (shutdown(2),
// both directions), which wakes the library with an error, when
//   - it is active and touch() has not been called for `idle_s` (the peer stalled), or
//   - it is active and `cancel` becomes true (checked every 100 ms), or
//   - abort() is called (from any thread, active or not).
// It keeps a duplicate of the socket's descriptor: the socket cannot be closed and its number
// reused under it, whenever its owner closes the original. One thread of its own, which waits
// without waking while the watchdog is inactive. Thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "transfer/file_util.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

class SocketWatchdog {
 public:
  enum class Trip { kNone, kIdle, kCancelled, kAborted };

  explicit SocketWatchdog(const std::atomic<bool>& cancel);
  SocketWatchdog(const SocketWatchdog&) = delete;
  SocketWatchdog& operator=(const SocketWatchdog&) = delete;
  ~SocketWatchdog();

  // Watches the socket `fd` (duplicated) from now on, restarting the idle clock if active;
  // clears any earlier trip. kIo if the descriptor cannot be duplicated.
  Status attach(int fd);
  // Stops watching and closes the duplicate.
  void detach();

  // Starts (or restarts) the idle clock; until deactivate(), no touch() for `idle_s` trips it.
  void activate(double idle_s);
  void touch();  // progress: the idle clock starts again
  void deactivate();

  // Shuts the socket down now (a no-op without one), from any thread.
  void abort();
  // What shut the socket down, if anything, since attach().
  Trip trip() const;

 private:
  void run();
  void shut_down_locked(Trip why);

  const std::atomic<bool>& cancel_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  UniqueFd fd_;
  bool active_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::duration idle_{};
  std::chrono::steady_clock::time_point deadline_{};
  Trip trip_ = Trip::kNone;
  std::thread thread_;
};

}  // namespace transfer::sender
