#include "payload_cache.hpp"

#include <vector>

namespace transfer::sender {

std::shared_ptr<FilePayload> PayloadCache::find(const Key& key) const {
  auto it = payloads_.find(key);
  return it == payloads_.end() ? nullptr : it->second;
}

// Bytes in memory (the content and its XML, about 2.6 times the JSON), or one spool set.
size_t PayloadCache::cost(const FilePayload& p) const {
  return spooled(p) ? 1 : static_cast<size_t>(p.source().size) * 4 + 1024;
}

void PayloadCache::keep(const Key& key, std::shared_ptr<FilePayload> payload) {
  drop(key);
  total_for(*payload) += cost(*payload);
  payloads_[key] = std::move(payload);
  if (!over_budget()) return;
  for (auto it = payloads_.end(); it != payloads_.begin();) {
    --it;
    if (!over_budget()) break;
    if (activity_(it->first.first).in_flight) continue;
    const Key k = it->first;
    it = std::next(it);  // drop() erases k; continue below it
    drop(k);
  }
}

void PayloadCache::drop(const Key& key) {
  auto it = payloads_.find(key);
  if (it == payloads_.end()) return;
  total_for(*it->second) -= cost(*it->second);
  payloads_.erase(it);
}

void PayloadCache::drop_all(const FileVersion& version) {
  std::vector<Key> keys;
  for (auto it = payloads_.lower_bound(Key{version, std::string()});
       it != payloads_.end() && it->first.first == version; ++it) {
    keys.push_back(it->first);
  }
  for (const auto& k : keys) drop(k);
}

void PayloadCache::trim(const FileVersion& version) {
  const auto a = activity_(version);
  if (!a.in_flight && !a.due_now) drop_all(version);
}

}  // namespace transfer::sender
