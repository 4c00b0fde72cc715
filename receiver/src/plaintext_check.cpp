#include "plaintext_check.hpp"

#include <atomic>
#include <optional>
#include <thread>

#include "transfer/bounded_queue.hpp"

namespace transfer::receiver {

void CheckPipeline::add(std::unique_ptr<PlaintextCheck> check) {
  checks_.push_back(Slot{std::move(check), true});
}

void CheckPipeline::update(const char* data, size_t size) {
  for (Slot& slot : checks_) {
    if (slot.wants_more) slot.wants_more = slot.check->update(data, size);
  }
}

CheckVerdict CheckPipeline::finish() {
  std::optional<CheckVerdict> refused;
  std::optional<CheckVerdict> unavailable;
  for (Slot& slot : checks_) {
    CheckVerdict v = slot.check->finish();
    if (v.outcome == CheckOutcome::kRefused && !refused) refused = std::move(v);
    if (v.outcome == CheckOutcome::kUnavailable && !unavailable) unavailable = std::move(v);
  }
  if (refused) return *refused;
  if (unavailable) return *unavailable;
  return CheckVerdict{};
}

namespace {

class BesideCheck : public PlaintextCheck {
 public:
  explicit BesideCheck(std::unique_ptr<PlaintextCheck> inner)
      : inner_(std::move(inner)), worker_([this] { work(); }) {}
  ~BesideCheck() override { stop(); }
  BesideCheck(const BesideCheck&) = delete;
  BesideCheck& operator=(const BesideCheck&) = delete;

  bool update(const char* data, size_t size) override {
    if (done_.load(std::memory_order_relaxed)) return false;
    piece_.append(data, size);
    if (piece_.size() >= kPieceBytes) flush();
    return true;
  }

  CheckVerdict finish() override {
    flush();
    stop();
    return inner_->finish();  // the worker has ended: this thread owns the check now
  }

 private:
  static constexpr size_t kPieceBytes = 256 * 1024;
  static constexpr size_t kQueueDepth = 8;

  void flush() {
    if (piece_.empty()) return;
    if (!done_.load(std::memory_order_relaxed)) queue_.push(std::move(piece_));
    piece_ = std::string();
    piece_.reserve(kPieceBytes + 64 * 1024);
  }
  void stop() {
    queue_.close();
    if (worker_.joinable()) worker_.join();
  }
  void work() {
    while (auto piece = queue_.pop()) {
      if (done_.load(std::memory_order_relaxed)) continue;  // drain: the verdict is known
      if (!inner_->update(piece->data(), piece->size()))
        done_.store(true, std::memory_order_relaxed);
    }
  }

  std::unique_ptr<PlaintextCheck> inner_;
  BoundedQueue<std::string> queue_{kQueueDepth};
  std::string piece_;
  std::atomic<bool> done_{false};
  std::thread worker_;  // last: started once the rest exists
};

}  // namespace

std::unique_ptr<PlaintextCheck> check_beside(std::unique_ptr<PlaintextCheck> inner) {
  return std::make_unique<BesideCheck>(std::move(inner));
}

}  // namespace transfer::receiver
