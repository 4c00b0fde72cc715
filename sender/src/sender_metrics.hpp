#pragma once
// The sender's Prometheus metrics (METRICS_PORT), all named transfer_sender_*; those marked
// {destination} have one series per enabled destination (fan-out):
//   files_discovered_total     new file versions seen in the input directory
//   conversions_total          JSON -> XML conversions (one per file version and distinct XML
//                              mapping among the destinations, however many destinations)
//   files_delivered_total{destination}   deliveries (a 201 whose digest matched)
//   upload_failures_total{destination}   attempts that failed and will be retried
//   files_given_up_total{destination}    file versions a destination gave up on
//   files_quarantined_total    input files quarantined (every destination settled, one gave up)
//   backlog_files{destination} files waiting for that destination (new, or waiting for a retry)
//   uploads_in_flight{destination}       uploads running or queued for it
//   oldest_pending_age_seconds how long the oldest file waiting has waited (0 when none)
//   last_success_timestamp_seconds{destination}  Unix time of its last delivery (0: none yet)
//   receiver_up{destination}   1 when the last contact got an HTTP answer, 0 when it did not
//   upload_duration_seconds    histogram of one upload (conversion excluded)
//   bytes_sent_total{destination}        bytes stored by deliveries (token text or XML)
//   multipart_parts_total{destination}   parts of S3 multipart uploads that were delivered
//   build_info{version}        always 1
// Updated by the service's threads, read by the status server's thread.

#include <atomic>

#include "transfer/metrics.hpp"

namespace transfer::sender {

struct SenderMetrics {
  SenderMetrics();
  MetricsRegistry registry;
  Counter& discovered;
  Counter& conversions;
  Counter& quarantined;
  Histogram& upload_seconds;
  Family<Counter>& delivered;
  Family<Counter>& failures;
  Family<Counter>& gave_up;
  Family<Gauge>& backlog;
  Family<Gauge>& in_flight;
  Family<Gauge>& last_success;
  Family<Gauge>& receiver_up;
  Family<Counter>& bytes_sent;
  Family<Counter>& parts;
  std::atomic<double> oldest_pending_since{0};  // Unix time, 0 when nothing waits
};

}  // namespace transfer::sender
