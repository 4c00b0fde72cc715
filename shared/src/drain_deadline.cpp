#include "transfer/drain_deadline.hpp"

#include <chrono>

namespace transfer {

DrainDeadline::~DrainDeadline() {
  finished();
  if (thread_.joinable()) thread_.join();
}

void DrainDeadline::start(double timeout_s, std::function<void()> on_timeout) {
  std::lock_guard lock(mu_);
  if (done_ || thread_.joinable()) return;
  thread_ = std::thread([this, timeout_s, on_timeout = std::move(on_timeout)] {
    std::unique_lock wait_lock(mu_);
    if (done_cv_.wait_for(wait_lock, std::chrono::duration<double>(timeout_s), [this] { return done_; })) return;
    wait_lock.unlock();
    on_timeout();
  });
}

void DrainDeadline::finished() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  done_cv_.notify_all();
}

}  // namespace transfer
