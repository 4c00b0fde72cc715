#include "retry_policy.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>

namespace transfer::sender {

AttemptVerdict classify_status(int http_status) {
  if (http_status == 201) return AttemptVerdict::kDelivered;
  if (http_status == 408 || http_status == 429) return AttemptVerdict::kTransient;
  if (http_status >= 400 && http_status < 500) return AttemptVerdict::kPermanent;
  return AttemptVerdict::kTransient;
}

double backoff_delay(int64_t failures, const RetrySettings& s, double uniform01,
                     std::optional<double> retry_after_s) {
  const double exponent = static_cast<double>(std::clamp<int64_t>(failures - 1, 0, 62));
  const double ceiling = std::min(s.max_delay_s, s.base_delay_s * std::pow(2.0, exponent));
  double delay = std::clamp(uniform01, 0.0, 1.0) * ceiling;
  if (retry_after_s) delay = std::max(delay, std::min(*retry_after_s, s.max_delay_s));
  return delay;
}

std::optional<double> parse_retry_after(const std::string& value, double now_unix) {
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string::npos) {
    if (value.size() > 9) return 1e9;
    return std::stod(value);
  }
  std::tm tm{};
  const char* end = strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const double at = static_cast<double>(timegm(&tm));
  return std::max(0.0, at - now_unix);
}

bool should_give_up(int64_t attempts, double first_failure_unix, double now_unix,
                    const RetrySettings& s) {
  if (s.max_attempts > 0 && attempts >= s.max_attempts) return true;
  return s.max_age_s > 0 && first_failure_unix > 0 && now_unix - first_failure_unix >= s.max_age_s;
}

}  // namespace transfer::sender
