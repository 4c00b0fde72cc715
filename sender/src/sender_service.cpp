#include "sender_service.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "input_disposal.hpp"
#include "payload.hpp"
#include "transfer/fernet.hpp"
#include "transfer/file_util.hpp"
#include "transfer/json_to_xml.hpp"
#include "transfer/sha256.hpp"
#include "transfer/upload_name.hpp"

namespace transfer::sender {
namespace {

// Inputs up to this size are read once into memory and converted there; larger ones stream
// through a spool file, so memory stays bounded whatever the size (the XML is ~2.6x the JSON).
constexpr int64_t kInMemoryInputLimit = 256 * 1024;
// Inputs from this size are encrypted on a second thread while they are converted.
constexpr int64_t kEncryptBesideInputSize = 8 << 20;
// The state writes of this long are committed together (OutboxStore's group commit).
constexpr std::chrono::milliseconds kStateCommitWindow{25};

// Reads the whole of a small file; its size is known from fstat.
Result<std::string> read_small_file(int fd, const std::string& path, int64_t size) {
  std::string text(static_cast<size_t>(size) + 1, '\0');  // one more: to see a file that grew
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read", path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}

std::string iso_time(double unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void remove_spool_leftovers(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".tmp") ::unlink(e.path().c_str());
  }
}

std::string answer_message(const UploadResponse& r) {
  std::string why = "receiver answered " + std::to_string(r.status);
  try {
    why += ": " + nlohmann::json::parse(r.body).at("msg").get<std::string>();
  } catch (const nlohmann::json::exception&) {
  }
  return why;
}

UploadTarget upload_target(const SenderConfig& c) {
  return UploadTarget{c.receiver_scheme,    c.receiver_address, c.receiver_port,
                      c.receiver_uri,       c.connect_timeout_s, c.io_timeout_s,
                      c.ca_file,            c.client_cert_file,  c.client_key_file};
}

}  // namespace

Result<std::unique_ptr<SenderService>> SenderService::create(const SenderConfig& config,
                                                              Logger logger) {
  auto keys = KeyRing::load(config.key_path);
  if (!keys) return keys.error();
  for (const auto& dir : {config.input_dir, config.status_db_path, config.status_db_path + "/spool"}) {
    if (auto st = ensure_directory(dir); !st) return st.error();
  }
  auto store = open_moving_aside_if_damaged(
      config.state_db_file(), [](const std::string& p) { return OutboxStore::open(p); },
      [&](const std::string& why, const std::string& aside) {
        logger->error("{}; moved it aside to {} and started a new one: files already delivered "
                      "will be offered again and the receiver answers them as duplicates",
                      why, log_value(aside));
      });
  if (!store) return store.error();
  logger->info("key loaded path={} keys={} state_db={}", log_value(config.key_path), (*keys)->keys()->size(),
               log_value(config.state_db_file()));
  if (const std::string warning = (*keys)->access_warning(); !warning.empty()) logger->warn("{}", warning);
  std::unique_ptr<SenderService> service(
      new SenderService(config, std::move(logger), std::move(*store), std::move(*keys)));
  if (config.metrics_port) {
    auto second = OutboxStore::open(config.state_db_file());
    if (!second) return second.error();
    service->readiness_store_.emplace(std::move(*second));
    auto* s = service.get();
    s->status_server_ = std::make_unique<StatusServer>([s] { return s->metrics_.registry.render(); },
                                                       [s] { return s->readiness(); }, s->logger_);
    auto port = s->status_server_->start(config.metrics_address, *config.metrics_port);
    if (!port) return port.error();
    s->logger_->info("status server listening address=http://{}:{} endpoints=/metrics,/readyz",
                     config.metrics_address, *port);
  }
  return service;
}

SenderService::SenderService(const SenderConfig& config, Logger logger, OutboxStore store,
                             std::shared_ptr<KeyRing> keys)
    : config_(config),
      logger_(std::move(logger)),
      store_(std::move(store)),
      keys_(std::move(keys)),
      spool_dir_(config.status_db_path + "/spool"),
      discovery_(config_, logger_),
      disposal_(config_),
      probe_uploader_(upload_target(config), cancel_) {
  for (int i = 0; i < config_.upload_concurrency; ++i) {
    uploaders_.push_back(std::make_unique<Uploader>(upload_target(config_), cancel_));
  }
  remove_spool_leftovers(spool_dir_);
  store_.set_group_commit(kStateCommitWindow, [this] { discovery_.watcher().wake(); });  // run() flushes it when due
  load_settled();
  if (auto v = store_.data_version(); v) data_version_ = *v;
}

void SenderService::load_settled() {
  discovery_.settled().clear();
  if (auto settled = store_.settled(); settled) {
    for (const auto& e : *settled) {
      const bool in_place_quarantine = e.state == OutboxState::kQuarantined && e.quarantine_path.empty();
      const bool kept = e.state == OutboxState::kDelivered && config_.on_success == SenderConfig::OnSuccess::kKeep;
      if (in_place_quarantine || kept) discovery_.settled()[e.name] = FileStamp{e.size, e.mtime_ns, 0};
    }
  }
}

void SenderService::notice_operator_changes() {
  auto v = store_.data_version();
  if (!v || *v == data_version_) return;
  data_version_ = *v;
  // Another connection committed: an operator's `sender retry` or `sender forget`. Forget what
  // was decided from the old rows; the next pass asks the database again.
  logger_->info("state database changed by another process: re-reading it");
  load_settled();
  for (auto& [name, c] : discovery_.candidates()) c.not_before = Clock::now();
  discovery_.rescan();
}

FernetKey SenderService::current_key() {
  auto changed = keys_->refresh();
  if (!changed) {
    logger_->error("key file unusable, still encrypting with the key loaded before: {}", changed.error().message);
  } else if (*changed) {
    logger_->info("key file reloaded path={} keys={} (the first line encrypts from now on)",
                  log_value(config_.key_path), keys_->keys()->size());
  }
  return keys_->keys()->front();
}

void SenderService::note_receiver_answer(bool answered, const std::string& error) {
  metrics_.receiver_up.set(answered ? 1 : 0);
  std::lock_guard lock(readiness_mu_);
  if (answered) {
    last_answer_unix_ = wall_now();
    last_contact_error_.clear();
  } else {
    last_contact_error_ = error;
  }
}

void SenderService::probe_receiver_if_quiet() {
  {
    std::lock_guard lock(readiness_mu_);
    if (wall_now() - last_answer_unix_ < config_.scan_interval_s) return;
  }
  const auto r = probe_uploader_.probe();
  note_receiver_answer(r.status != 0, r.error);
}

Readiness SenderService::readiness() {
  Readiness r;
  std::lock_guard lock(readiness_mu_);
  Status db = readiness_store_ ? readiness_store_->probe_write(250)
                               : Status(make_error(ErrorCode::kDatabase, "no status connection"));
  r.add("state_db", db ? db : Status(make_error(ErrorCode::kDatabase, "state database cannot be written: " + db.error().message)),
        config_.state_db_file() + " takes writes");
  std::error_code ec;
  std::filesystem::directory_iterator it(config_.input_dir, ec);
  r.add("input_readable", ec ? Status(errno_error("cannot list", config_.input_dir, ec.value())) : ok_status(),
        config_.input_dir + " can be listed");
  const double window = 2 * config_.scan_interval_s + config_.connect_timeout_s;
  const double ago = wall_now() - last_answer_unix_;
  Status receiver = ok_status();
  if (last_answer_unix_ <= 0 || ago > window) {
    receiver = make_error(ErrorCode::kIo, (last_answer_unix_ <= 0 ? std::string("the receiver has not answered yet")
                                                                   : "the receiver last answered " + std::to_string(static_cast<int64_t>(ago)) + "s ago") +
                                              (last_contact_error_.empty() ? "" : " (" + last_contact_error_ + ")"));
  }
  r.add("receiver", receiver, "answered " + std::to_string(static_cast<int64_t>(ago)) + "s ago (window " +
                                  std::to_string(static_cast<int64_t>(window)) + "s)");
  return r;
}

void SenderService::update_backlog_metrics() {
  // A walk over every candidate: at most ten times a second, not once per file, while busy.
  const auto now = Clock::now();
  if (!in_flight_.empty() && now < next_backlog_update_) return;
  next_backlog_update_ = now + std::chrono::milliseconds(100);
  double oldest = 0;
  for (const auto& [name, c] : discovery_.candidates()) {
    if (oldest == 0 || c.waiting_since_unix < oldest) oldest = c.waiting_since_unix;
  }
  metrics_.backlog.set(static_cast<double>(discovery_.candidates().size()));
  metrics_.oldest_pending_since.store(oldest);
}

SenderService::~SenderService() = default;

void SenderService::stop() {
  if (stopping_.exchange(true)) return;
  discovery_.watcher().wake();
  drain_.start(config_.drain_timeout_s, [this] {
    logger_->warn("drain timeout after {}s: abandoning the upload in flight (it is retried at the next start)",
                  config_.drain_timeout_s);
    cancel_ = true;
    for (auto& u : uploaders_) u->abort();
  });
}

ScanSummary SenderService::run() {
  logger_->info("watching input_dir={} receiver={} interval_s={} min_file_age_s={} inotify={}",
                log_value(config_.input_dir), probe_uploader_.url_for("<name>"), config_.scan_interval_s,
                config_.min_file_age_s, discovery_.watcher().active() ? "on" : "off");
  if (config_.use_inotify && !discovery_.watcher().active()) {
    logger_->warn("inotify unavailable ({}); rescans every {}s only", discovery_.watcher().setup_error(),
                  config_.scan_interval_s);
  }
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(config_.scan_interval_s));
  discovery_.rescan();
  if (!config_.once) probe_receiver_if_quiet();
  auto next_scan = Clock::now() + interval;
  for (size_t i = 0; i < uploaders_.size(); ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  std::deque<Finished> done;
  while (!stopping_) {
    take_finished(done);
    while (!done.empty()) {  // results taken here or just before the wait below
      apply(std::move(done.front()));
      done.pop_front();
    }
    auto now = Clock::now();
    // Hand ready files, in name order, to the workers: one queued behind each running one, so a
    // worker that finishes starts its next file without waiting for this thread.
    const size_t max_in_flight = 2 * uploaders_.size();
    for (auto it = discovery_.candidates().begin(); it != discovery_.candidates().end() && !stopping_ &&
                                        in_flight_.size() < max_in_flight;
         ++it) {
      Candidate& c = it->second;
      if (in_flight_.count(it->first) || (config_.once && c.tried_in_once_mode) || now < c.not_before ||
          !discovery_.is_quiet(c, now)) {
        continue;
      }
      dispatch(it->first, c);
    }
    if (stopping_) break;
    auto wake = config_.once ? now + std::chrono::seconds(60) : next_scan;
    bool waiting = !in_flight_.empty();
    // With the queue full a finishing worker wakes this thread: the earliest ready time of the
    // others matters only when there is room (and a full walk per file would be quadratic).
    if (in_flight_.size() < max_in_flight) {
      for (const auto& [name, c] : discovery_.candidates()) {
        if ((config_.once && c.tried_in_once_mode) || in_flight_.count(name)) continue;
        waiting = true;
        wake = std::min(wake, discovery_.ready_at(c));
      }
    }
    if (config_.once && !waiting) break;
    update_backlog_metrics();
    if (!config_.once) wake = std::min(wake, Clock::now() + std::chrono::seconds(1));  // operator changes
    // The workers' state writes are committed in groups: once due (by the next write, or here:
    // a new batch wakes this thread, which then waits until it falls due), at once when the
    // workers are all idle.
    if (auto st = in_flight_.empty() ? store_.flush() : store_.flush_if_due(); !st) {
      logger_->error("state database: {} (the steps of the last {} ms are redone)", st.error().message,
                     kStateCommitWindow.count());
    }
    if (const auto due = store_.batch_due()) wake = std::min(wake, *due);
    if (take_finished(done)) continue;  // a worker finished while we looked: apply it first
    const auto events = discovery_.watcher().wait_until(wake);  // a finishing worker wakes it
    for (const auto& name : events.names) {
      if (!is_ignored_name(name, config_.ignore_globs)) discovery_.observe(name);
    }
    if (!config_.once) notice_operator_changes();
    if (events.needs_rescan || Clock::now() >= next_scan) {
      discovery_.rescan();
      if (!config_.once) probe_receiver_if_quiet();
      next_scan = Clock::now() + interval;
    }
  }
  stop_workers();  // the uploads in flight finish (or the drain deadline cancels them)
  while (take_finished(done)) {
    while (!done.empty()) {
      apply(std::move(done.front()));
      done.pop_front();
    }
  }
  if (auto st = store_.flush(); !st) logger_->error("state database: {}", st.error().message);
  drain_.finished();
  if (summary_.delivered + summary_.failed + summary_.quarantined > 0 || config_.once) {
    logger_->info("{} delivered={} already_delivered={} failed={} quarantined={}",
                  stopping_ ? "stopped" : "done", summary_.delivered, summary_.already_delivered,
                  summary_.failed, summary_.quarantined);
  } else {
    logger_->info("stopped");
  }
  return summary_;
}

void SenderService::dispatch(const std::string& name, Candidate& c) {
  in_flight_.insert(name);
  {
    std::lock_guard lock(work_mu_);
    jobs_.push_back(Job{name, c});
  }
  work_ready_.notify_one();
}

void SenderService::worker_loop(size_t index) {
  Uploader& uploader = *uploaders_[index];
  for (;;) {
    Job job;
    {
      std::unique_lock lock(work_mu_);
      work_ready_.wait(lock, [this] { return !jobs_.empty() || workers_exit_; });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    StepResult r = process_file(job.name, job.candidate, uploader);
    {
      std::lock_guard lock(work_mu_);
      finished_.push_back(Finished{std::move(job.name), job.candidate.stamp, std::move(r)});
    }
    discovery_.watcher().wake();
  }
}

bool SenderService::take_finished(std::deque<Finished>& out) {
  std::lock_guard lock(work_mu_);
  if (finished_.empty()) return false;
  for (auto& f : finished_) out.push_back(std::move(f));
  finished_.clear();
  return true;
}

void SenderService::stop_workers() {
  {
    std::lock_guard lock(work_mu_);
    workers_exit_ = true;
    jobs_.clear();  // handed out but not started: they stay candidates for the next run
  }
  work_ready_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

void SenderService::apply(Finished&& f) {
  in_flight_.erase(f.name);
  StepResult& r = f.result;
  switch (r.tally) {
    case Tally::kNone: break;
    case Tally::kDelivered: ++summary_.delivered; break;
    case Tally::kAlreadyDelivered: ++summary_.already_delivered; break;
    case Tally::kFailed: ++summary_.failed; break;
    case Tally::kQuarantined: ++summary_.quarantined; break;
  }
  if (r.settle) discovery_.settled()[f.name] = *r.settle;
  auto it = discovery_.candidates().find(f.name);
  // Gone meanwhile, or seen with another stamp while it was being sent: that newer version
  // stays a candidate of its own.
  if (it == discovery_.candidates().end() || !(it->second.stamp == f.dispatched)) return;
  Candidate& c = it->second;
  switch (r.step) {
    case Step::kDone:
    case Step::kGone: discovery_.candidates().erase(it); break;
    case Step::kRetryLater:
      c.not_before = r.retry_at;
      c.tried_in_once_mode = true;
      break;
    case Step::kChanged:
      if (r.restarted) c = *r.restarted;  // its stamp and quiet period restarted
      break;
    case Step::kStopped: break;
  }
}

SenderService::StepResult SenderService::process_file(const std::string& name, Candidate c, Uploader& uploader) {
  const std::string path = config_.input_dir + "/" + name;
  const std::string field = log_value(name);
  const auto later = [&] {
    return StepResult{Step::kRetryLater, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                            std::chrono::duration<double>(std::max(1.0, config_.scan_interval_s)))};
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    if (errno == ENOENT) return {Step::kGone};
    logger_->warn("cannot open file={} error={} (will retry)", field, log_value(std::strerror(errno)));
    return later();
  }
  if (!S_ISREG(st.st_mode)) return {Step::kGone};
  const FileStamp stamp = stamp_of(st);
  if (!(stamp == c.stamp)) {
    StepResult changed{Step::kChanged};
    changed.restarted = Candidate{stamp, Clock::now(), Clock::now(), false, c.waiting_since_unix};
    return changed;
  }
  std::optional<std::string> content;  // small files: read once, here
  Result<std::string> sha = std::string();
  if (stamp.size <= kInMemoryInputLimit) {
    auto text = read_small_file(fd.get(), path, stamp.size);
    struct stat after {};
    if (text && (::fstat(fd.get(), &after) != 0 || !(stamp_of(after) == stamp) ||
                 static_cast<int64_t>(text->size()) != stamp.size)) {
      StepResult changed{Step::kChanged};  // written to while we read it
      changed.restarted = Candidate{stamp_of(after), Clock::now(), Clock::now(), false, c.waiting_since_unix};
      return changed;
    }
    if (text) {
      Sha256 h;
      h.update(text->data(), text->size());
      sha = h.hex_digest();
      content = std::move(*text);
    } else {
      sha = text.error();
    }
  } else {
    sha = sha256_of_fd(fd.get(), path, [this] { return cancel_.load(); });
    if (sha && ::lseek(fd.get(), 0, SEEK_SET) != 0) sha = errno_error("cannot rewind", path, errno);
  }
  if (!sha) {
    if (sha.error().code == ErrorCode::kCancelled) return {Step::kStopped};
    logger_->warn("cannot read file={} error={} (will retry)", field, log_value(sha.error().message));
    return later();
  }
  auto known = store_.find(name, *sha);
  if (!known) {
    logger_->error("state database: {} (file={} will be retried)", known.error().message, field);
    return later();
  }
  if (!*known) metrics_.discovered.add();
  if (*known) {
    const OutboxEntry& e = **known;
    switch (e.state) {
      case OutboxState::kDelivered: {
        if (auto s = store_.record_seen(name, *sha, stamp.size, stamp.mtime_ns); !s) {
          logger_->error("state database: {}", s.error().message);
        }
        after_delivery(name, path);
        StepResult done{Step::kDone};
        done.tally = Tally::kAlreadyDelivered;
        if (config_.on_success == SenderConfig::OnSuccess::kKeep) done.settle = stamp;
        return done;
      }
      case OutboxState::kQuarantined:
        if (e.quarantine_path.empty()) {  // stayed in place: not retried until its content changes
          StepResult done{Step::kDone};
          done.settle = stamp;
          return done;
        }
        logger_->info("file={} is back from quarantine: retrying it from scratch", field);
        if (auto s = store_.reset(name, *sha); !s) {
          logger_->error("state database: {}", s.error().message);
          return later();
        }
        break;
      case OutboxState::kFailed: {
        const double wait = e.next_attempt_unix - wall_now();
        if (wait > 0) {  // backoff from an earlier run; still waiting, not delivered (--once exits 1)
          return {Step::kRetryLater,
                  Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait)),
                  Tally::kFailed};
        }
        break;
      }
      case OutboxState::kPending: break;
    }
  }
  if (auto s = store_.record_seen(name, *sha, stamp.size, stamp.mtime_ns); !s) {
    logger_->error("state database: {} (file={} will be retried)", s.error().message, field);
    return later();
  }
  StepResult r = attempt_upload(name, path, fd.get(), stamp, *sha, content ? &*content : nullptr, uploader);
  if (r.step == Step::kChanged) r.restarted = Candidate{stamp, Clock::now(), Clock::now(), false, c.waiting_since_unix};
  return r;
}

SenderService::StepResult SenderService::attempt_upload(const std::string& name,
                                                        const std::string& path, int fd,
                                                        const FileStamp& stamp,
                                                        const std::string& sha, const std::string* content,
                                                        Uploader& uploader) {
  const auto started = std::chrono::steady_clock::now();
  const std::string field = log_value(name);
  const std::string transfer_id = new_transfer_id();
  auto permanent = [&](const std::string& why, int status = 0, const std::string& body = {}) {
    auto entry = store_.find(name, sha);
    const int64_t attempts = entry && *entry ? (*entry)->attempts : 0;
    return quarantine(name, path, sha, FailureRecord{why, status, body, wall_now(), 0}, attempts + 1);
  };
  auto transient = [&](const std::string& why, int status = 0, const std::string& body = {},
                       const std::string& retry_after = {}) -> StepResult {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const double now = wall_now();
    auto entry = store_.find(name, sha);
    const int64_t attempts = (entry && *entry ? (*entry)->attempts : 0) + 1;
    const double first = entry && *entry && (*entry)->first_failure_unix > 0 ? (*entry)->first_failure_unix : now;
    FailureRecord f{why, status, body, now, 0};
    if (should_give_up(attempts, first, now, config_.retry)) {
      f.error = "gave up after " + std::to_string(attempts) + " attempts over " +
                std::to_string(static_cast<int64_t>(now - first)) + "s; last error: " + why;
      return quarantine(name, path, sha, f, attempts);
    }
    const double delay = backoff_delay(attempts, config_.retry,
                                       std::uniform_real_distribution<double>(0, 1)(rng),
                                       parse_retry_after(retry_after, now));
    f.next_attempt_unix = now + delay;
    if (auto s = store_.mark_failed(name, sha, f); !s) logger_->error("state database: {}", s.error().message);
    logger_->warn("failed file={} error={} attempt={} retry_in_s={:.2f} transfer_id={}", field,
                  log_value(why), attempts, delay, transfer_id);
    metrics_.failures.add();
    return {Step::kRetryLater,
            Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay)),
            Tally::kFailed};
  };

  const std::string upload_name = upload_name_for_file(name);
  if (auto valid = validate_upload_name(upload_name); !valid) return permanent(valid.error().message);

  JsonToXmlOptions options;
  options.max_depth = config_.max_depth;
  std::optional<TokenSpoolSink> spool;
  std::optional<FileJsonSource> file_source;
  std::optional<MemoryJsonSource> memory_source;
  MemoryXmlSink memory;
  if (content) {
    memory_source.emplace(*content);
  } else {
    auto temp = create_temp_file(spool_dir_, "xml");
    if (!temp) return transient(temp.error().message);
    spool.emplace(std::move(*temp), current_key(), stamp.size >= kEncryptBesideInputSize);
    file_source.emplace(fd, path, cancel_);
  }
  JsonSource& source = content ? static_cast<JsonSource&>(*memory_source) : *file_source;
  XmlSink& sink = content ? static_cast<XmlSink&>(memory) : *spool;
  auto converted = convert_json_to_xml(source, sink, options, name);
  if (converted && spool) {
    if (auto st = spool->finish(); !st) converted = st.error();
  }
  if (!converted) {
    const auto code = converted.error().code;
    if (code == ErrorCode::kCancelled) return {Step::kStopped};
    if (code == ErrorCode::kInvalidJson || code == ErrorCode::kTooDeep) return permanent(converted.error().message);
    return transient(converted.error().message);
  }
  struct stat after {};
  if ((file_source && file_source->sha256() != sha) || ::fstat(fd, &after) != 0 || !(stamp_of(after) == stamp)) {
    logger_->info("file={} changed while it was read: waiting for it to settle", field);
    return {Step::kChanged};
  }
  const std::string xml_sha = content ? memory.sha256() : spool->sha256();
  const auto upload_started = std::chrono::steady_clock::now();
  const UploadIdentity identity{idempotency_key(name, sha), xml_sha, transfer_id};
  if (spool && spool->token_bytes() != fernet_token_length(converted->xml_bytes)) {
    return transient("spooled token of " + std::to_string(spool->token_bytes()) + " bytes for " +
                     std::to_string(converted->xml_bytes) + " bytes of XML: not the Fernet length");
  }
  const auto response = content ? uploader.upload_buffer(upload_name, memory.xml, identity, current_key())
                                : uploader.upload_token_file(upload_name, spool->path(), spool->token_bytes(), identity,
                                                             spool->key());
  if (response.cancelled) return {Step::kStopped};
  note_receiver_answer(response.status != 0, response.error);
  if (response.status != 0) {
    metrics_.upload_seconds.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - upload_started).count());
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (response.status == 0) return transient(response.error);
  switch (classify_status(response.status)) {
    case AttemptVerdict::kTransient:
      return transient(answer_message(response), response.status, response.body, response.retry_after);
    case AttemptVerdict::kPermanent:
      return permanent(answer_message(response), response.status, response.body);
    case AttemptVerdict::kDelivered: break;
  }
  bool duplicate = false;
  try {  // a receiver that reports the plaintext digest (ours does) must have stored what we sent
    const auto answer = nlohmann::json::parse(response.body);
    if (answer.contains("sha256") && answer.at("sha256").get<std::string>() != xml_sha) {
      return transient("the receiver stored different bytes (sha256 mismatch)", 201, response.body);
    }
    duplicate = answer.value("duplicate", false);
  } catch (const nlohmann::json::exception&) {
  }
  if (auto s = store_.mark_delivered(name, sha, 201, response.body); !s) {
    // Not recorded: the next scan sends it again and the receiver answers it as a duplicate.
    logger_->error("state database: {} (file={} was delivered)", s.error().message, field);
    return {Step::kRetryLater, Clock::now() + std::chrono::seconds(1)};
  }
  metrics_.delivered.add();
  metrics_.last_success.set(wall_now());
  logger_->info("delivered file={} name={} transfer_id={} json_bytes={} xml_bytes={} ms={:.1f} status=201{}", field,
                log_value(upload_name), transfer_id, converted->json_bytes, converted->xml_bytes, ms,
                duplicate ? " duplicate=true" : "");
  after_delivery(name, path);
  StepResult delivered{Step::kDone};
  delivered.tally = Tally::kDelivered;
  if (config_.on_success == SenderConfig::OnSuccess::kKeep) delivered.settle = stamp;
  return delivered;
}

SenderService::StepResult SenderService::quarantine(const std::string& name, const std::string& path,
                                                    const std::string& sha, const FailureRecord& failure,
                                                    int64_t attempts) {
  const std::string reason = "file: " + name + "\nerror: " + failure.error + "\ntime: " + iso_time(failure.now_unix) +
                             "\nattempts: " + std::to_string(attempts) + "\nsha256: " + sha + "\n" +
                             (failure.receiver_status ? "receiver_status: " + std::to_string(failure.receiver_status) + "\n" : "");
  const QuarantineResult q = disposal_.quarantine(name, path, reason);
  if (auto s = store_.mark_quarantined(name, sha, failure, q.moved_to); !s) {
    logger_->error("state database: {}", s.error().message);
  }
  metrics_.quarantined.add();
  StepResult done{Step::kDone};
  done.tally = Tally::kQuarantined;
  if (q.moved_to.empty()) {
    struct stat now_st {};
    if (::stat(path.c_str(), &now_st) == 0) done.settle = stamp_of(now_st);
    logger_->error("quarantined file={} error={} attempts={} (cannot move it: {}; it stays in place and "
                   "is not retried until its content changes)",
                   log_value(name), log_value(failure.error), attempts, q.error);
  } else {
    logger_->error("quarantined file={} error={} attempts={} moved_to={}", log_value(name),
                   log_value(failure.error), attempts, log_value(q.moved_to));
  }
  return done;
}

void SenderService::after_delivery(const std::string& name, const std::string& path) {
  if (config_.on_success == SenderConfig::OnSuccess::kKeep) return;
  // The delivered mark is committed before the input goes: the state never names a pending
  // file that is no longer there.
  if (auto st = store_.flush(); !st) {
    logger_->error("state database: {} (delivered file={} stays in place; the next scan resends it)",
                   st.error().message, log_value(name));
    return;
  }
  if (auto st = disposal_.delivered(name, path); !st) {
    logger_->error("cannot {} delivered file={} error={} (retried at the next scan)",
                   config_.on_success == SenderConfig::OnSuccess::kDelete ? "delete" : "move", log_value(name),
                   log_value(st.error().message));
  }
}

}  // namespace transfer::sender
