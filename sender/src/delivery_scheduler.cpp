#include "delivery_scheduler.hpp"

#include <algorithm>

namespace transfer::sender {

void DeliveryScheduler::Waiting::insert(const FileVersion& file, double due, double now) {
  if (due <= now) {
    due_.emplace(file, due);
    due_times_.insert(due);
  } else {
    later_.emplace(due, file);
  }
}

void DeliveryScheduler::Waiting::erase(const FileVersion& file, double due) {
  if (auto it = due_.find(file); it != due_.end()) {
    due_times_.erase(due_times_.find(it->second));
    due_.erase(it);
  } else {
    later_.erase({due, file});
  }
}

size_t DeliveryScheduler::Waiting::due_count(double now) {
  while (!later_.empty() && later_.begin()->first <= now) {
    auto node = later_.extract(later_.begin());
    due_times_.insert(node.value().first);
    due_.emplace(std::move(node.value().second), node.value().first);
  }
  return due_.size();
}

std::optional<FileVersion> DeliveryScheduler::Waiting::take(double now) {
  if (due_count(now) == 0) return std::nullopt;
  auto first = due_.begin();
  due_times_.erase(due_times_.find(first->second));
  FileVersion file = first->first;
  due_.erase(first);
  return file;
}

std::optional<double> DeliveryScheduler::Waiting::earliest_due() const {
  std::optional<double> due;
  if (!due_times_.empty()) due = *due_times_.begin();
  if (!later_.empty() && (!due || later_.begin()->first < *due)) due = later_.begin()->first;
  return due;
}

DeliveryScheduler::DeliveryScheduler(std::vector<DestinationLimits> destinations, Clock now,
                                     Random uniform01)
    : now_(std::move(now)), uniform01_(std::move(uniform01)) {
  for (auto& d : destinations) {
    if (!d.enabled) continue;
    d.max_in_flight = std::max(1, d.max_in_flight);
    const std::string name = d.name;
    lanes_.emplace(name, Lane{std::move(d), 0, {}});
  }
}

void DeliveryScheduler::add(const FileVersion& file,
                            const std::map<std::string, PairHistory>& history) {
  auto& pairs = files_[file];
  const double now = now_();
  for (auto& [name, lane] : lanes_) {
    if (pairs.count(name)) continue;
    Pair p;
    p.due_unix = now;
    if (auto h = history.find(name); h != history.end()) {
      p.state = h->second.state == PairState::kInFlight ? PairState::kWaiting : h->second.state;
      p.attempts = h->second.attempts;
      p.first_failure_unix = h->second.first_failure_unix;
      p.due_unix = std::max(now, h->second.next_attempt_unix);
      p.last_error = h->second.last_error;
    }
    if (p.state == PairState::kWaiting) lane.waiting.insert(file, p.due_unix, now);
    pairs.emplace(name, std::move(p));
  }
}

void DeliveryScheduler::remove(const FileVersion& file) {
  auto it = files_.find(file);
  if (it == files_.end()) return;
  for (const auto& [name, p] : it->second) {
    Lane& lane = lanes_.at(name);
    if (p.state == PairState::kInFlight) --lane.in_flight;
    if (p.state == PairState::kWaiting) lane.waiting.erase(file, p.due_unix);
  }
  files_.erase(it);
}

DeliveryScheduler::Pair* DeliveryScheduler::pair(const FileVersion& file,
                                                 const std::string& destination) {
  auto f = files_.find(file);
  if (f == files_.end()) return nullptr;
  auto p = f->second.find(destination);
  return p == f->second.end() ? nullptr : &p->second;
}

std::optional<FileVersion> DeliveryScheduler::take(const std::string& destination) {
  auto lane = lanes_.find(destination);
  if (lane == lanes_.end() || lane->second.in_flight >= lane->second.limits.max_in_flight)
    return std::nullopt;
  const double now = now_();
  if (now < lane->second.yield_until) return std::nullopt;
  auto file = lane->second.waiting.take(now);
  if (!file) return std::nullopt;
  pair(*file, destination)->state = PairState::kInFlight;
  ++lane->second.in_flight;
  return file;
}

AttemptDecision DeliveryScheduler::finished(const FileVersion& file, const std::string& destination,
                                            AttemptVerdict verdict, const std::string& error,
                                            std::optional<double> retry_after_s,
                                            bool unreachable) {
  AttemptDecision d;
  Pair* p = pair(file, destination);
  auto lane = lanes_.find(destination);
  if (p == nullptr || lane == lanes_.end()) {  // removed meanwhile: nothing to decide
    d.state = PairState::kWaiting;
    return d;
  }
  if (p->state == PairState::kInFlight) --lane->second.in_flight;
  if (p->state == PairState::kWaiting) lane->second.waiting.erase(file, p->due_unix);
  const RetrySettings& retry = lane->second.limits.retry;
  const double now = now_();
  switch (verdict) {
    case AttemptVerdict::kDelivered:
      p->state = PairState::kDelivered;
      p->last_error.clear();
      lane->second.yield_until = 0;  // it answers again
      break;
    case AttemptVerdict::kPermanent:
      ++p->attempts;
      if (p->first_failure_unix == 0) p->first_failure_unix = now;
      p->state = PairState::kGaveUp;
      p->last_error = error;
      d.reason = error;
      break;
    case AttemptVerdict::kTransient: {
      ++p->attempts;
      if (p->first_failure_unix == 0) p->first_failure_unix = now;
      p->last_error = error;
      if (should_give_up(p->attempts, p->first_failure_unix, now, retry)) {
        p->state = PairState::kGaveUp;
        d.reason = "gave up after " + std::to_string(p->attempts) + " attempts over " +
                   std::to_string(static_cast<int64_t>(now - p->first_failure_unix)) +
                   "s; last error: " + error;
        p->last_error = d.reason;
      } else {
        p->state = PairState::kWaiting;
        p->due_unix = now + backoff_delay(p->attempts, retry, uniform01_(), retry_after_s);
        if (unreachable) lane->second.yield_until = std::max(lane->second.yield_until, p->due_unix);
      }
      break;
    }
  }
  if (p->state == PairState::kWaiting) lane->second.waiting.insert(file, p->due_unix, now);
  d.state = p->state;
  d.attempts = p->attempts;
  d.next_attempt_unix = p->state == PairState::kWaiting ? p->due_unix : 0;
  d.first_failure_unix = p->first_failure_unix;
  return d;
}

void DeliveryScheduler::resume(const std::string& destination) {
  if (auto lane = lanes_.find(destination); lane != lanes_.end()) lane->second.yield_until = 0;
}

void DeliveryScheduler::released(const FileVersion& file, const std::string& destination) {
  Pair* p = pair(file, destination);
  if (p == nullptr || p->state != PairState::kInFlight) return;
  Lane& lane = lanes_.at(destination);
  --lane.in_flight;
  p->state = PairState::kWaiting;
  p->due_unix = now_();
  lane.waiting.insert(file, p->due_unix, p->due_unix);
}

FileOutcome DeliveryScheduler::outcome(const FileVersion& file) const {
  auto f = files_.find(file);
  if (f == files_.end()) return FileOutcome::kPending;
  bool gave_up = false;
  for (const auto& [name, p] : f->second) {
    if (p.state == PairState::kWaiting || p.state == PairState::kInFlight)
      return FileOutcome::kPending;
    gave_up = gave_up || p.state == PairState::kGaveUp;
  }
  return gave_up ? FileOutcome::kGaveUpSomewhere : FileOutcome::kDeliveredEverywhere;
}

std::vector<DestinationOutcome> DeliveryScheduler::outcomes(const FileVersion& file) const {
  std::vector<DestinationOutcome> out;
  auto f = files_.find(file);
  if (f == files_.end()) return out;
  for (const auto& [name, p] : f->second)
    out.push_back(DestinationOutcome{name, p.state, p.attempts, p.last_error, p.due_unix});
  return out;
}

std::optional<double> DeliveryScheduler::next_due() const {
  std::optional<double> due;
  for (const auto& [file, pairs] : files_) {
    for (const auto& [name, p] : pairs) {
      if (p.state == PairState::kWaiting && (!due || p.due_unix < *due)) due = p.due_unix;
    }
  }
  return due;
}

std::optional<double> DeliveryScheduler::next_due(const std::string& destination) const {
  auto lane = lanes_.find(destination);
  if (lane == lanes_.end() || lane->second.in_flight >= lane->second.limits.max_in_flight)
    return std::nullopt;
  auto due = lane->second.waiting.earliest_due();
  if (due && *due < lane->second.yield_until) due = lane->second.yield_until;
  return due;
}

DeliveryScheduler::Activity DeliveryScheduler::activity(const FileVersion& file) const {
  Activity a;
  auto f = files_.find(file);
  if (f == files_.end()) return a;
  const double now = now_();
  for (const auto& [name, p] : f->second) {
    a.in_flight = a.in_flight || p.state == PairState::kInFlight;
    a.due_now = a.due_now || (p.state == PairState::kWaiting && p.due_unix <= now);
  }
  return a;
}

int DeliveryScheduler::in_flight(const std::string& destination) const {
  auto lane = lanes_.find(destination);
  return lane == lanes_.end() ? 0 : lane->second.in_flight;
}

int64_t DeliveryScheduler::backlog(const std::string& destination) const {
  auto lane = lanes_.find(destination);
  if (lane == lanes_.end()) return 0;
  return static_cast<int64_t>(lane->second.waiting.size()) + lane->second.in_flight;
}

bool DeliveryScheduler::wants_more(size_t ready) {
  const double now = now_();
  bool all_yield = true;
  for (auto& [name, lane] : lanes_) {
    if (now < lane.yield_until) continue;
    all_yield = false;
    if (lane.waiting.due_count(now) < ready) return true;
  }
  return all_yield;
}

}  // namespace transfer::sender
