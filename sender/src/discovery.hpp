#pragma once
// The sender's discovery (issue 14's "discovery" part): the input directory, watched with inotify
// and listed again at each rescan; the ignore rules; the quiet period (MIN_FILE_AGE); the file
// versions it finds (candidates, in name order) and those it leaves alone (settled: delivered and
// kept, or quarantined in place, until their content changes). Not thread-safe: the sender's
// run() thread owns it (wake() may be called from any thread).

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
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

// The time to the next listing of the input directory after one that took `took`: SCAN_INTERVAL,
// and with inotify working at least kRescanCostFactor times `took`. With 100,000 files a listing
// (a stat per file) takes ~0.4 s, and one every 5 s was 16 % of the sender's CPU while it delivered
// them (issue 22: a cost that grew with the backlog). inotify finds new files at once; the listing
// is the net for lost events, and an overflow or a lost watch still asks for one at once. Without
// inotify the listing is the only way files are found: SCAN_INTERVAL exactly.
inline constexpr int kRescanCostFactor = 50;  // listings at most 2 % of the time
DiscoveryClock::duration rescan_interval(DiscoveryClock::duration interval, DiscoveryClock::duration took,
                                         bool inotify_active);

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

  // Lists the input directory: drops what is gone, observes everything present. Returns how long
  // it took (rescan_interval's `took`).
  Clock::duration rescan();
  // Looks at one name (an inotify event or a listing): a new or changed version becomes a
  // candidate, a settled one with the same version stays settled.
  void observe(const std::string& name);
  // Quiet for MIN_FILE_AGE since it was first seen unchanged (or by its mtime).
  bool is_quiet(const Candidate& c, Clock::time_point now) const;
  Clock::time_point ready_at(const Candidate& c) const;

  const std::map<std::string, Candidate>& candidates() const { return candidates_; }  // name order
  Candidate* find(const std::string& name);
  void erase(const std::string& name);
  // Every candidate may be taken again at once (an operator's "retry now").
  void clear_backoffs(Clock::time_point now);

  // What the run loop needs without walking every candidate (issue 22: that walk, after each
  // event, made the sender's CPU per file grow with its backlog):
  //   - untaken(): the candidates the service has not taken, in name order. A new or changed
  //     version is untaken; take() when its identification starts; put_back() when the service
  //     lets go of it while it is still a candidate (identification retried later, or the tracked
  //     version forgotten). With --once, a candidate tried once is not put back.
  //   - take_changed(): the names whose candidate was added, changed or dropped since the last
  //     call (what a tracked version must be checked against).
  //   - oldest_waiting_since(): the earliest waiting_since_unix among the candidates (0: none).
  const std::set<std::string>& untaken() const { return untaken_; }
  void take(const std::string& name) { untaken_.erase(name); }
  void put_back(const std::string& name);
  std::vector<std::string> take_changed();
  double oldest_waiting_since() const { return since_.empty() ? 0 : *since_.begin(); }

  std::unordered_map<std::string, FileStamp>& settled() { return settled_; }
  InputWatcher& watcher() { return watcher_; }

 private:
  const SenderConfig& config_;  // the service's, which outlives this
  Logger logger_;
  InputWatcher watcher_;
  std::map<std::string, Candidate> candidates_;
  std::set<std::string> untaken_;
  std::unordered_set<std::string> changed_;
  std::multiset<double> since_;  // the candidates' waiting_since_unix
  std::unordered_map<std::string, FileStamp> settled_;
};

}  // namespace transfer::sender
