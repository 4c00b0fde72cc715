#pragma once
// The sender: scans the input directory, and for each *.json file not yet delivered with the
// same content converts it to XML (spooled in the state directory), uploads it encrypted, and
// records the outcome in sender.db. A file counts as delivered only after a 201.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "sender_config.hpp"
#include "transfer/logging.hpp"
#include "transfer/outbox_store.hpp"
#include "uploader.hpp"

namespace transfer::sender {

struct ScanSummary {
  int delivered = 0;          // delivered in this scan
  int already_delivered = 0;  // skipped: same name and content delivered before
  int failed = 0;             // transient failures (retried on a later scan)
  int rejected = 0;           // permanent refusals (not retried until the content changes)
};

class SenderService {
 public:
  // Loads the key (kInvalidKey when missing or malformed) and opens the state database.
  static Result<std::unique_ptr<SenderService>> create(const SenderConfig& config, Logger logger);

  // Scans until stop(); with config.once, scans once. Returns the last scan's summary.
  ScanSummary run();
  ScanSummary scan_once();
  void stop();

 private:
  enum class FileOutcome { kDelivered, kAlreadyDelivered, kFailed, kRejected, kSkipped };
  SenderService(const SenderConfig& config, Logger logger, OutboxStore store, FernetKey key);
  FileOutcome process_file(const std::string& file_name);

  SenderConfig config_;
  Logger logger_;
  OutboxStore store_;
  std::string spool_dir_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  Uploader uploader_;
};

}  // namespace transfer::sender
