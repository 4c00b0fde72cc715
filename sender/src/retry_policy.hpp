#pragma once
// What to do after an upload attempt: pure functions of the answer, the attempt count and the
// clock, so the rules are unit-tested without a network.
//   - 201 is delivery; connection errors, timeouts, 408, 429 and every 5xx (507 included) are
//     transient; any other 4xx is permanent; anything else (1xx, 2xx other than 201, 3xx) is
//     treated as transient: a misconfigured proxy should not lose files, and MAX_ATTEMPTS /
//     MAX_AGE still bound it.
//   - Backoff is exponential with full jitter: uniform(0, min(cap, base * 2^(failures-1))),
//     never shorter than a Retry-After the receiver sent (itself capped at `cap`).

#include <cstdint>
#include <optional>
#include <string>

namespace transfer::sender {

struct RetrySettings {
  double base_delay_s = 1;    // RETRY_BASE_DELAY
  double max_delay_s = 300;   // RETRY_MAX_DELAY: the cap
  int64_t max_attempts = 0;   // MAX_ATTEMPTS: 0 = no limit
  double max_age_s = 86400;   // MAX_AGE: since the first failure; 0 = no limit
};

enum class AttemptVerdict { kDelivered, kTransient, kPermanent };
AttemptVerdict classify_status(int http_status);  // 0 = no answer

// `failures` counts the failed attempts so far, this one included (>= 1); `uniform01` in [0, 1).
double backoff_delay(int64_t failures, const RetrySettings& settings, double uniform01,
                     std::optional<double> retry_after_s);

// Retry-After as delta-seconds or an HTTP-date (RFC 9110), as seconds from `now_unix`.
std::optional<double> parse_retry_after(const std::string& value, double now_unix);

// True once the file has failed `attempts` times since `first_failure_unix` and a limit is hit.
bool should_give_up(int64_t attempts, double first_failure_unix, double now_unix,
                    const RetrySettings& settings);

}  // namespace transfer::sender
