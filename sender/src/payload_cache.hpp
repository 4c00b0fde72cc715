#pragma once
// The payloads the sender keeps between uploads (a part of the sender): one per file version and
// XML mapping, shared by the destinations that take it. A payload stays while an upload uses it
// or a destination is due to take it, within two budgets: bytes in memory (the content and its
// XML) and a count of spooled ones (token files). Over a budget, those no upload is using go, last
// names first (the destinations take names in order, so the first are needed soonest); a dropped
// one is read and converted again when its turn comes. Not thread-safe: the run loop owns it.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "delivery_scheduler.hpp"
#include "payload.hpp"

namespace transfer::sender {

class PayloadCache {
 public:
  using Key = std::pair<FileVersion, std::string>;  // a file version and a mapping
  using Activity = std::function<DeliveryScheduler::Activity(const FileVersion&)>;

  // `in_memory_limit`: inputs up to this size are payloads in memory, larger ones spooled.
  PayloadCache(int64_t in_memory_limit, size_t memory_budget, size_t spooled_budget,
               Activity activity)
      : in_memory_limit_(in_memory_limit),
        memory_budget_(memory_budget),
        spooled_budget_(spooled_budget),
        activity_(std::move(activity)) {}

  std::shared_ptr<FilePayload> find(const Key& key) const;
  // Keeps `payload` (replacing one under `key`), then enforces the budgets.
  void keep(const Key& key, std::shared_ptr<FilePayload> payload);
  void drop(const Key& key);
  // Every mapping's payload of `version`.
  void drop_all(const FileVersion& version);
  // After an attempt: `version`'s payloads go once no upload uses them and none is due.
  void trim(const FileVersion& version);

 private:
  bool spooled(const FilePayload& p) const { return p.source().size > in_memory_limit_; }
  size_t cost(const FilePayload& p) const;
  size_t& total_for(const FilePayload& p) { return spooled(p) ? spooled_ : memory_; }
  bool over_budget() const { return memory_ > memory_budget_ || spooled_ > spooled_budget_; }

  int64_t in_memory_limit_;
  size_t memory_budget_;
  size_t spooled_budget_;
  Activity activity_;
  std::map<Key, std::shared_ptr<FilePayload>> payloads_;
  size_t memory_ = 0;   // cost() of those in memory
  size_t spooled_ = 0;  // count of spooled ones
};

}  // namespace transfer::sender
