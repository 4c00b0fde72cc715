#include "socket_watchdog.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace transfer::sender {

namespace {
constexpr auto kCancelPoll = std::chrono::milliseconds(100);
}

SocketWatchdog::SocketWatchdog(const std::atomic<bool>& cancel)
    : cancel_(cancel), thread_([this] { run(); }) {}

SocketWatchdog::~SocketWatchdog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status SocketWatchdog::attach(int fd) {
  const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return errno_error("cannot duplicate", "the socket", errno);
  {
    std::lock_guard lock(mu_);
    fd_ = UniqueFd(dup);
    trip_ = Trip::kNone;
    deadline_ = std::chrono::steady_clock::now() + idle_;
  }
  cv_.notify_all();
  return ok_status();
}

void SocketWatchdog::detach() {
  std::lock_guard lock(mu_);
  fd_.reset();
  active_ = false;
}

void SocketWatchdog::activate(double idle_s) {
  {
    std::lock_guard lock(mu_);
    idle_ = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(std::max(idle_s, 0.001)));
    deadline_ = std::chrono::steady_clock::now() + idle_;
    active_ = true;
  }
  cv_.notify_all();
}

void SocketWatchdog::touch() {
  std::lock_guard lock(mu_);
  deadline_ = std::chrono::steady_clock::now() + idle_;
}

void SocketWatchdog::deactivate() {
  std::lock_guard lock(mu_);
  active_ = false;
}

void SocketWatchdog::abort() {
  std::lock_guard lock(mu_);
  shut_down_locked(Trip::kAborted);
}

SocketWatchdog::Trip SocketWatchdog::trip() const {
  std::lock_guard lock(mu_);
  return trip_;
}

void SocketWatchdog::shut_down_locked(Trip why) {
  if (!fd_) return;
  ::shutdown(fd_.get(), SHUT_RDWR);
  if (trip_ == Trip::kNone) trip_ = why;
  active_ = false;
}

void SocketWatchdog::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!active_ || !fd_) {
      cv_.wait(lock);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (cancel_.load()) {
      shut_down_locked(Trip::kCancelled);
    } else if (now >= deadline_) {
      shut_down_locked(Trip::kIdle);
    } else {
      cv_.wait_until(lock, std::min(deadline_, now + kCancelPoll));
    }
  }
}

}  // namespace transfer::sender
