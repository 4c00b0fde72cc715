#include "directory_sync.hpp"

namespace transfer::receiver {

Status DirectorySync::sync_after_change() {
  std::unique_lock lock(mu_);
  const std::shared_ptr<Round> mine = next_;  // starts only after this point: after our change
  for (;;) {
    if (mine->done) return mine->result;
    if (!running_) {
      // Nobody is syncing and our round is not done, so it has not started: lead it.
      running_ = true;
      next_ = std::make_shared<Round>();
      lock.unlock();
      Status result = sync_();
      lock.lock();
      mine->result = result;
      mine->done = true;
      running_ = false;
      finished_.notify_all();
      return result;
    }
    ++waiting_;
    finished_.wait(lock);
    --waiting_;
  }
}

size_t DirectorySync::waiting() {
  std::lock_guard lock(mu_);
  return waiting_;
}

}  // namespace transfer::receiver
