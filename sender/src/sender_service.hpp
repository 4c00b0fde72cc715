#pragma once
// The sender: finds JSON files in the input directory (inotify for immediate pickup, plus a full
// rescan every SCAN_INTERVAL), waits until each has been quiet for MIN_FILE_AGE, converts it to
// XML (spooled in the state directory), uploads it encrypted with an idempotency key, and
// records every step in sender.db. A file counts as delivered only after a 201 whose SHA-256
// matches what was sent. Transient failures are retried with backoff that survives restarts;
// permanent ones (and files past MAX_ATTEMPTS / MAX_AGE) are quarantined with a .reason file.
// The run() thread owns the candidates and hands files, in name order, to UPLOAD_CONCURRENCY
// workers; each converts and uploads one file at a time over its own keep-alive connection, so
// the next files are converted while others are on the wire. A worker touches only the (locked)
// state database, its own connection and the metrics; what it decided comes back to run() as
// a StepResult. stop() may be called from another thread (the signal thread).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "discovery.hpp"
#include "input_disposal.hpp"
#include "outbox_store.hpp"
#include "transfer/drain_deadline.hpp"
#include "sender_config.hpp"
#include "sender_metrics.hpp"
#include "status_server.hpp"
#include "transfer/key_ring.hpp"
#include "transfer/logging.hpp"
#include "transfer/readiness.hpp"
#include "uploader.hpp"

namespace transfer::sender {

struct ScanSummary {
  int delivered = 0;          // delivered in this run
  int already_delivered = 0;  // skipped: same name and content delivered before
  int failed = 0;             // transient failures waiting for a retry
  int quarantined = 0;        // given up (permanent error or limits)
};

class SenderService {
 public:
  // Loads the key (kInvalidKey when missing or malformed), opens the state database (a
  // damaged one is moved aside and reported) and, with METRICS_PORT, starts the status server.
  // The key file is read again before each upload when it changed (rotation without restart).
  // Operator commands (sender retry/forget) are noticed within a second through the database.
  static Result<std::unique_ptr<SenderService>> create(const SenderConfig& config, Logger logger);
  ~SenderService();

  // Works until stop(); with config.once, until every file present has been tried once.
  ScanSummary run();
  // Asks run() to return: no new file is started; the upload in flight gets DRAIN_TIMEOUT.
  void stop();

  // GET /readyz: the state database takes a write, the input directory can be listed, and the
  // receiver answered within 2 x SCAN_INTERVAL + CONNECT_TIMEOUT (it is asked GET / when no
  // upload has reached it for SCAN_INTERVAL). Callable from any thread.
  Readiness readiness();

 private:
  using Clock = std::chrono::steady_clock;
  using Candidate = transfer::sender::Candidate;
  enum class Step { kDone, kRetryLater, kChanged, kGone, kStopped };
  enum class Tally { kNone, kDelivered, kAlreadyDelivered, kFailed, kQuarantined };
  struct StepResult {
    StepResult(Step s = Step::kDone, Clock::time_point at = {}, Tally t = Tally::kNone)  // NOLINT
        : step(s), retry_at(at), tally(t) {}
    Step step = Step::kDone;
    Clock::time_point retry_at{};
    Tally tally = Tally::kNone;
    std::optional<FileStamp> settle;      // leave this version alone from now on
    std::optional<Candidate> restarted;   // kChanged: the candidate with its new stamp
  };
  struct Job {
    std::string name;
    Candidate candidate;
  };
  struct Finished {
    std::string name;
    FileStamp dispatched;
    StepResult result;
  };

  SenderService(const SenderConfig& config, Logger logger, OutboxStore store, std::shared_ptr<KeyRing> keys);
  void load_settled();
  void notice_operator_changes();
  void probe_receiver_if_quiet();
  void note_receiver_answer(bool answered, const std::string& error);
  void update_backlog_metrics();
  FernetKey current_key();
  void worker_loop(size_t index);
  void dispatch(const std::string& name, Candidate& candidate);
  void apply(Finished&& finished);
  bool take_finished(std::deque<Finished>& out);
  void stop_workers();
  StepResult process_file(const std::string& name, Candidate candidate, Uploader& uploader);
  StepResult attempt_upload(const std::string& name, const std::string& path, int fd,
                            const FileStamp& stamp, const std::string& sha, const std::string* content,
                            Uploader& uploader);
  StepResult quarantine(const std::string& name, const std::string& path, const std::string& sha,
                        const FailureRecord& failure, int64_t attempts);
  void after_delivery(const std::string& name, const std::string& path);

  SenderConfig config_;
  Logger logger_;
  OutboxStore store_;
  std::shared_ptr<KeyRing> keys_;
  int64_t data_version_ = 0;
  SenderMetrics metrics_;
  std::mutex readiness_mu_;                  // guards the three below
  std::optional<OutboxStore> readiness_store_;  // a second connection, for the status thread
  double last_answer_unix_ = 0;              // the receiver's last HTTP answer (any status)
  std::string last_contact_error_;
  std::string spool_dir_;
  Discovery discovery_;  // the input directory: candidates and settled versions
  InputDisposal disposal_;  // ON_SUCCESS and quarantine moves of input files
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cancel_{false};  // the in-flight upload must end now
  Uploader probe_uploader_;                        // run()'s own: GET / when idle
  std::vector<std::unique_ptr<Uploader>> uploaders_;  // one per worker
  std::vector<std::thread> workers_;
  std::mutex work_mu_;                              // guards the four below
  std::condition_variable work_ready_;
  std::deque<Job> jobs_;
  std::deque<Finished> finished_;
  bool workers_exit_ = false;
  std::set<std::string> in_flight_;                 // run()'s: names handed to a worker
  Clock::time_point next_backlog_update_{};         // update_backlog_metrics()'s throttle
  ScanSummary summary_;
  DrainDeadline drain_;
  std::unique_ptr<StatusServer> status_server_;  // last: stopped before the rest goes
};

}  // namespace transfer::sender
