#include "transfer/log_throttle.hpp"

namespace transfer {

void LogThrottle::end_windows(double now_s, std::vector<std::pair<std::string, uint64_t>>& ended) {
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now_s - it->second.start < window_s_) {
      ++it;
      continue;
    }
    if (it->second.seen > per_minute_) ended.emplace_back(it->first, it->second.seen - per_minute_);
    it = windows_.erase(it);
  }
}

std::vector<std::pair<std::string, uint64_t>> LogThrottle::take_ended(double now_s) {
  std::vector<std::pair<std::string, uint64_t>> ended;
  std::lock_guard lock(mu_);
  end_windows(now_s, ended);
  return ended;
}

LogThrottle::Decision LogThrottle::admit(std::string_view reason, double now_s) {
  Decision d;
  std::lock_guard lock(mu_);
  end_windows(now_s, d.suppressed);
  auto it = windows_.find(reason);
  if (it == windows_.end()) it = windows_.emplace(std::string(reason), Window{now_s, 0}).first;
  d.log = ++it->second.seen <= per_minute_;
  return d;
}

}  // namespace transfer
