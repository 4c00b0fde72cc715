#pragma once
// The sender's discovery (issue 14's "discovery" part): the input directory, watched with inotify
// and listed again at each rescan; the ignore rules; the quiet period (MIN_FILE_AGE); the file
// versions it finds (candidates, in name order) and those it leaves alone (settled: delivered and
// kept, or quarantined in place, until their content changes). Not thread-safe: the sender's
// run() thread owns it (wake() may be called from any thread).

#include <chrono>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "input_watcher.hpp"
#include "sender_config.hpp"
#include "transfer/logging.hpp"

struct stat;

namespace transfer::sender {

// What identifies a file version cheaply (without reading it).
struct FileStamp {
  int64_t size = -1;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const struct stat& st);
// Size and mtime equal, and the inode too when both are known (the database does not keep it).
bool same_version(const FileStamp& a, const FileStamp& b);

// True for names the sender leaves alone: dot-files, *.tmp, *.part, *.partial, *.swp, names
// not ending in .json, and names matching one of `globs` (fnmatch).
bool is_ignored_name(const std::string& name, const std::vector<std::string>& globs);

// Seconds since the epoch (CLOCK_REALTIME), as the state database keeps times.
double wall_now();

using DiscoveryClock = std::chrono::steady_clock;

// A file version waiting to be taken.
struct Candidate {
  FileStamp stamp;
  DiscoveryClock::time_point observed_at;  // when `stamp` was first seen unchanged
  DiscoveryClock::time_point not_before;   // backoff after a transient failure
  bool tried_in_once_mode = false;
  double waiting_since_unix = 0;  // first seen (for the oldest-pending metric)
};

class Discovery {
 public:
  using Clock = DiscoveryClock;
  Discovery(const SenderConfig& config, Logger logger);

  // Lists the input directory: drops what is gone, observes everything present.
  void rescan();
  // Looks at one name (an inotify event or a listing): a new or changed version becomes a
  // candidate, a settled one with the same version stays settled.
  void observe(const std::string& name);
  // Quiet for MIN_FILE_AGE since it was first seen unchanged (or by its mtime).
  bool is_quiet(const Candidate& c, Clock::time_point now) const;
  Clock::time_point ready_at(const Candidate& c) const;

  std::map<std::string, Candidate>& candidates() { return candidates_; }  // sorted: name order
  const std::map<std::string, Candidate>& candidates() const { return candidates_; }
  std::unordered_map<std::string, FileStamp>& settled() { return settled_; }
  InputWatcher& watcher() { return watcher_; }

 private:
  const SenderConfig& config_;  // the service's, which outlives this
  Logger logger_;
  InputWatcher watcher_;
  std::map<std::string, Candidate> candidates_;
  std::unordered_map<std::string, FileStamp> settled_;
};

}  // namespace transfer::sender
