#pragma once
// The sender: finds JSON files in the input directory (inotify for immediate pickup, plus a full
// rescan every SCAN_INTERVAL), waits until each has been quiet for MIN_FILE_AGE, converts it to
// XML (spooled in the state directory), uploads it encrypted with an idempotency key, and
// records every step in sender.db. A file counts as delivered only after a 201 whose SHA-256
// matches what was sent. Transient failures are retried with backoff that survives restarts;
// permanent ones (and files past MAX_ATTEMPTS / MAX_AGE) are quarantined with a .reason file.
// One thread does the work; stop() may be called from another (the signal thread).

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "input_watcher.hpp"
#include "transfer/drain_deadline.hpp"
#include "sender_config.hpp"
#include "transfer/logging.hpp"
#include "transfer/outbox_store.hpp"
#include "uploader.hpp"

namespace transfer::sender {

struct ScanSummary {
  int delivered = 0;          // delivered in this run
  int already_delivered = 0;  // skipped: same name and content delivered before
  int failed = 0;             // transient failures waiting for a retry
  int quarantined = 0;        // given up (permanent error or limits)
};

// What identifies a file version cheaply (without reading it).
struct FileStamp {
  int64_t size = -1;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

// True for names the sender leaves alone: dot-files, *.tmp, *.part, *.partial, *.swp, names
// not ending in .json, and names matching one of `globs` (fnmatch).
bool is_ignored_name(const std::string& name, const std::vector<std::string>& globs);

class SenderService {
 public:
  // Loads the key (kInvalidKey when missing or malformed) and opens the state database (a
  // damaged one is moved aside and reported).
  static Result<std::unique_ptr<SenderService>> create(const SenderConfig& config, Logger logger);
  ~SenderService();

  // Works until stop(); with config.once, until every file present has been tried once.
  ScanSummary run();
  // Asks run() to return: no new file is started; the upload in flight gets DRAIN_TIMEOUT.
  void stop();

 private:
  using Clock = std::chrono::steady_clock;
  struct Candidate {
    FileStamp stamp;
    Clock::time_point observed_at;   // when `stamp` was first seen unchanged
    Clock::time_point not_before;    // backoff after a transient failure
    bool tried_in_once_mode = false;
  };
  enum class Step { kDone, kRetryLater, kChanged, kGone, kStopped };
  struct StepResult {
    Step step = Step::kDone;
    Clock::time_point retry_at{};
  };

  SenderService(const SenderConfig& config, Logger logger, OutboxStore store, FernetKey key);
  void rescan();
  void observe(const std::string& name);
  bool is_quiet(const Candidate& c, Clock::time_point now) const;
  Clock::time_point ready_at(const Candidate& c) const;
  StepResult process_file(const std::string& name, Candidate& candidate);
  StepResult attempt_upload(const std::string& name, const std::string& path, int fd,
                            const FileStamp& stamp, const std::string& sha);
  StepResult quarantine(const std::string& name, const std::string& path, const std::string& sha,
                        const FailureRecord& failure, int64_t attempts);
  void after_delivery(const std::string& name, const std::string& path);

  SenderConfig config_;
  Logger logger_;
  OutboxStore store_;
  std::string spool_dir_;
  InputWatcher watcher_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cancel_{false};  // the in-flight upload must end now
  Uploader uploader_;
  std::map<std::string, Candidate> candidates_;            // sorted: files go in name order
  std::unordered_map<std::string, FileStamp> settled_;     // delivered / quarantined in place
  ScanSummary summary_;
  std::mt19937_64 rng_;
  DrainDeadline drain_;
};

}  // namespace transfer::sender
