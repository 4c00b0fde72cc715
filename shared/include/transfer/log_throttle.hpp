#pragma once
// Rate limits for log lines about clients' requests (refusals): per reason, the first
// `per_minute` events of each minute are logged, the others only counted; when a reason's minute
// has ended with events left out, the next admit() (of any reason) or take_ended() reports that
// count once, so a line "N more <reason> refusals not logged" can follow. A flood of refusals makes
// at most per_minute lines per reason per minute plus one count. The clock is passed in (seconds,
// any monotonic origin). Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace transfer {

class LogThrottle {
 public:
  explicit LogThrottle(uint64_t per_minute, double window_s = 60)
      : per_minute_(per_minute), window_s_(window_s) {}

  struct Decision {
    bool log = false;  // log this event
    // Reasons whose window ended with events not logged: (reason, how many), reported once.
    std::vector<std::pair<std::string, uint64_t>> suppressed;
  };
  Decision admit(std::string_view reason, double now_s);
  // The reasons whose window has ended with events left out, as admit() would report them, for a
  // caller that reports them without a new event (a flood that stopped).
  std::vector<std::pair<std::string, uint64_t>> take_ended(double now_s);

 private:
  void end_windows(double now_s, std::vector<std::pair<std::string, uint64_t>>& ended);  // mu_ held
  struct Window {
    double start = 0;
    uint64_t seen = 0;
  };
  const uint64_t per_minute_;
  const double window_s_;
  std::mutex mu_;
  std::map<std::string, Window, std::less<>> windows_;
};

}  // namespace transfer
