#include "transfer/log_throttle.hpp"

namespace transfer {

LogThrottle::Decision LogThrottle::admit(std::string_view reason, double now_s) {
  Decision d;
  std::lock_guard lock(mu_);
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now_s - it->second.start < window_s_) {
      ++it;
      continue;
    }
    if (it->second.seen > per_minute_)
      d.suppressed.emplace_back(it->first, it->second.seen - per_minute_);
    it = windows_.erase(it);
  }
  auto it = windows_.find(reason);
  if (it == windows_.end()) it = windows_.emplace(std::string(reason), Window{now_s, 0}).first;
  d.log = ++it->second.seen <= per_minute_;
  return d;
}

}  // namespace transfer
