#pragma once
// What the receiver keeps of each upload it answered: metrics always; a log line (accepted ones
// always, refusals rate-limited per reason by REFUSAL_LOG_RATE, never more than a short prefix
// of a client's value); and a row in the ledger's upload log for accepted uploads and for the
// refusals of clients that proved they hold a key (a valid signature, or a token that verified).
// Refusals of clients without a key (bad names, headers, sizes, signatures, budgets, tokens)
// cost no disk. Recorded refusals are pruned to REFUSAL_RETENTION_DAYS / _ROWS as they come.
// Thread-safe (called from the front's thread and the upload workers).

#include <atomic>
#include <chrono>
#include <cstdint>

#include "http_server.hpp"
#include "receiver_metrics.hpp"
#include "transfer/log_throttle.hpp"
#include "transfer/logging.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer::receiver {

struct RefusalRetention {
  int64_t days = 30;
  int64_t rows = 100000;
};

class UploadRecorder {
 public:
  UploadRecorder(UploadLedger& ledger, ReceiverMetrics& metrics, uint64_t refusal_log_rate,
                 RefusalRetention retention, Logger logger);

  void record(const UploadEvent& event);
  // Logs the counts of refusals left out of the log whose minute has ended (called with every
  // readiness probe and at shutdown, so a flood that stopped still gets its count line).
  void flush_log_counts();
  // Applies the retention now (at start, and every kPruneEvery recorded refusals).
  void prune();

 private:
  static constexpr uint64_t kPruneEvery = 64;
  UploadLedger& ledger_;
  ReceiverMetrics& metrics_;
  LogThrottle throttle_;
  RefusalRetention retention_;
  Logger logger_;
  void log_not_logged(const std::vector<std::pair<std::string, uint64_t>>& counts);
  double now_s() const;
  std::atomic<uint64_t> recorded_refusals_{0};
  const std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();
};

}  // namespace transfer::receiver
