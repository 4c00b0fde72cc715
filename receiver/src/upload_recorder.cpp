#include "upload_recorder.hpp"

namespace transfer::receiver {

UploadRecorder::UploadRecorder(UploadLedger& ledger, ReceiverMetrics& metrics,
                               uint64_t refusal_log_rate, RefusalRetention retention, Logger logger)
    : ledger_(ledger),
      metrics_(metrics),
      throttle_(refusal_log_rate),
      retention_(retention),
      logger_(std::move(logger)) {}

void UploadRecorder::prune() {
  auto gone = ledger_.prune_refusals(retention_.days, retention_.rows);
  if (!gone) {
    logger_->error("ledger: pruning refused uploads failed: {}", gone.error().message);
  } else if (*gone > 0) {
    logger_->debug("ledger: pruned refused uploads rows={}", *gone);
  }
}

double UploadRecorder::now_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count();
}

void UploadRecorder::log_not_logged(const std::vector<std::pair<std::string, uint64_t>>& counts) {
  for (const auto& [reason, count] : counts) {
    logger_->warn(
        "upload refusals not logged reason={} count={} (REFUSAL_LOG_RATE; every refusal is counted "
        "in "
        "transfer_receiver_rejections_total)",
        reason, count);
  }
}

void UploadRecorder::flush_log_counts() { log_not_logged(throttle_.take_ended(now_s())); }

void UploadRecorder::record(const UploadEvent& e) {
  const UploadOutcome& outcome = e.outcome;
  metrics_.record(outcome, e.seconds);
  const double ms = e.seconds * 1000;
  if (outcome.status == 201) {
    logger_->info(
        "upload {} name={} transfer_id={} bytes={} sha256={} status=201 ms={:.1f} peer={} key={} "
        "path={}",
        outcome.duplicate ? "duplicate (answered from the ledger)" : "accepted", log_value(e.name),
        e.transfer_id, outcome.bytes, outcome.sha256, ms, e.peer, outcome.key_index,
        log_value(outcome.output_path));
    if (!outcome.warning.empty()) logger_->error("name={} {}", log_value(e.name), outcome.warning);
    return;
  }
  const char* reason = rejection_reason(outcome);
  const LogThrottle::Decision d = throttle_.admit(reason, now_s());
  log_not_logged(d.suppressed);
  if (d.log) {
    const std::string check =
        outcome.check ? " check=" + outcome.check->check + " check_reason=" + outcome.check->reason
                      : "";
    logger_->warn(
        "upload rejected name={} transfer_id={} status={}{} reason={} detail={} ms={:.1f} peer={}",
        log_client_value(e.name), e.transfer_id, outcome.status, check, reason,
        log_client_value(outcome.message, 256), ms, e.peer);
  }
  if (!e.key_proven) return;
  if (auto st = ledger_.record_rejected(e.name, outcome.status, outcome.message, e.peer); !st) {
    logger_->error("ledger write failed: {}", st.error().message);
  }
  if (++recorded_refusals_ % kPruneEvery == 0) prune();
}

}  // namespace transfer::receiver
