#include "input_watcher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace transfer::sender {

InputWatcher::InputWatcher(std::string dir, bool use_inotify)
    : dir_(std::move(dir)), use_inotify_(use_inotify), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!use_inotify_) return;
  inotify_ = UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) {
    setup_error_ = std::string("inotify_init1: ") + std::strerror(errno);
    return;
  }
  add_watch();
}

bool InputWatcher::add_watch() {
  watch_ = ::inotify_add_watch(inotify_.get(), dir_.c_str(),
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
  if (watch_ < 0) {
    setup_error_ = "inotify_add_watch " + dir_ + ": " + std::strerror(errno);
    return false;
  }
  setup_error_.clear();
  return true;
}

void InputWatcher::wake() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

void InputWatcher::read_events(Events& out) {
  alignas(inotify_event) char buf[16384];
  for (;;) {
    const ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) out.needs_rescan = true;
      return;
    }
    if (n == 0) return;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) out.needs_rescan = true;
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
        out.needs_rescan = true;
        watch_ = -1;
      }
      if ((ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) && ev->len > 0) {
        out.names.emplace_back(ev->name);
      }
    }
  }
}

InputWatcher::Events InputWatcher::wait_until(std::chrono::steady_clock::time_point deadline) {
  Events out;
  if (inotify_ && watch_ < 0 && !add_watch()) out.needs_rescan = true;  // lost: the rescan covers it
  pollfd fds[2] = {{wake_fd_.get(), POLLIN, 0}, {inotify_ ? inotify_.get() : -1, POLLIN, 0}};
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  const int timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 60'000));
  if (::poll(fds, 2, timeout_ms) > 0) {
    if (fds[0].revents & POLLIN) {
      uint64_t v = 0;
      (void)!::read(wake_fd_.get(), &v, sizeof v);
      out.woken = true;
    }
    if (fds[1].revents & POLLIN) read_events(out);
    if (fds[1].revents & (POLLERR | POLLHUP)) out.needs_rescan = true;
  }
  std::sort(out.names.begin(), out.names.end());
  out.names.erase(std::unique(out.names.begin(), out.names.end()), out.names.end());
  return out;
}

}  // namespace transfer::sender
