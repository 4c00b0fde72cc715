#include "identification_slots.hpp"

#include <algorithm>

namespace transfer::sender {

IdentificationSlots::IdentificationSlots(int upload_concurrency, int64_t small_file_limit)
    : workers_(static_cast<size_t>(std::max(2, upload_concurrency))),
      small_file_limit_(small_file_limit) {}

bool IdentificationSlots::may_start(int64_t size) const {
  if (full()) return false;
  return !is_large(size) || large_in_hand_ + 1 < workers_;
}

void IdentificationSlots::started(const std::string& name, int64_t size) {
  const bool large = is_large(size);
  if (in_hand_.emplace(name, large).second && large) ++large_in_hand_;
}

void IdentificationSlots::finished(const std::string& name) {
  auto it = in_hand_.find(name);
  if (it == in_hand_.end()) return;
  if (it->second) --large_in_hand_;
  in_hand_.erase(it);
}

}  // namespace transfer::sender
