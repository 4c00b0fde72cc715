#pragma once
// The receiver as a whole: key, ledger, output directory and HTTP server, started and stopped.

#include <memory>

#include "http_server.hpp"
#include "receiver_config.hpp"
#include "transfer/logging.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer::receiver {

class ReceiverService {
 public:
  // Loads the key (kInvalidKey when missing or malformed), opens the ledger, prepares the
  // output directory (removing temporary files a crash left behind).
  static Result<std::unique_ptr<ReceiverService>> create(const ReceiverConfig& config, Logger logger);

  // Binds the socket, logs the address and writes the ready file. Returns the port.
  Result<int> start();
  // Serves until stop() (from a signal); in-flight uploads finish first.
  Status run();
  void stop();

 private:
  ReceiverService(const ReceiverConfig& config, Logger logger, UploadLedger ledger,
                  UploadSettings settings);
  void on_upload(const std::string& name, const UploadOutcome& outcome, const std::string& peer,
                 double ms);

  ReceiverConfig config_;
  Logger logger_;
  UploadLedger ledger_;
  UploadSettings settings_;
  HttpServer server_;
};

}  // namespace transfer::receiver
