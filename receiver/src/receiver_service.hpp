#pragma once
// The receiver as a whole: key, ledger, output directory and HTTP server, started and stopped.

#include <atomic>
#include <memory>

#include "content_checks.hpp"
#include "http_server.hpp"
#include "output_committer.hpp"
#include "receiver_config.hpp"
#include "read_access.hpp"
#include "receiver_metrics.hpp"
#include "upload_recorder.hpp"
#include "transfer/readiness.hpp"
#include "transfer/drain_deadline.hpp"
#include "transfer/logging.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer::receiver {

class ReceiverService {
 public:
  // Loads the key (kInvalidKey when missing or malformed), opens the ledger (a damaged one is
  // moved aside and reported), prepares the output directory (removing temporary files a crash
  // left behind).
  static Result<std::unique_ptr<ReceiverService>> create(const ReceiverConfig& config, Logger logger);

  // Binds the socket, logs the address and writes the ready file. Returns the port.
  Result<int> start();
  // Serves until stop() (from a signal); in-flight uploads get DRAIN_TIMEOUT to finish, after
  // which the process exits 0 anyway (their temporary files are removed at the next start and
  // the senders retry).
  Status run();
  void stop();

  // GET /readyz: the key file loads, the output directory takes a new file, free space is at
  // least MIN_FREE_BYTES, the ledger's write lock can be taken within 250 ms, and (when set) the
  // schema is loaded and clamd answers zPING.
  Readiness readiness();

 private:
  ReceiverService(const ReceiverConfig& config, Logger logger, UploadLedger ledger, UploadSettings settings,
                  ConflictPolicy policy, SignaturePolicy signatures, std::unique_ptr<ContentChecks> checks);
  void refresh_keys();
  ReceiverApi api();

  ReceiverConfig config_;
  Logger logger_;
  UploadLedger ledger_;
  std::unique_ptr<ContentChecks> checks_;
  UploadSettings settings_;
  UploadGate gate_;
  OutputCommitter committer_;
  ReceiverMetrics metrics_;
  UploadRecorder recorder_;
  ReadAccess read_access_;
  HttpServer server_;
  std::atomic<bool> stopping_{false};
  DrainDeadline drain_;
};

}  // namespace transfer::receiver
