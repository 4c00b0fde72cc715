#include "receiver_service.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "transfer/file_util.hpp"

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

}  // namespace

Result<std::unique_ptr<ReceiverService>> ReceiverService::create(const ReceiverConfig& config,
                                                                  Logger logger) {
  auto keys = load_key_file(config.key_path);
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
  UploadSettings settings;
  settings.output_dir = config.output_dir;
  settings.keys = std::move(*keys);
  settings.max_upload_bytes = config.max_upload_bytes;
  settings.ttl_seconds = config.token_ttl;
  logger->info("key loaded path={} keys={}", log_value(config.key_path), settings.keys.size());
  return std::unique_ptr<ReceiverService>(
      new ReceiverService(config, std::move(logger), std::move(*ledger), std::move(settings), *policy));
}

ReceiverService::ReceiverService(const ReceiverConfig& config, Logger logger, UploadLedger ledger,
                                 UploadSettings settings, ConflictPolicy policy)
    : config_(config),
      logger_(std::move(logger)),
      ledger_(std::move(ledger)),
      settings_(std::move(settings)),
      committer_(settings_.output_dir, policy, settings_.fsync, ledger_),
      server_(HttpServerOptions{config.server_ip, config.server_port, config.threads,
                                config.read_timeout_s, config.queue_limit},
              settings_, committer_,
              [this](const std::string& n, const UploadOutcome& o, const std::string& p, double ms) {
                on_upload(n, o, p, ms);
              },
              logger_) {}

Result<int> ReceiverService::start() {
  auto port = server_.bind();
  if (!port) return port.error();
  logger_->info("listening address=http://{}:{} output_dir={} threads={}", config_.server_ip, *port,
                log_value(config_.output_dir), config_.threads);
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
  drain_.start(config_.drain_timeout_s, [this] {
    logger_->warn("drain timeout: abandoning in-flight uploads={} (their temporary files are removed "
                  "at the next start; senders retry)", server_.uploads_in_flight());
    logger_->flush();
    std::_Exit(0);
  });
}

void ReceiverService::on_upload(const std::string& name, const UploadOutcome& outcome,
                                const std::string& peer, double ms) {
  Status st = ok_status();
  if (outcome.status == 201) {
    logger_->info("upload {} name={} bytes={} sha256={} status=201 ms={:.1f} peer={} key={} path={}",
                  outcome.duplicate ? "duplicate (answered from the ledger)" : "accepted",
                  log_value(name), outcome.bytes, outcome.sha256, ms, peer, outcome.key_index,
                  log_value(outcome.output_path));
    if (!outcome.warning.empty()) logger_->error("name={} {}", log_value(name), outcome.warning);
  } else {
    logger_->warn("upload rejected name={} status={} reason={} ms={:.1f} peer={}", log_value(name),
                  outcome.status, log_value(outcome.message), ms, peer);
    st = ledger_.record_rejected(name, outcome.status, outcome.message, peer);
  }
  if (!st) logger_->error("ledger write failed: {}", st.error().message);
}

}  // namespace transfer::receiver
