#pragma once
// The sender's run loop: it ties the parts together and owns the decisions.
//   discovery (discovery.hpp)      the input directory: candidates, quiet period, settled files
//   identify (file_identity.hpp)   a quiet candidate is opened and hashed once (on a worker): its
//                                  version (name, SHA-256), each destination's history in sender.db
//   scheduler (delivery_scheduler) which (file version, destination) pairs are due, with a cap
//                                  on uploads in flight per destination, backoff and limits
//   payload (payload.hpp)          one conversion per file version, shared by the destinations
//   delivery (delivery.hpp)        one payload to one destination, the answer classified
//   after delivery (input_disposal) ON_SUCCESS once every enabled destination has the file;
//                                  quarantine once each has delivered or given up
// Each destination has its own workers (its upload_concurrency), its own keep-alive connections,
// key ring and probe: a destination that is down, black-holed or slow holds only its own workers.
// The identify workers (UPLOAD_CONCURRENCY of them, at least 2) are shared; one is kept for small
// files (identification_slots.hpp), so large ones being hashed never hold up the rest. Workers touch the payload, their
// connection and the metrics; everything they found comes back to run() as a result, and run()
// alone writes the state database and moves input files. stop() may be called from another
// thread (the signal thread).

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "delivery.hpp"
#include "delivery_scheduler.hpp"
#include "destination_client.hpp"
#include "destinations_watch.hpp"
#include "destinations.hpp"
#include "discovery.hpp"
#include "file_identity.hpp"
#include "identification_slots.hpp"
#include "input_disposal.hpp"
#include "outbox_store.hpp"
#include "payload.hpp"
#include "payload_cache.hpp"
#include "sender_config.hpp"
#include "sender_metrics.hpp"
#include "status_server.hpp"
#include "transfer/bounded_queue.hpp"
#include "transfer/drain_deadline.hpp"
#include "transfer/key_ring.hpp"
#include "transfer/logging.hpp"
#include "transfer/readiness.hpp"
#include "uploader.hpp"

namespace transfer::sender {

struct ScanSummary {
  int delivered = 0;          // (file, destination) deliveries in this run
  int already_delivered = 0;  // skipped: delivered there before
  int failed = 0;             // failed attempts (retried later)
  int quarantined = 0;        // (file, destination) pairs given up on
  // Set when run() returned to take new destinations (the destinations file or a credential file
  // changed, or SIGHUP): the caller starts a service with them; nothing was in flight.
  std::optional<std::vector<Destination>> reload;
};

class SenderService {
 public:
  // Loads each destination's key (kInvalidKey when missing or malformed), opens the state
  // database (a damaged one is moved aside and reported) and, with METRICS_PORT, starts the
  // status server. A key file is read again before each upload when it changed (rotation
  // without restart). Operator commands (sender retry/forget) are noticed within a second.
  static Result<std::unique_ptr<SenderService>> create(const SenderConfig& config,
                                                       std::vector<Destination> destinations,
                                                       Logger logger);
  ~SenderService();

  // Works until stop(); with config.once, until every pair present has been tried once.
  ScanSummary run();
  // Asks run() to return: nothing new is started; uploads in flight get DRAIN_TIMEOUT.
  void stop();
  // From any thread (SIGHUP): read DESTINATIONS_FILE again now. A file that parses makes run()
  // return with it once the uploads and identifications in flight have finished (nothing new is
  // started meanwhile); one that does not keeps the destinations in force, logs one line naming
  // the field and fails the readiness check "destinations_file" until a good one comes.
  void request_reload();

  // GET /readyz: the state database takes a write, the input directory can be listed, and each
  // enabled destination answered within 2 x SCAN_INTERVAL + CONNECT_TIMEOUT (check
  // "receiver:<name>"; it is asked GET / when nothing reached it for SCAN_INTERVAL).
  Readiness readiness();

 private:
  using Clock = std::chrono::steady_clock;
  struct Lane;
  struct Job;
  struct Result_;
  struct Tracked {  // a candidate identified and handed to the scheduler
    FileVersion version;
    FileStamp stamp;
  };

  SenderService(const SenderConfig& config, std::vector<Destination> destinations, Logger logger,
                OutboxStore store);
  void load_settled();
  void notice_operator_changes();
  void start_workers();
  void stop_workers();
  void worker_loop(int pool, size_t index);
  void push_job(Job job);
  bool take_results(std::deque<Result_>& out);
  void apply(Result_&& r);
  void apply_identified(Identification&& id);
  void apply_upload(Result_& r);
  void give_up_everywhere(const FileVersion& version, const std::string& error,
                          const std::string& attempted_by = {});
  void record_gave_up(const FileVersion& version, const std::string& destination,
                      const AttemptDecision& decision, const FailureRecord& failure);
  void dispatch_identifications();
  void dispatch_due();
  void forget_tracked(const std::string& name);
  void sync_tracked();
  void settle_if_decided(const std::string& name);
  void quarantine_input(const FileVersion& version, const std::string& path);
  void after_delivery(const std::string& name, const std::string& path);
  std::shared_ptr<FilePayload> payload_for(const Tracked& t, const Lane& lane);
  std::vector<std::string> needing(const FileVersion& version, const std::string& mapping,
                                   bool in_flight_too) const;
  const Lane& lane_named(const std::string& destination) const;
  bool once_finished() const;
  void update_metrics(bool busy);
  void queue_probes();
  Clock::time_point wake_time(Clock::time_point next_scan);

  // Worker side.
  FernetKey current_key(Lane& lane);
  void note_answer(Lane& lane, bool answered, const std::string& error);
  // Once per lane, before its first upload, with the client of the worker about to upload (the
  // prober may be busy with a probe on another worker): what an earlier run left there.
  void recover(Lane& lane, DestinationClient& client);

  void check_destinations();

  SenderConfig config_;
  Logger logger_;
  DestinationsWatch destinations_watch_;
  std::atomic<bool> reload_requested_{false};
  std::optional<std::vector<Destination>> reload_;  // taken once nothing is in flight
  std::string destinations_error_;                  // the last reload refused (guarded by readiness_mu_)
  OutboxStore store_;
  int64_t data_version_ = 0;
  SenderMetrics metrics_;
  std::string spool_dir_;
  Discovery discovery_;
  InputDisposal disposal_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // the enabled destinations
  std::vector<DestinationLimits> limits_;
  DeliveryScheduler scheduler_;
  FileIdentifier identifier_;  // for the identify workers
  PayloadCache payloads_;      // by file version and mapping, for the destinations
  std::map<std::string, Tracked> tracked_;  // by name
  IdentificationSlots identifying_;         // names handed to an identify worker
  std::set<std::pair<FileVersion, std::string>> tried_;  // --once: pairs attempted in this run
  std::map<std::pair<FileVersion, std::string>, FailureRecord> last_failure_;  // gave up: why
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cancel_{false};  // the uploads in flight must end now
  std::vector<std::thread> workers_;
  std::unique_ptr<BoundedQueue<Job>> identify_jobs_;  // for the identify workers (lanes have their own)
  std::mutex results_mu_;            // guards results_: what the workers found, for run()
  std::deque<Result_> results_;
  std::mutex readiness_mu_;                     // guards readiness_store_ and the lanes' contact
  std::optional<OutboxStore> readiness_store_;  // a second connection, for the status thread
  Clock::time_point next_metrics_update_{};
  ScanSummary summary_;
  DrainDeadline drain_;
  std::unique_ptr<StatusServer> status_server_;  // last: stopped before the rest goes
};

}  // namespace transfer::sender
