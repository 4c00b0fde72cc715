#include "receiver_service.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "ledger_api.hpp"
#include "transfer/file_util.hpp"
#include "transfer/process.hpp"

namespace transfer::receiver {
namespace {

// Hidden temporary files of uploads interrupted by a crash: ".upload-<hex>.tmp".
void remove_stale_temps(const std::string& dir, const Logger& logger) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".upload-", 0) == 0 && name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
      if (::unlink(entry.path().c_str()) == 0) {
        logger->warn("removed leftover temporary file path={}", log_value(entry.path().string()));
      }
    }
  }
}

// The first second whose signatures this process accepts: the one after it started (the
// process before may have accepted signatures timed in the second it was stopped).
uint64_t signatures_not_before_now() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return signatures_not_before(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(now).count()));
}

HttpServerOptions http_options(const ReceiverConfig& c) {
  HttpServerOptions o;
  o.host = c.server_ip;
  o.port = c.server_port;
  o.threads = c.threads;
  o.read_timeout_s = c.read_timeout_s;
  o.min_body_rate = static_cast<double>(c.min_body_rate);
  o.front.head_limits.max_head_bytes = c.max_head_bytes;
  o.front.head_limits.max_headers = c.max_headers;
  o.front.head_timeout_s = c.header_timeout_s;
  o.front.keep_alive_timeout_s = c.keep_alive_timeout_s;
  o.front.answer_timeout_s = c.answer_timeout_s;
  o.front.max_connections = c.max_connections;
  o.front.max_per_client = c.max_connections_per_client;
  o.cert_file = c.tls_cert_file;
  o.key_file = c.tls_key_file;
  o.client_ca_file = c.client_ca_file;
  return o;
}

}  // namespace

Result<std::unique_ptr<ReceiverService>> ReceiverService::create(const ReceiverConfig& config,
                                                                  Logger logger) {
  auto keys = KeyRing::load(config.key_path);
  if (!keys) return keys.error();
  for (const auto& dir : {config.output_dir, config.status_db_path}) {
    if (auto st = ensure_directory(dir); !st) return st.error();
  }
  if (::access(config.output_dir.c_str(), W_OK) != 0) {
    return errno_error("output directory is not writable:", config.output_dir, errno);
  }
  remove_stale_temps(config.output_dir, logger);
  const std::string db_path = config.status_db_path + "/receiver.db";
  // A damaged ledger is kept for inspection and reported; output files already written are
  // still recognised by content when a sender retries them.
  auto ledger = open_moving_aside_if_damaged(
      db_path, [](const std::string& p) { return UploadLedger::open(p); },
      [&](const std::string& why, const std::string& aside) {
        logger->error("{}; moved it aside to {} and started a new ledger", why, log_value(aside));
      });
  if (!ledger) return ledger.error();
  auto policy = parse_conflict_policy(config.on_conflict);
  if (!policy) return policy.error();
  // Each connection is a descriptor; files, the ledger and the listener need some more.
  constexpr size_t kSpareDescriptors = 256;
  const size_t open_files = raise_open_file_limit(config.max_connections + kSpareDescriptors);
  ReceiverConfig adjusted = config;
  if (open_files < config.max_connections + kSpareDescriptors) {
    adjusted.max_connections = open_files > 2 * kSpareDescriptors ? open_files - kSpareDescriptors : open_files / 2;
    logger->warn("MAX_CONNECTIONS={} does not fit the open-file limit {}: using {} (raise the limit with ulimit -n "
                 "or the container's nofile setting)", config.max_connections, open_files, adjusted.max_connections);
  }
  UploadSettings settings;
  settings.output_dir = config.output_dir;
  settings.keys = std::move(*keys);
  settings.max_upload_bytes = config.max_upload_bytes;
  settings.ttl_seconds = config.token_ttl;
  settings.fsync = config.fsync;
  if (!config.fsync) {
    logger->warn("FSYNC=off: files answered 201 may be lost or empty after a power loss or kernel crash");
  }
  logger->info("key loaded path={} keys={}", log_value(config.key_path), settings.keys->keys()->size());
  if (config.upload_signatures != "required") {
    logger->warn("UPLOAD_SIGNATURES=optional: uploads without a signature are accepted, so anyone who can reach "
                 "this port may make the receiver store up to UNSIGNED_UPLOAD_BUDGET={} bytes at a time before "
                 "their token is found invalid (set UPLOAD_SIGNATURES=required once every sender signs)",
                 config.unsigned_upload_budget);
  }
  if (const std::string warning = settings.keys->access_warning(); !warning.empty()) logger->warn("{}", warning);
  auto checks = ContentChecks::create(config, logger);
  if (!checks) return checks.error();
  logger->info("plaintext checks {}", (*checks)->describe());
  return std::unique_ptr<ReceiverService>(
      new ReceiverService(adjusted, std::move(logger), std::move(*ledger), std::move(settings), *policy,
                          *parse_signature_policy(config.upload_signatures), std::move(*checks)));
}

ReceiverService::ReceiverService(const ReceiverConfig& config, Logger logger, UploadLedger ledger,
                                 UploadSettings settings, ConflictPolicy policy, SignaturePolicy signatures,
                                 std::unique_ptr<ContentChecks> checks)
    : config_(config),
      logger_(std::move(logger)),
      ledger_(std::move(ledger)),
      checks_(std::move(checks)),
      settings_(std::move(settings)),
      gate_(UploadGateSettings{signatures, config.signature_window_s, config.unsigned_upload_budget,
                               config.min_free_bytes,
                               static_cast<size_t>(std::max(1, config.threads / 2)),
                               signatures_not_before_now(), config.replay_memory},
            settings_.keys, [dir = config.output_dir] { return free_bytes(dir); }),
      committer_(settings_.output_dir, policy, settings_.fsync, ledger_, settings_.create_lock),
      metrics_([this] { return static_cast<double>(server_.uploads_in_flight()); },
               [this] {
                 auto free = free_bytes(config_.output_dir);
                 return free ? static_cast<double>(*free) : 0.0;
               }),
      recorder_(ledger_, metrics_, config.refusal_log_rate,
                RefusalRetention{static_cast<int64_t>(config.refusal_retention_days),
                                 static_cast<int64_t>(config.refusal_retention_rows)},
                logger_),
      read_access_(*parse_access(config.files_access, "FILES_ACCESS"),
                   *parse_access(config.metrics_access, "METRICS_ACCESS"), gate_),
      server_(http_options(config), settings_, gate_, committer_,
              [this](const UploadEvent& e) { recorder_.record(e); }, api(), logger_) {
  recorder_.prune();
  checks_->observe_scans([this](const CheckVerdict& v, double seconds) { metrics_.record_scan(v, seconds); });
  settings_.checks = [this](uint64_t expected_bytes) { return checks_->make(expected_bytes); };
  settings_.keep_refused = [this](const std::string& temp_path, int fd, const std::string& name,
                                  const CheckVerdict& verdict) { checks_->keep_refused(temp_path, fd, name, verdict); };
}

ReceiverApi ReceiverService::api() {
  ReceiverApi a;
  a.readiness = [this] {
    const Readiness r = readiness();
    return PlainResponse{r.http_status(), "application/json", r.json(), {}};
  };
  a.metrics = [this] {
    refresh_keys();
    return PlainResponse{200, kMetricsContentType, metrics_.render(), {}};
  };
  a.list_files = [this](const std::map<std::string, std::string>& q) { return list_files(ledger_, q); };
  a.file = [this](const std::string& name) { return describe_file(ledger_, name); };
  a.authorize = [this](const http::RequestHead& head, Endpoint endpoint) {
    return read_access_.check(head, endpoint, static_cast<uint64_t>(std::time(nullptr)));
  };
  a.before_upload = [this] {
    refresh_keys();
    checks_->refresh();
  };
  return a;
}

void ReceiverService::refresh_keys() {
  const bool had_error = settings_.keys->error().has_value();
  auto changed = settings_.keys->refresh();
  if (!changed) {
    if (!had_error) {
      logger_->error("key file unusable, keeping the keys loaded before: {}", changed.error().message);
    }
    return;
  }
  if (*changed || had_error) {
    logger_->info("key file reloaded path={} keys={}", log_value(config_.key_path),
                  settings_.keys->keys()->size());
  }
}

Readiness ReceiverService::readiness() {
  recorder_.flush_log_counts();
  Readiness r;
  refresh_keys();
  const auto key_error = settings_.keys->error();
  r.add("key", key_error ? Status(*key_error) : ok_status(),
        std::to_string(settings_.keys->keys()->size()) + " key(s) loaded from " + config_.key_path);
  r.add("output_writable", check_directory_writable(config_.output_dir), config_.output_dir + " takes new files");
  auto free = free_bytes(config_.output_dir);
  Status space = ok_status();
  if (!free) {
    space = free.error();
  } else if (*free < config_.min_free_bytes) {
    space = make_error(ErrorCode::kNoSpace, std::to_string(*free) + " bytes free in " + config_.output_dir +
                                                ", below MIN_FREE_BYTES=" + std::to_string(config_.min_free_bytes));
  }
  r.add("free_space", space,
        (free ? std::to_string(*free) : std::string("?")) + " bytes free, MIN_FREE_BYTES=" +
            std::to_string(config_.min_free_bytes));
  auto db = ledger_.probe_write(250);
  r.add("database", db ? db : Status(make_error(ErrorCode::kDatabase, "ledger cannot be written: " + db.error().message)),
        "ledger answers");
  checks_->add_readiness(r);
  return r;
}

Result<int> ReceiverService::start() {
  // The gate refuses signatures timed before its not_before (the second after this process
  // started: the process before may have accepted them). Listen only from then on, so a sender
  // whose clock agrees never meets that refusal (at most a second's wait).
  std::this_thread::sleep_until(std::chrono::system_clock::time_point(std::chrono::seconds(gate_.not_before())));
  auto port = server_.bind();
  if (!port) return port.error();
  metrics_.watch(*server_.front_stats(), server_.route_stats(), [this] { return static_cast<double>(gate_.unsigned_bytes_in_flight()); });
  logger_->info("listening address={}://{}:{} output_dir={} threads={}{}", uses_tls(config_) ? "https" : "http",
                config_.server_ip, *port, log_value(config_.output_dir), config_.threads,
                config_.client_ca_file.empty() ? "" : " client_certificates=required");
  if (!config_.ready_file.empty()) {
    if (auto st = write_file_atomic(config_.ready_file, std::to_string(*port) + "\n"); !st) {
      return st.error();
    }
  }
  return *port;
}

Status ReceiverService::run() {
  auto st = server_.serve();
  drain_.finished();
  logger_->info("stopped");
  return st;
}

void ReceiverService::stop() {
  if (stopping_.exchange(true)) return;
  logger_->info("stopping: no new connections, draining in-flight uploads={} timeout_s={}",
                server_.uploads_in_flight(), config_.drain_timeout_s);
  server_.stop();
  recorder_.flush_log_counts();
  drain_.start(config_.drain_timeout_s, [this] {
    logger_->warn("drain timeout: abandoning in-flight uploads={} (their temporary files are removed "
                  "at the next start; senders retry)", server_.uploads_in_flight());
    logger_->flush();
    std::_Exit(0);
  });
}

}  // namespace transfer::receiver
