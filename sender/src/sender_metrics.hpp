#pragma once
// The sender's Prometheus metrics (METRICS_PORT), all named transfer_sender_*:
//   files_discovered_total     new file versions seen in the input directory
//   files_delivered_total      files delivered (a 201 whose digest matched)
//   upload_failures_total      attempts that failed and will be retried
//   files_quarantined_total    files given up on
//   backlog_files              files waiting to be sent (new, or failed and waiting for a retry)
//   oldest_pending_age_seconds how long the oldest of those has waited (0 when none)
//   last_success_timestamp_seconds  Unix time of the last delivery (0: none yet)
//   receiver_up                1 when the last contact with the receiver got an HTTP answer, 0 when it did not
//   upload_duration_seconds    histogram of one upload (conversion excluded)
//   build_info{version}        always 1
// Updated by the service thread, read by the status server's thread.

#include <atomic>

#include "transfer/metrics.hpp"

namespace transfer::sender {

struct SenderMetrics {
  SenderMetrics();
  MetricsRegistry registry;
  Counter& discovered;
  Counter& delivered;
  Counter& failures;
  Counter& quarantined;
  Gauge& backlog;
  Gauge& last_success;
  Gauge& receiver_up;
  Histogram& upload_seconds;
  std::atomic<double> oldest_pending_since{0};  // Unix time, 0 when nothing waits
};

}  // namespace transfer::sender
