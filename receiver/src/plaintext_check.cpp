#include "plaintext_check.hpp"

#include <optional>

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

}  // namespace transfer::receiver
