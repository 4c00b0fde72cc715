#include "discovery.hpp"

#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

namespace transfer::sender {

double wall_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

FileStamp stamp_of(const struct stat& st) {
  return FileStamp{static_cast<int64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                   static_cast<uint64_t>(st.st_ino)};
}

// Size and mtime equal, and the inode too when both are known (the database does not keep it).
bool same_version(const FileStamp& a, const FileStamp& b) {
  return a.size == b.size && a.mtime_ns == b.mtime_ns &&
         (a.inode == 0 || b.inode == 0 || a.inode == b.inode);
}

bool is_ignored_name(const std::string& name, const std::vector<std::string>& globs) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (name.empty() || name.front() == '.') return true;
  for (const auto* suffix : {".tmp", ".part", ".partial", ".swp"}) {
    if (ends_with(suffix)) return true;
  }
  if (name.size() <= 5 || !ends_with(".json")) return true;
  for (const auto& g : globs) {
    if (::fnmatch(g.c_str(), name.c_str(), FNM_PERIOD) == 0) return true;
  }
  return false;
}

DiscoveryClock::duration rescan_interval(DiscoveryClock::duration interval, DiscoveryClock::duration took,
                                         bool inotify_active) {
  if (!inotify_active) return interval;
  return std::max(interval, took * kRescanCostFactor);
}

Discovery::Discovery(const SenderConfig& config, Logger logger)
    : config_(config), logger_(std::move(logger)), watcher_(config.input_dir, config.use_inotify) {}

bool Discovery::is_quiet(const Candidate& c, Clock::time_point now) const {
  if (config_.min_file_age_s <= 0) return true;
  if (std::chrono::duration<double>(now - c.observed_at).count() >= config_.min_file_age_s)
    return true;
  const double age = wall_now() - static_cast<double>(c.stamp.mtime_ns) / 1e9;
  return age >= config_.min_file_age_s;
}

Discovery::Clock::time_point Discovery::ready_at(const Candidate& c) const {
  const auto quiet = c.observed_at + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(config_.min_file_age_s));
  return std::max(c.not_before, is_quiet(c, Clock::now()) ? Clock::now() : quiet);
}

Candidate* Discovery::find(const std::string& name) {
  auto it = candidates_.find(name);
  return it == candidates_.end() ? nullptr : &it->second;
}

void Discovery::erase(const std::string& name) {
  auto it = candidates_.find(name);
  if (it == candidates_.end()) return;
  since_.erase(since_.find(it->second.waiting_since_unix));
  untaken_.erase(name);
  candidates_.erase(it);
  changed_.insert(name);
}

void Discovery::put_back(const std::string& name) {
  auto it = candidates_.find(name);
  if (it == candidates_.end() || (config_.once && it->second.tried_in_once_mode)) return;
  untaken_.insert(name);
}

std::vector<std::string> Discovery::take_changed() {
  std::vector<std::string> out(changed_.begin(), changed_.end());
  changed_.clear();
  return out;
}

void Discovery::clear_backoffs(Clock::time_point now) {
  for (auto& [name, c] : candidates_) c.not_before = now;
}

void Discovery::observe(const std::string& name) {
  struct stat st {};
  const std::string path = config_.input_dir + "/" + name;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    erase(name);
    return;
  }
  const FileStamp stamp = stamp_of(st);
  if (auto s = settled_.find(name); s != settled_.end()) {
    if (same_version(s->second, stamp)) {
      erase(name);
      return;
    }
    settled_.erase(s);
  }
  const auto now = Clock::now();
  auto [it, inserted] =
      candidates_.try_emplace(name, Candidate{stamp, now, now, false, wall_now()});
  if (inserted) {
    since_.insert(it->second.waiting_since_unix);
  } else if (!(it->second.stamp == stamp)) {
    it->second = Candidate{stamp, now, now, false, it->second.waiting_since_unix};
  } else {
    return;  // the same version, as it was (taken or not)
  }
  untaken_.insert(name);
  changed_.insert(name);
}

Discovery::Clock::duration Discovery::rescan() {
  const auto started = Clock::now();
  std::error_code ec;
  std::vector<std::string> present;
  for (const auto& e : std::filesystem::directory_iterator(config_.input_dir, ec)) {
    std::string name = e.path().filename().string();
    if (!is_ignored_name(name, config_.ignore_globs)) present.push_back(std::move(name));
  }
  if (ec) {
    logger_->error("cannot list input directory dir={} error={}", log_value(config_.input_dir),
                   log_value(ec.message()));
    return Clock::now() - started;
  }
  std::sort(present.begin(), present.end());
  std::vector<std::string> gone;  // since the last listing
  for (const auto& [name, c] : candidates_) {
    if (!std::binary_search(present.begin(), present.end(), name)) gone.push_back(name);
  }
  for (const auto& name : gone) erase(name);
  for (auto it = settled_.begin(); it != settled_.end();) {
    it = std::binary_search(present.begin(), present.end(), it->first) ? std::next(it)
                                                                       : settled_.erase(it);
  }
  for (const auto& name : present) observe(name);
  const auto took = Clock::now() - started;
  logger_->debug("rescan listed={} candidates={} settled={} ms={:.1f}", present.size(),
                 candidates_.size(), settled_.size(),
                 std::chrono::duration<double, std::milli>(took).count());
  return took;
}

}  // namespace transfer::sender
