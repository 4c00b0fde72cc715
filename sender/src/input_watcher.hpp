#pragma once
// Immediate pickup for the input directory: inotify IN_CLOSE_WRITE and IN_MOVED_TO name the
// files to look at now. It is only a hint: bind mounts, network and some overlay file systems
// deliver no events, so the sender also rescans the whole directory every SCAN_INTERVAL, and
// at once after a queue overflow or any watch error (needs_rescan). wake() interrupts a wait
// from another thread (shutdown).

#include <chrono>
#include <string>
#include <vector>

#include "transfer/file_util.hpp"

namespace transfer::sender {

class InputWatcher {
 public:
  // With use_inotify false (or when inotify cannot be set up) only wake() ends a wait early.
  InputWatcher(std::string dir, bool use_inotify);

  struct Events {
    std::vector<std::string> names;  // files closed after writing, or moved in
    bool needs_rescan = false;       // overflow, watch lost, or inotify unavailable at start
    bool woken = false;
  };
  // Waits until an event, wake() or the deadline.
  Events wait_until(std::chrono::steady_clock::time_point deadline);
  void wake();
  bool active() const { return static_cast<bool>(inotify_); }
  const std::string& setup_error() const { return setup_error_; }

 private:
  bool add_watch();
  void read_events(Events& out);

  std::string dir_;
  bool use_inotify_;
  UniqueFd inotify_;
  UniqueFd wake_fd_;  // eventfd
  int watch_ = -1;
  std::string setup_error_;
};

}  // namespace transfer::sender
