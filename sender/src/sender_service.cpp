#include "sender_service.hpp"

#include "transfer/process.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "transfer/bounded_queue.hpp"
#include "transfer/file_util.hpp"
#include "transfer/sha256.hpp"
#include "transfer/upload_name.hpp"

namespace transfer::sender {
namespace {

// Inputs up to this size are read once into memory and converted there (the XML, about 2.6 times
// the JSON, is encrypted for each destination as it is sent); larger ones stream through one
// token spool per destination, so memory stays bounded whatever the size. At 1.5 MiB the uploads
// in flight (two per destination's worker) hold at most a few tens of MiB of XML, and a file
// sent to several destinations skips writing and reading back a spool per destination.
constexpr int64_t kInMemoryInputLimit = 1536 * 1024;
// Inputs from this size are encrypted on threads of their own while they are converted.
constexpr int64_t kEncryptBesideInputSize = 8 << 20;
// The state writes of this long are committed together (OutboxStore's group commit).
constexpr std::chrono::milliseconds kStateCommitWindow{25};
// Converted payloads kept for destinations that have not taken them yet (PayloadCache): bytes in
// memory, and spooled ones (token files in the state directory) by count.
constexpr size_t kPayloadMemoryBudget = 16 << 20;
constexpr size_t kSpooledPayloadBudget = 4;
// Files identified ahead of the uploads: no more are identified while every destination that is
// not yielding has this many due (DeliveryScheduler::wants_more).
constexpr size_t kReadyAhead = 256;

void remove_spool_leftovers(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".tmp") ::unlink(e.path().c_str());
  }
}

std::chrono::steady_clock::time_point steady_from_unix(double unix_seconds) {
  const double in = unix_seconds - wall_now();
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             std::chrono::duration<double>(std::max(0.0, std::min(in, 86400.0))));
}

}  // namespace

// One enabled destination: its settings, keys, connections (one per worker, one for probes),
// job queue and metrics.
struct SenderService::Lane {
  Destination destination;
  std::string mapping;  // xml_mapping_summary of its XML options: payloads are shared per mapping
  std::shared_ptr<KeyRing> keys;
  std::vector<std::unique_ptr<DestinationClient>> clients;  // one per worker
  std::unique_ptr<DestinationClient> prober;  // a cheap check when it has been quiet
  std::once_flag recovered;  // recover() ran (on a worker's client), before the lane's first upload
  std::unique_ptr<BoundedQueue<Job>> jobs;           // its uploads (and probe) for its workers
  bool probe_queued = false;                         // run()'s
  Counter* delivered = nullptr;
  Counter* failures = nullptr;
  Counter* gave_up = nullptr;
  Gauge* backlog = nullptr;
  Gauge* in_flight = nullptr;
  Gauge* last_success = nullptr;
  Gauge* up = nullptr;
  Counter* bytes_sent = nullptr;
  Counter* parts = nullptr;
  double last_answer_unix = 0;  // guarded by readiness_mu_, with the next
  std::string last_contact_error;
};

struct SenderService::Job {
  enum class Kind { kIdentify, kUpload, kProbe } kind = Kind::kIdentify;
  std::string name;  // identify
  Candidate candidate;
  FileVersion version;  // upload
  size_t lane = 0;      // upload, probe
  std::shared_ptr<FilePayload> payload;
};

struct SenderService::Result_ {
  Job::Kind kind = Job::Kind::kIdentify;
  std::optional<Identification> identified;
  FileVersion version;
  size_t lane = 0;
  PayloadStatus payload_status = PayloadStatus::kReady;
  std::string payload_error;
  std::string transfer_id;
  DeliveryResult delivery;
  uint64_t json_bytes = 0;
  uint64_t xml_bytes = 0;
  double ms = 0;
};

Result<std::unique_ptr<SenderService>> SenderService::create(const SenderConfig& config,
                                                              std::vector<Destination> destinations,
                                                              Logger logger) {
  for (const auto& dir :
       {config.input_dir, config.status_db_path, config.status_db_path + "/spool"}) {
    if (auto st = ensure_directory(dir); !st) return st.error();
  }
  auto store = open_moving_aside_if_damaged(
      config.state_db_file(), [](const std::string& p) { return OutboxStore::open(p); },
      [&](const std::string& why, const std::string& aside) {
        logger->error("{}; moved it aside to {} and started a new one: files already delivered "
                      "will be offered again and the receivers answer them as duplicates",
                      why, log_value(aside));
      });
  if (!store) return store.error();
  std::unique_ptr<SenderService> service(
      new SenderService(config, std::move(destinations), std::move(logger), std::move(*store)));
  SenderService* s = service.get();
  for (auto& lane : s->lanes_) {
    // One client per worker, and one for probes (credential files are read here).
    for (int i = 0; i <= std::max(1, lane->destination.upload_concurrency); ++i) {
      auto client = make_destination_client(lane->destination, config, s->cancel_);
      if (!client) return client.error();
      if (i == 0) {
        lane->prober = std::move(*client);
      } else {
        lane->clients.push_back(std::move(*client));
      }
    }
    if (lane->destination.type == DestinationType::kFtps && !lane->destination.ftps.tls) {
      s->logger_->warn("destination={} url={} tls=false: plain FTP, the login, the password and "
                       "every byte stored cross the network in the clear",
                       lane->destination.name, lane->destination.url());
    }
    if (lane->destination.payload == PayloadKind::kXml) {
      s->logger_->warn("destination={} url={} payload=xml: the plaintext XML is stored there (anyone "
                       "who can read it there reads the data)", lane->destination.name,
                       lane->destination.url());
      continue;  // no key: the XML is stored as it is
    }
    auto keys = KeyRing::load(lane->destination.key_file);
    if (!keys) {
      Error e = keys.error();
      if (lane->destination.name != kDefaultDestination)
        e.message = "destination " + lane->destination.name + ": " + e.message;
      return e;
    }
    lane->keys = std::move(*keys);
    s->logger_->info("key loaded destination={} path={} keys={}", lane->destination.name,
                     log_value(lane->destination.key_file), lane->keys->keys()->size());
    if (const std::string warning = lane->keys->access_warning(); !warning.empty())
      s->logger_->warn("{}", warning);
  }
  s->logger_->info("state_db={}", log_value(config.state_db_file()));
  if (config.metrics_port) {
    auto second = OutboxStore::open(config.state_db_file());
    if (!second) return second.error();
    s->readiness_store_.emplace(std::move(*second));
    // The status port's connections get what the open-file limit leaves beside the sender's own
    // descriptors (database, watcher, inputs being read, spools, upload connections), so a flood
    // of connections cannot take those.
    size_t own = 256;
    for (const auto& lane : s->lanes_) own += 4 * static_cast<size_t>(std::max(1, lane->destination.upload_concurrency));
    own += 4 * static_cast<size_t>(std::max(1, config.upload_concurrency));
    const size_t limit = raise_open_file_limit(own + config.metrics_max_connections);
    StatusServerOptions status;
    status.max_connections = std::min(config.metrics_max_connections, limit > own + 16 ? limit - own : 16);
    if (status.max_connections < config.metrics_max_connections) {
      s->logger_->warn("METRICS_MAX_CONNECTIONS={} does not fit the open-file limit {} beside the sender's own {} "
                       "descriptors: using {} (raise the limit with ulimit -n or the container's nofile setting)",
                       config.metrics_max_connections, limit, own, status.max_connections);
    }
    s->status_server_ = std::make_unique<StatusServer>(
        [s] { return s->metrics_.registry.render(); }, [s] { return s->readiness(); }, status,
        s->logger_);
    auto port = s->status_server_->start(config.metrics_address, *config.metrics_port);
    if (!port) return port.error();
    s->logger_->info("status server listening address=http://{}:{} endpoints=/metrics,/readyz",
                     config.metrics_address, *port);
  }
  return service;
}

namespace {

std::vector<DestinationLimits> limits_of(const std::vector<Destination>& destinations) {
  std::vector<DestinationLimits> out;
  for (const auto& d : destinations) {
    // One queued behind each running upload, so a worker that finishes starts its next file
    // without waiting for the run loop.
    out.push_back(DestinationLimits{d.name, 2 * std::max(1, d.upload_concurrency), d.retry, d.enabled});
  }
  return out;
}

std::vector<std::string> enabled_names(const std::vector<Destination>& destinations) {
  std::vector<std::string> out;
  for (const auto& d : destinations) {
    if (d.enabled) out.push_back(d.name);
  }
  return out;
}

double uniform01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 1)(rng);
}

}  // namespace

SenderService::SenderService(const SenderConfig& config, std::vector<Destination> destinations,
                             Logger logger, OutboxStore store)
    : config_(config),
      logger_(std::move(logger)),
      destinations_watch_(config.destinations_file, destinations),
      store_(std::move(store)),
      spool_dir_(config.status_db_path + "/spool"),
      discovery_(config_, logger_),
      disposal_(config_),
      limits_(limits_of(destinations)),
      scheduler_(limits_, wall_now, uniform01),
      identifier_(config_.input_dir, enabled_names(destinations), kInMemoryInputLimit,
                  ScreenLimits{config_.max_input_bytes}, store_, cancel_, logger_),
      payloads_(kInMemoryInputLimit, kPayloadMemoryBudget, kSpooledPayloadBudget,
                [this](const FileVersion& v) { return scheduler_.activity(v); }),
      identifying_(config_.upload_concurrency, kInMemoryInputLimit) {
  for (auto& d : destinations) {
    if (!d.enabled) {
      logger_->info("destination={} url={} is disabled: nothing is sent to it", d.name, d.url());
      continue;
    }
    auto lane = std::make_unique<Lane>();
    lane->destination = std::move(d);
    lane->destination.xml.max_depth = config_.max_depth;
    lane->mapping = xml_mapping_summary(lane->destination.xml);
    const std::string& name = lane->destination.name;
    // Never full: the scheduler caps the uploads handed out (queued or running), plus one probe.
    lane->jobs = std::make_unique<BoundedQueue<Job>>(
        static_cast<size_t>(2 * std::max(1, lane->destination.upload_concurrency)) + 1);
    lane->delivered = &metrics_.delivered.with({name});
    lane->failures = &metrics_.failures.with({name});
    lane->gave_up = &metrics_.gave_up.with({name});
    lane->backlog = &metrics_.backlog.with({name});
    lane->in_flight = &metrics_.in_flight.with({name});
    lane->last_success = &metrics_.last_success.with({name});
    lane->up = &metrics_.receiver_up.with({name});
    lane->bytes_sent = &metrics_.bytes_sent.with({name});
    lane->parts = &metrics_.parts.with({name});
    lanes_.push_back(std::move(lane));
  }
  identify_jobs_ = std::make_unique<BoundedQueue<Job>>(identifying_.capacity());
  remove_spool_leftovers(spool_dir_);
  store_.set_group_commit(kStateCommitWindow, [this] { discovery_.watcher().wake(); });
  load_settled();
  if (auto v = store_.data_version(); v) data_version_ = *v;
}

SenderService::~SenderService() { stop_workers(); }

// A file version is left alone (not identified again until its stamp changes) when every enabled
// destination has settled it and nothing remains to do with the input: delivered everywhere and
// kept (ON_SUCCESS=keep), or given up somewhere and left in place (the quarantine move failed).
void SenderService::load_settled() {
  discovery_.settled().clear();
  auto settled = store_.settled();
  if (!settled) return;
  struct Version {
    std::string sha256;
    FileStamp stamp;
    std::map<std::string, const OutboxEntry*> rows;
  };
  std::map<std::string, Version> latest;  // by name: the newest version's rows
  for (const auto& e : *settled) {
    Version& v = latest[e.name];
    if (v.sha256 != e.sha256) v = Version{e.sha256, FileStamp{e.size, e.mtime_ns, 0}, {}};
    v.rows[e.destination] = &e;
  }
  const bool keep = config_.on_success == SenderConfig::OnSuccess::kKeep;
  for (const auto& [name, v] : latest) {
    bool all = true;
    bool gave_up_in_place = false;
    for (const auto& lane : lanes_) {
      auto row = v.rows.find(lane->destination.name);
      if (row == v.rows.end()) {
        all = false;
        break;
      }
      const OutboxEntry& e = *row->second;
      if (e.state == OutboxState::kQuarantined) {
        if (!e.quarantine_path.empty()) {  // moved away: if it is back, it starts again
          all = false;
          break;
        }
        gave_up_in_place = true;
      }
    }
    if (all && (keep || gave_up_in_place)) discovery_.settled()[name] = v.stamp;
  }
}

void SenderService::notice_operator_changes() {
  auto v = store_.data_version();
  if (!v || *v == data_version_) return;
  data_version_ = *v;
  // Another connection committed: an operator's `sender retry` or `sender forget`. What was
  // decided from the old rows is forgotten (files with an upload in flight finish it first);
  // the next pass asks the database again.
  logger_->info("state database changed by another process: re-reading it");
  load_settled();
  std::vector<std::string> idle;
  for (const auto& [name, t] : tracked_) {
    if (!scheduler_.activity(t.version).in_flight) idle.push_back(name);
  }
  for (const auto& name : idle) forget_tracked(name);
  for (const auto& lane : lanes_) scheduler_.resume(lane->destination.name);  // "retry now"
  discovery_.clear_backoffs(Clock::now());
  discovery_.rescan();
}

FernetKey SenderService::current_key(Lane& lane) {
  if (!lane.keys) return FernetKey{};  // payload xml: nothing is encrypted
  auto changed = lane.keys->refresh();
  if (!changed) {
    logger_->error("key file unusable, still encrypting with the key loaded before: destination={} {}",
                   lane.destination.name, changed.error().message);
  } else if (*changed) {
    logger_->info("key file reloaded destination={} path={} keys={} (the first line encrypts from now on)",
                  lane.destination.name, log_value(lane.destination.key_file),
                  lane.keys->keys()->size());
  }
  return lane.keys->keys()->front();
}

void SenderService::recover(Lane& lane, DestinationClient& client) {
  auto done = client.recover();
  if (!done) {
    // Not fatal: the next start tries again (an S3 lifecycle rule also ends such uploads).
    logger_->warn("destination={} could not clear what an earlier run left: {}",
                  lane.destination.name, done.error().message);
  } else if (!done->empty()) {
    logger_->info("destination={} {}", lane.destination.name, *done);
  }
}

void SenderService::note_answer(Lane& lane, bool answered, const std::string& error) {
  lane.up->set(answered ? 1 : 0);
  std::lock_guard lock(readiness_mu_);
  if (answered) {
    lane.last_answer_unix = wall_now();
    lane.last_contact_error.clear();
  } else {
    lane.last_contact_error = error;
  }
}

Readiness SenderService::readiness() {
  Readiness r;
  std::lock_guard lock(readiness_mu_);
  Status db = readiness_store_ ? readiness_store_->probe_write(250)
                               : Status(make_error(ErrorCode::kDatabase, "no status connection"));
  r.add("state_db",
        db ? db
           : Status(make_error(ErrorCode::kDatabase,
                               "state database cannot be written: " + db.error().message)),
        config_.state_db_file() + " takes writes");
  std::error_code ec;
  std::filesystem::directory_iterator it(config_.input_dir, ec);
  r.add("input_readable",
        ec ? Status(errno_error("cannot list", config_.input_dir, ec.value())) : ok_status(),
        config_.input_dir + " can be listed");
  if (!config_.destinations_file.empty()) {
    r.add("destinations_file",
          destinations_error_.empty() ? ok_status()
                                      : Status(make_error(ErrorCode::kInvalidArgument, destinations_error_)),
          config_.destinations_file + " is in force");
  }
  const double window = 2 * config_.scan_interval_s + config_.connect_timeout_s;
  for (const auto& lane : lanes_) {
    const double ago = wall_now() - lane->last_answer_unix;
    Status reachable = ok_status();
    const std::string type(destination_type_name(lane->destination.type));
    const std::string who = lane->destination.type == DestinationType::kReceiver ? "the receiver" : "the " + type + " destination";
    if (lane->last_answer_unix <= 0 || ago > window) {
      reachable = make_error(
          ErrorCode::kIo,
          (lane->last_answer_unix <= 0
               ? who + " has not answered yet"
               : who + " last answered " + std::to_string(static_cast<int64_t>(ago)) + "s ago") +
              (lane->last_contact_error.empty() ? "" : " (" + lane->last_contact_error + ")"));
    }
    r.add(type + ":" + lane->destination.name, reachable,
          lane->destination.url() + " answered " + std::to_string(static_cast<int64_t>(ago)) +
              "s ago (window " + std::to_string(static_cast<int64_t>(window)) + "s)");
  }
  return r;
}

void SenderService::update_metrics(bool busy) {
  // At most ten times a second while busy, at once when idle. Walks nothing: every tracked
  // version is a candidate (sync_tracked has run), the others are not identified yet.
  const auto now = Clock::now();
  if (busy && now < next_metrics_update_) return;
  next_metrics_update_ = now + std::chrono::milliseconds(100);
  const auto candidates = static_cast<int64_t>(discovery_.candidates().size());
  const int64_t unidentified = std::max<int64_t>(0, candidates - static_cast<int64_t>(tracked_.size()));
  metrics_.oldest_pending_since.store(discovery_.oldest_waiting_since());
  for (const auto& lane : lanes_) {
    const std::string& d = lane->destination.name;
    lane->backlog->set(static_cast<double>(scheduler_.backlog(d) + unidentified));
    lane->in_flight->set(static_cast<double>(scheduler_.in_flight(d)));
  }
}

void SenderService::request_reload() {
  reload_requested_ = true;
  discovery_.watcher().wake();
}

void SenderService::check_destinations() {
  if (config_.once || config_.destinations_file.empty() || reload_) return;
  const bool asked = reload_requested_.exchange(false);
  if (!asked && !destinations_watch_.changed(wall_now())) return;
  auto next = load_destinations_file(config_.destinations_file, config_);
  std::lock_guard lock(readiness_mu_);
  if (!next) {
    destinations_error_ = next.error().message;
    logger_->error("destinations file not taken, the destinations in force stay: {}", next.error().message);
    return;
  }
  destinations_error_.clear();
  logger_->info("destinations file read again ({}): starting with destinations={} once the uploads in "
                "flight have finished", asked ? "SIGHUP" : "changed", next->size());
  reload_ = std::move(*next);
}

void SenderService::stop() {
  if (stopping_.exchange(true)) return;
  discovery_.watcher().wake();
  drain_.start(config_.drain_timeout_s, [this] {
    logger_->warn("drain timeout after {}s: abandoning the uploads in flight (they are retried at "
                  "the next start)",
                  config_.drain_timeout_s);
    cancel_ = true;
    for (auto& lane : lanes_) {
      for (auto& c : lane->clients) c->abort();
      lane->prober->abort();
    }
  });
}

// --- workers -------------------------------------------------------------------------------------

void SenderService::start_workers() {
  for (size_t i = 0; i < identifying_.workers(); ++i) {
    workers_.emplace_back([this, i] { worker_loop(-1, i); });
  }
  for (size_t l = 0; l < lanes_.size(); ++l) {
    for (size_t i = 0; i < lanes_[l]->clients.size(); ++i) {
      workers_.emplace_back([this, l, i] { worker_loop(static_cast<int>(l), i); });
    }
  }
}

void SenderService::stop_workers() {
  // Jobs handed out but not started are dropped by the workers (stopping_) or, after a --once
  // run, there are none: what was not done is done at the next start.
  identify_jobs_->close();
  for (auto& lane : lanes_) lane->jobs->close();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

void SenderService::push_job(Job job) {
  // Never waits: identifications and each destination's uploads are capped below the queues'
  // capacities by run().
  BoundedQueue<Job>& queue = job.kind == Job::Kind::kIdentify ? *identify_jobs_ : *lanes_[job.lane]->jobs;
  if (!queue.try_push(job)) logger_->error("internal: a work queue is full; the job is redone later");
}

bool SenderService::take_results(std::deque<Result_>& out) {
  std::lock_guard lock(results_mu_);
  if (results_.empty()) return false;
  for (auto& r : results_) out.push_back(std::move(r));
  results_.clear();
  return true;
}

void SenderService::worker_loop(int pool, size_t index) {
  BoundedQueue<Job>& queue = pool < 0 ? *identify_jobs_ : *lanes_[static_cast<size_t>(pool)]->jobs;
  while (auto next = queue.pop()) {
    if (stopping_) continue;  // not started before the stop: left for the next start
    Job job = std::move(*next);
    Result_ r;
    r.kind = job.kind;
    r.version = job.version;
    r.lane = job.lane;
    if (job.kind == Job::Kind::kIdentify) {
      r.identified = identifier_.identify(job.name, job.candidate.stamp);
    } else if (job.kind == Job::Kind::kProbe) {
      Lane& lane = *lanes_[job.lane];
      const ProbeResult answer = lane.prober->probe();
      note_answer(lane, answer.answered, answer.error);
      r.delivery.answered = answer.answered;
    } else {
      Lane& lane = *lanes_[job.lane];
      std::call_once(lane.recovered, [&] { recover(lane, *lane.clients[index]); });
      const auto started = Clock::now();
      bool converted = false;
      r.payload_status = job.payload->prepare(
          [this](const std::string& destination) -> std::optional<FernetKey> {
            for (auto& l : lanes_) {
              if (l->destination.name != destination) continue;
              if (l->destination.payload == PayloadKind::kXml) return std::nullopt;
              return current_key(*l);
            }
            return FernetKey{};  // not reached: the payload names only enabled destinations
          },
          &converted);
      if (converted) metrics_.conversions.add();
      r.payload_error = job.payload->error();
      if (r.payload_status == PayloadStatus::kReady) {
        r.transfer_id = new_transfer_id();
        r.json_bytes = job.payload->json_bytes();
        r.xml_bytes = job.payload->xml_bytes();
        r.delivery = lane.clients[index]->send(*job.payload, current_key(lane), r.transfer_id);
        if (!r.delivery.cancelled) note_answer(lane, r.delivery.answered, r.delivery.error);
        if (r.delivery.answered) metrics_.upload_seconds.observe(r.delivery.upload_seconds);
      }
      r.ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    }
    {
      std::lock_guard lock(results_mu_);
      results_.push_back(std::move(r));
    }
    discovery_.watcher().wake();
  }
}

// --- the run loop --------------------------------------------------------------------------------

ScanSummary SenderService::run() {
  std::string destinations;
  for (const auto& lane : lanes_) {
    destinations += (destinations.empty() ? "" : ",") + lane->destination.name + "=" +
                    lane->destination.url();
  }
  logger_->info("watching input_dir={} destinations={} interval_s={} min_file_age_s={} inotify={}",
                log_value(config_.input_dir), log_value(destinations), config_.scan_interval_s,
                config_.min_file_age_s, discovery_.watcher().active() ? "on" : "off");
  if (config_.use_inotify && !discovery_.watcher().active()) {
    logger_->warn("inotify unavailable ({}); rescans every {}s only",
                  discovery_.watcher().setup_error(), config_.scan_interval_s);
  }
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(config_.scan_interval_s));
  auto next_rescan = Clock::now() + rescan_interval(interval, discovery_.rescan(), discovery_.watcher().active());
  start_workers();
  if (!config_.once) queue_probes();
  auto next_scan = Clock::now() + interval;
  std::deque<Result_> done;
  while (!stopping_) {
    take_results(done);
    while (!done.empty()) {
      apply(std::move(done.front()));
      done.pop_front();
    }
    sync_tracked();
    check_destinations();
    if (!reload_) {  // while a reload waits, nothing new starts
      dispatch_identifications();
      dispatch_due();
    }
    if (stopping_) break;
    if (config_.once && once_finished()) break;
    const bool busy = !identifying_.empty() || std::any_of(lanes_.begin(), lanes_.end(), [&](const auto& l) {
      return scheduler_.in_flight(l->destination.name) > 0;
    });
    if (reload_ && !busy) break;
    update_metrics(busy);
    // The state writes are committed in groups: once due, at once when nothing is in flight.
    if (auto st = busy ? store_.flush_if_due() : store_.flush(); !st) {
      logger_->error("state database: {} (the steps of the last {} ms are redone)",
                     st.error().message, kStateCommitWindow.count());
    }
    auto wake = config_.once ? Clock::now() + std::chrono::seconds(60) : std::min(next_scan, next_rescan);
    wake = std::min(wake, wake_time(std::min(next_scan, next_rescan)));
    // When an untaken candidate may start; with every identify worker busy, a result wakes us.
    if (!identifying_.full() && scheduler_.wants_more(kReadyAhead)) {
      for (const auto& name : discovery_.untaken()) {
        const Candidate& c = discovery_.candidates().at(name);
        if (identifying_.holds(name) || (config_.once && c.tried_in_once_mode) ||
            !identifying_.may_start(c.stamp.size))
          continue;  // one not startable waits for a result
        wake = std::min(wake, discovery_.ready_at(c));
        if (wake <= Clock::now()) break;
      }
    }
    if (take_results(done)) continue;  // a worker finished while we looked: apply it first
    const auto events = discovery_.watcher().wait_until(wake);  // a finishing worker wakes it
    for (const auto& name : events.names) {
      if (!is_ignored_name(name, config_.ignore_globs)) discovery_.observe(name);
    }
    if (!config_.once) notice_operator_changes();
    if (events.needs_rescan || Clock::now() >= next_rescan) {
      next_rescan = Clock::now() + rescan_interval(interval, discovery_.rescan(), discovery_.watcher().active());
    }
    if (events.needs_rescan || Clock::now() >= next_scan) {
      if (!config_.once) queue_probes();
      next_scan = Clock::now() + interval;
    }
  }
  stop_workers();  // the uploads in flight finish (or the drain deadline cancels them)
  take_results(done);
  while (!done.empty()) {
    apply(std::move(done.front()));
    done.pop_front();
  }
  if (auto st = store_.flush(); !st) logger_->error("state database: {}", st.error().message);
  drain_.finished();
  if (reload_ && !stopping_) {
    summary_.reload = std::move(reload_);
    logger_->info("reloading destinations delivered={} failed={} quarantined={}", summary_.delivered,
                  summary_.failed, summary_.quarantined);
    return summary_;
  }
  if (summary_.delivered + summary_.failed + summary_.quarantined > 0 || config_.once) {
    logger_->info("{} delivered={} already_delivered={} failed={} quarantined={}",
                  stopping_ ? "stopped" : "done", summary_.delivered, summary_.already_delivered,
                  summary_.failed, summary_.quarantined);
  } else {
    logger_->info("stopped");
  }
  return summary_;
}

SenderService::Clock::time_point SenderService::wake_time(Clock::time_point next_scan) {
  auto wake = next_scan;
  for (const auto& lane : lanes_) {
    if (auto due = scheduler_.next_due(lane->destination.name)) {
      wake = std::min(wake, steady_from_unix(*due));
    }
  }
  if (!config_.once) wake = std::min(wake, Clock::now() + std::chrono::seconds(1));  // operators
  if (const auto due = store_.batch_due()) wake = std::min(wake, *due);
  return wake;
}

void SenderService::queue_probes() {
  const double now = wall_now();
  for (size_t i = 0; i < lanes_.size(); ++i) {
    Lane& lane = *lanes_[i];
    if (lane.probe_queued || scheduler_.in_flight(lane.destination.name) > 0) continue;
    {
      std::lock_guard lock(readiness_mu_);
      if (now - lane.last_answer_unix < config_.scan_interval_s) continue;
    }
    lane.probe_queued = true;
    Job job;
    job.kind = Job::Kind::kProbe;
    job.lane = i;
    push_job(std::move(job));
  }
}

// Quiet candidates to the identify workers, in name order; a large one waits while the large files
// in hand would leave no worker for small ones, and the small ones after it go first.
void SenderService::dispatch_identifications() {
  if (!scheduler_.wants_more(kReadyAhead)) return;  // a result wakes the loop
  const auto now = Clock::now();
  std::vector<std::string> started;
  for (const auto& name : discovery_.untaken()) {
    if (identifying_.full()) break;
    if (tracked_.count(name)) {  // not reached: sync_tracked takes these
      started.push_back(name);
      continue;
    }
    const Candidate& c = discovery_.candidates().at(name);
    if (identifying_.holds(name) || (config_.once && c.tried_in_once_mode) || now < c.not_before ||
        !discovery_.is_quiet(c, now) || !identifying_.may_start(c.stamp.size))
      continue;
    identifying_.started(name, c.stamp.size);
    Job job;
    job.kind = Job::Kind::kIdentify;
    job.name = name;
    job.candidate = c;
    push_job(std::move(job));
    started.push_back(name);
  }
  for (const auto& name : started) discovery_.take(name);
}

void SenderService::dispatch_due() {
  for (size_t i = 0; i < lanes_.size(); ++i) {
    const std::string& d = lanes_[i]->destination.name;
    while (auto version = scheduler_.take(d)) {
      auto t = tracked_.find(version->name);
      if (t == tracked_.end() || !(t->second.version == *version)) {  // not reached: kept in step
        scheduler_.remove(*version);
        continue;
      }
      Job job;
      job.kind = Job::Kind::kUpload;
      job.version = *version;
      job.lane = i;
      job.payload = payload_for(t->second, *lanes_[i]);
      push_job(std::move(job));
    }
  }
}

// The destinations of one mapping that may still upload `version`.
std::vector<std::string> SenderService::needing(const FileVersion& version, const std::string& mapping,
                                                bool in_flight_too) const {
  std::vector<std::string> out;
  for (const auto& o : scheduler_.outcomes(version)) {
    const bool open = o.state == PairState::kWaiting || (in_flight_too && o.state == PairState::kInFlight);
    if (open && lane_named(o.destination).mapping == mapping) out.push_back(o.destination);
  }
  return out;
}

const SenderService::Lane& SenderService::lane_named(const std::string& destination) const {
  for (const auto& lane : lanes_) {
    if (lane->destination.name == destination) return *lane;
  }
  return *lanes_.front();  // not reached: the scheduler knows only the lanes' destinations
}

// One payload per file version and mapping: destinations with the same XML options share it.
std::shared_ptr<FilePayload> SenderService::payload_for(const Tracked& t, const Lane& lane) {
  const PayloadCache::Key key{t.version, lane.mapping};
  if (auto kept = payloads_.find(key)) return kept;
  FilePayload::Source source{t.version.name, config_.input_dir + "/" + t.version.name,
                             t.version.sha256, t.stamp.size, t.stamp.mtime_ns, std::nullopt};
  auto payload = std::make_shared<FilePayload>(std::move(source), needing(t.version, lane.mapping, true),
                                               lane.destination.xml, spool_dir_, kInMemoryInputLimit,
                                               kEncryptBesideInputSize, cancel_);
  payloads_.keep(key, payload);
  return payload;
}


// The tracked version is dropped; a file still there is a candidate to identify again.
void SenderService::forget_tracked(const std::string& name) {
  auto t = tracked_.find(name);
  if (t == tracked_.end()) return;
  scheduler_.remove(t->second.version);
  payloads_.drop_all(t->second.version);
  tracked_.erase(t);
  discovery_.put_back(name);
}

// Files gone or changed since they were identified: their pairs are dropped (an upload in flight
// finishes and its result is recorded for the version it sent). Only the names discovery saw
// change are looked at.
void SenderService::sync_tracked() {
  for (const auto& name : discovery_.take_changed()) {
    auto t = tracked_.find(name);
    if (t == tracked_.end()) continue;
    const Candidate* c = discovery_.find(name);
    if (c == nullptr || !(c->stamp == t->second.stamp)) {
      forget_tracked(name);
    } else {
      discovery_.take(name);  // gone and back with the same stamp: still the version tracked
    }
  }
}

// Every candidate identified or tried, nothing in flight, and every waiting pair tried once. The
// cheap conditions first: the walk of the tracked versions happens only once nothing is running.
bool SenderService::once_finished() const {
  if (!identifying_.empty() || !discovery_.untaken().empty()) return false;
  for (const auto& lane : lanes_) {
    if (scheduler_.in_flight(lane->destination.name) > 0) return false;
  }
  for (const auto& [name, t] : tracked_) {
    for (const auto& o : scheduler_.outcomes(t.version)) {
      if (o.state == PairState::kInFlight) return false;
      if (o.state == PairState::kWaiting && !tried_.count({t.version, o.destination})) return false;
    }
  }
  return true;
}

void SenderService::apply(Result_&& r) {
  if (r.kind == Job::Kind::kIdentify) {
    apply_identified(std::move(*r.identified));
  } else if (r.kind == Job::Kind::kProbe) {
    lanes_[r.lane]->probe_queued = false;
    if (r.delivery.answered) scheduler_.resume(lanes_[r.lane]->destination.name);
  } else {
    apply_upload(r);
  }
}

void SenderService::apply_identified(Identification&& id) {
  identifying_.finished(id.name);
  Candidate* found = discovery_.find(id.name);
  // Gone meanwhile, or seen with another stamp while it was read: the newer one is a candidate
  // (and untaken already).
  if (found == nullptr || !(found->stamp == id.dispatched)) return;
  Candidate& c = *found;
  switch (id.outcome) {
    case Identification::Outcome::kGone: discovery_.erase(id.name); return;
    case Identification::Outcome::kChanged:
      c = Candidate{id.stamp, Clock::now(), Clock::now(), false, c.waiting_since_unix};
      discovery_.put_back(id.name);
      return;
    case Identification::Outcome::kRetryLater:
      c.not_before = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(std::max(1.0, config_.scan_interval_s)));
      c.tried_in_once_mode = true;
      ++summary_.failed;
      discovery_.put_back(id.name);  // with --once: not again
      return;
    case Identification::Outcome::kStopped: discovery_.put_back(id.name); return;
    case Identification::Outcome::kRefused:  // recorded and given up everywhere, below
    case Identification::Outcome::kOk: break;
  }
  const FileVersion version{id.name, id.sha256};
  if (id.new_version) metrics_.discovered.add();
  for (const auto& d : id.back_from_quarantine) {
    logger_->info("file={} destination={} is back from quarantine: retrying it from scratch",
                  log_value(id.name), d);
    if (auto s = store_.reset(id.name, id.sha256, d); !s) logger_->error("state database: {}", s.error().message);
  }
  const double now = wall_now();
  for (const auto& lane : lanes_) {
    const std::string& d = lane->destination.name;
    if (auto s = store_.record_seen(id.name, id.sha256, id.stamp.size, id.stamp.mtime_ns, d); !s) {
      logger_->error("state database: {} (file={} will be retried)", s.error().message, log_value(id.name));
      c.not_before = Clock::now() + std::chrono::seconds(1);
      discovery_.put_back(id.name);
      return;
    }
    auto h = id.history.find(d);
    if (h == id.history.end()) continue;
    if (h->second.state == PairState::kDelivered) ++summary_.already_delivered;
    // --once: a retry still waiting from an earlier run counts as tried (and failed).
    if (config_.once && h->second.state == PairState::kWaiting && h->second.next_attempt_unix > now) {
      tried_.insert({version, d});
      ++summary_.failed;
    }
  }
  tracked_[id.name] = Tracked{version, id.stamp};
  scheduler_.add(version, id.history);
  if (id.outcome == Identification::Outcome::kRefused) {
    give_up_everywhere(version, id.refusal);  // as an invalid file: quarantined with the reason
  } else if (id.content) {
    // The bytes read are the payload of each mapping the waiting destinations have. Over budget
    // (files identified faster than a destination takes them), some are dropped and read again.
    payloads_.drop_all(version);
    std::set<std::string> done;
    for (const auto& lane : lanes_) {
      if (!done.insert(lane->mapping).second) continue;
      auto destinations = needing(version, lane->mapping, false);
      if (destinations.empty()) continue;
      FilePayload::Source source{id.name, config_.input_dir + "/" + id.name, id.sha256,
                                 id.stamp.size, id.stamp.mtime_ns, id.content};
      payloads_.keep(PayloadCache::Key{version, lane->mapping},
                   std::make_shared<FilePayload>(std::move(source), std::move(destinations), lane->destination.xml,
                                                 spool_dir_, kInMemoryInputLimit, kEncryptBesideInputSize,
                                                 cancel_));
    }
  }
  settle_if_decided(id.name);
}

void SenderService::apply_upload(Result_& r) {
  Lane& lane = *lanes_[r.lane];
  const std::string& d = lane.destination.name;
  const FileVersion& v = r.version;
  const std::string field = log_value(v.name);
  const bool delivered = r.payload_status == PayloadStatus::kReady && !r.delivery.cancelled &&
                         r.delivery.verdict == AttemptVerdict::kDelivered;
  if (!scheduler_.contains(v)) {
    // Forgotten meanwhile (the file changed or went, or an operator changed its rows): a
    // delivery is still recorded, so it is not sent again.
    if (delivered) {
      if (auto s = store_.mark_delivered(v.name, v.sha256, r.delivery.status, r.delivery.body, d, lane.mapping); !s)
        logger_->error("state database: {}", s.error().message);
      lane.delivered->add();
    }
    return;
  }
  if (r.payload_status == PayloadStatus::kCancelled ||
      (r.payload_status == PayloadStatus::kReady && r.delivery.cancelled)) {
    scheduler_.released(v, d);
    return;
  }
  if (r.payload_status == PayloadStatus::kChanged || r.payload_status == PayloadStatus::kGone) {
    scheduler_.released(v, d);
    logger_->info("file={} changed while it was read: waiting for it to settle", field);
    discovery_.observe(v.name);  // a new stamp (or none): sync_tracked drops this version
    payloads_.drop_all(v);
    return;
  }
  if (config_.once) tried_.insert({v, d});
  const double now = wall_now();
  auto record = [&](const std::string& destination, const AttemptDecision& decision,
                    const FailureRecord& failure) {
    const Lane* l = &lane_named(destination);
    switch (decision.state) {
      case PairState::kDelivered: {
        if (auto s = store_.mark_delivered(v.name, v.sha256, r.delivery.status, r.delivery.body, destination,
                                           l->mapping);
            !s) {
          // Not recorded: the next start sends it again and the receiver answers it as a duplicate.
          logger_->error("state database: {} (file={} was delivered)", s.error().message, field);
        }
        l->delivered->add();
        if (l == &lane) {
          l->bytes_sent->add(static_cast<double>(r.delivery.bytes_sent));
          l->parts->add(r.delivery.parts);
        }
        l->last_success->set(now);
        ++summary_.delivered;
        logger_->info("delivered file={} destination={} name={} transfer_id={} json_bytes={} xml_bytes={} "
                      "ms={:.1f} status={}{}",
                      field, destination, log_value(upload_name_for_file(v.name)), r.transfer_id, r.json_bytes,
                      r.xml_bytes, r.ms, r.delivery.status, r.delivery.duplicate ? " duplicate=true" : "");
        break;
      }
      case PairState::kWaiting: {
        FailureRecord f = failure;
        f.next_attempt_unix = decision.next_attempt_unix;
        if (auto s = store_.mark_failed(v.name, v.sha256, f, destination); !s)
          logger_->error("state database: {}", s.error().message);
        l->failures->add();
        ++summary_.failed;
        logger_->warn("failed file={} destination={} error={} attempt={} retry_in_s={:.2f} transfer_id={}", field,
                      destination, log_value(failure.error), decision.attempts,
                      std::max(0.0, decision.next_attempt_unix - now), r.transfer_id);
        break;
      }
      case PairState::kGaveUp:
      case PairState::kInFlight: record_gave_up(v, destination, decision, failure); break;
    }
  };
  if (r.payload_status == PayloadStatus::kInvalid) {
    give_up_everywhere(v, r.payload_error, d);  // not convertible, or a name no receiver takes
  } else if (r.payload_status == PayloadStatus::kTransient) {
    record(d, scheduler_.finished(v, d, AttemptVerdict::kTransient, r.payload_error),
           FailureRecord{r.payload_error, 0, "", now, 0});
    payloads_.drop(PayloadCache::Key{v, lane.mapping});  // made again for the next attempt
  } else {
    const DeliveryResult& x = r.delivery;
    record(d, scheduler_.finished(v, d, x.verdict, x.error, parse_retry_after(x.retry_after, now),
                                  /*unreachable=*/!x.answered),
           FailureRecord{x.error, x.status, x.body, now, 0});
  }
  settle_if_decided(v.name);
  payloads_.trim(v);
}

// A version no destination can take (not convertible, a name no receiver takes, or refused by the
// screening): every destination still waiting for it, and `attempted_by` whose attempt found out,
// gives up now. Those with an upload in flight find out themselves.
void SenderService::give_up_everywhere(const FileVersion& version, const std::string& error,
                                       const std::string& attempted_by) {
  const FailureRecord failure{error, 0, "", wall_now(), 0};
  for (const auto& o : scheduler_.outcomes(version)) {
    if (o.destination != attempted_by && o.state != PairState::kWaiting) continue;
    record_gave_up(version, o.destination,
                   scheduler_.finished(version, o.destination, AttemptVerdict::kPermanent, error), failure);
  }
}

void SenderService::record_gave_up(const FileVersion& version, const std::string& destination,
                                   const AttemptDecision& decision, const FailureRecord& failure) {
  FailureRecord f = failure;
  f.error = decision.reason.empty() ? failure.error : decision.reason;
  if (auto s = store_.mark_quarantined(version.name, version.sha256, f, "", destination); !s)
    logger_->error("state database: {}", s.error().message);
  last_failure_[{version, destination}] = f;
  lane_named(destination).gave_up->add();
  ++summary_.quarantined;
  logger_->error("gave up file={} destination={} error={} attempts={}", log_value(version.name), destination,
                 log_value(f.error), decision.attempts);
}

// Acts on the input file once every enabled destination has settled its version.
void SenderService::settle_if_decided(const std::string& name) {
  auto t = tracked_.find(name);
  if (t == tracked_.end()) return;
  const FileVersion version = t->second.version;
  const FileStamp stamp = t->second.stamp;
  const FileOutcome outcome = scheduler_.outcome(version);
  if (outcome == FileOutcome::kPending) return;
  const std::string path = config_.input_dir + "/" + name;
  const bool keep = config_.on_success == SenderConfig::OnSuccess::kKeep;
  if (outcome == FileOutcome::kDeliveredEverywhere) {
    after_delivery(name, path);
    if (keep) discovery_.settled()[name] = stamp;
  } else {
    quarantine_input(version, path);
  }
  for (const auto& lane : lanes_) last_failure_.erase({version, lane->destination.name});
  discovery_.erase(name);
  forget_tracked(name);
}

void SenderService::quarantine_input(const FileVersion& version, const std::string& path) {
  const auto outcomes = scheduler_.outcomes(version);
  const double now = wall_now();
  QuarantineReason reason{version.name, version.sha256, now, {}};
  for (const auto& o : outcomes) {
    auto f = last_failure_.find({version, o.destination});
    const bool known = f != last_failure_.end();
    reason.destinations.push_back({o.destination, o.state == PairState::kDelivered, o.attempts,
                                   known ? f->second.error : o.last_error, known ? f->second.receiver_status : 0});
  }
  const QuarantineReason::Destination first = reason.first_gave_up();
  const std::string& first_error = first.error;
  const int64_t attempts = first.attempts;
  const QuarantineResult q = disposal_.quarantine(version.name, path, reason.text());
  for (const auto& o : outcomes) {
    if (o.state != PairState::kGaveUp) continue;
    auto f = last_failure_.find({version, o.destination});
    const FailureRecord failure = f != last_failure_.end() ? f->second : FailureRecord{o.last_error, 0, "", now, 0};
    if (auto s = store_.mark_quarantined(version.name, version.sha256, failure, q.moved_to, o.destination); !s)
      logger_->error("state database: {}", s.error().message);
  }
  metrics_.quarantined.add();
  if (q.moved_to.empty()) {
    struct stat now_st {};
    if (::stat(path.c_str(), &now_st) == 0) discovery_.settled()[version.name] = stamp_of(now_st);
    logger_->error("quarantined file={} error={} attempts={} (cannot move it: {}; it stays in place and "
                   "is not retried until its content changes)",
                   log_value(version.name), log_value(first_error), attempts, q.error);
  } else {
    logger_->error("quarantined file={} error={} attempts={} moved_to={}", log_value(version.name),
                   log_value(first_error), attempts, log_value(q.moved_to));
  }
}

void SenderService::after_delivery(const std::string& name, const std::string& path) {
  if (config_.on_success == SenderConfig::OnSuccess::kKeep) return;
  // The delivered marks are committed before the input goes: the state never names a pending
  // file that is no longer there.
  if (auto st = store_.flush(); !st) {
    logger_->error("state database: {} (delivered file={} stays in place; the next scan resends it)",
                   st.error().message, log_value(name));
    return;
  }
  if (auto st = disposal_.delivered(name, path); !st) {
    logger_->error("cannot {} delivered file={} error={} (retried at the next scan)",
                   config_.on_success == SenderConfig::OnSuccess::kDelete ? "delete" : "move",
                   log_value(name), log_value(st.error().message));
  }
}

}  // namespace transfer::sender
