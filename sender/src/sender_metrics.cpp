#include "sender_metrics.hpp"

#include <chrono>

namespace transfer::sender {

SenderMetrics::SenderMetrics()
    : discovered(registry.counter("transfer_sender_files_discovered_total", "New file versions seen in the input directory").get()),
      conversions(registry.counter("transfer_sender_conversions_total", "JSON to XML conversions (one per file version and distinct XML mapping)").get()),
      quarantined(registry.counter("transfer_sender_files_quarantined_total", "Input files quarantined (every destination settled, at least one gave up)").get()),
      upload_seconds(registry.histogram("transfer_sender_upload_duration_seconds", "Time to upload one file and get the answer", latency_buckets()).get()),
      delivered(registry.counter("transfer_sender_files_delivered_total", "Files delivered (answered 201 with a matching digest), per destination", {"destination"})),
      failures(registry.counter("transfer_sender_upload_failures_total", "Attempts that failed and will be retried, per destination", {"destination"})),
      gave_up(registry.counter("transfer_sender_files_given_up_total", "File versions a destination gave up on", {"destination"})),
      backlog(registry.gauge("transfer_sender_backlog_files", "Files waiting for a destination (new, or waiting for a retry)", {"destination"})),
      in_flight(registry.gauge("transfer_sender_uploads_in_flight", "Uploads running or queued, per destination", {"destination"})),
      last_success(registry.gauge("transfer_sender_last_success_timestamp_seconds", "Unix time of a destination's last delivery (0: none yet)", {"destination"})),
      receiver_up(registry.gauge("transfer_sender_receiver_up", "1 when the last contact with a destination got an HTTP answer, 0 when it did not", {"destination"})),
      bytes_sent(registry.counter("transfer_sender_bytes_sent_total", "Bytes stored by deliveries (the token text, or the XML), per destination", {"destination"})),
      parts(registry.counter("transfer_sender_multipart_parts_total", "Parts of the S3 multipart uploads delivered, per destination", {"destination"})) {
  registry.gauge_callback("transfer_sender_oldest_pending_age_seconds",
                          "How long the oldest file waiting to be sent has waited (0 when none)", [this] {
                            const double since = oldest_pending_since.load();
                            if (since <= 0) return 0.0;
                            const double now = std::chrono::duration<double>(
                                                   std::chrono::system_clock::now().time_since_epoch()).count();
                            return now > since ? now - since : 0.0;
                          });
  registry.gauge("transfer_sender_build_info", "Version of the running sender (always 1)", {"version"})
      .with({TRANSFER_VERSION})
      .set(1);
}

}  // namespace transfer::sender
