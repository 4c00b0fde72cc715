#include "virus_scan_check.hpp"

namespace transfer::receiver {
namespace {
constexpr size_t kPieceBytes = 256 * 1024;
}

VirusScanCheck::VirusScanCheck(ClamdAddress address, ClamdTimeouts timeouts, ScanObserver observer)
    : address_(std::move(address)), timeouts_(timeouts), observer_(std::move(observer)) {}

void VirusScanCheck::unavailable(const std::string& reason, const std::string& why) {
  CheckVerdict v;
  v.outcome = CheckOutcome::kUnavailable;
  v.check = "virus_scan";
  v.reason = reason;
  v.message =
      "the virus scan could not be done (" + why + "); nothing unscanned is written, retry later";
  failed_ = std::move(v);
  scan_.reset();
}

bool VirusScanCheck::open() {
  started_ = std::chrono::steady_clock::now();
  auto scan = ClamdScan::open(address_, timeouts_);
  if (!scan) {
    unavailable("unreachable", "clamd at " + address_.text + ": " + scan.error().message);
    return false;
  }
  scan_.emplace(std::move(*scan));
  return true;
}

bool VirusScanCheck::flush() {
  if (pending_.empty()) return true;
  auto st = scan_->send(pending_.data(), pending_.size());
  pending_.clear();
  if (!st) {
    unavailable("error", "clamd at " + address_.text + ": " + st.error().message);
    return false;
  }
  return true;
}

bool VirusScanCheck::update(const char* data, size_t size) {
  if (failed_) return false;
  if (!scan_ && !open()) return false;
  pending_.append(data, size);
  if (pending_.size() >= kPieceBytes) return flush();
  return true;
}

CheckVerdict VirusScanCheck::finish() {
  if (!failed_ && (scan_ || open()) && flush()) {
    auto reply = scan_->finish();
    scan_.reset();
    if (!reply) {
      unavailable("error", "clamd at " + address_.text + ": " + reply.error().message);
    } else if (reply->kind == ScanReply::Kind::kError) {
      unavailable("error", "clamd at " + address_.text + " answered '" + reply->text + "'");
    } else if (reply->kind == ScanReply::Kind::kFound) {
      CheckVerdict v;
      v.outcome = CheckOutcome::kRefused;
      v.check = "virus_scan";
      v.reason = "found";
      v.signature = reply->signature;
      v.message = "refused by virus scan: " + reply->signature;
      failed_ = std::move(v);
    }
  }
  const CheckVerdict verdict = failed_.value_or(CheckVerdict{});
  if (observer_) {
    observer_(verdict,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  }
  return verdict;
}

}  // namespace transfer::receiver
