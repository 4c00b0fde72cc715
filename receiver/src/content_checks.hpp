#pragma once
// The receiver's plaintext checks as configured (XML_CHECK, XML_MAX_DEPTH, XML_SCHEMA,
// CLAMD_ADDRESS, CLAMD_TIMEOUT, SCAN_QUARANTINE_DIR): makes each upload's CheckPipeline, reloads
// the schema file when it changes, keeps what the virus scan refused, and reports the schema and
// clamd in /readyz. Thread-safe.

#include <memory>
#include <optional>
#include <string>

#include "clamd_client.hpp"
#include "plaintext_check.hpp"
#include "receiver_config.hpp"
#include "scan_quarantine.hpp"
#include "transfer/logging.hpp"
#include "transfer/readiness.hpp"
#include "virus_scan_check.hpp"
#include "xml_check.hpp"

namespace transfer::receiver {

// Uploads (Content-Length) from this size are XML-checked beside their decryption.
inline constexpr uint64_t kCheckBesideBytes = 8ULL << 20;

class ContentChecks {
 public:
  // Loads the schema (kInvalidArgument with libxml2's message when it is not usable) and parses
  // the clamd address.
  static Result<std::unique_ptr<ContentChecks>> create(const ReceiverConfig& config, Logger logger);
  // Told of every virus scan (metrics); set before the first upload.
  void observe_scans(ScanObserver observer) { observer_ = std::move(observer); }

  // The checks of one upload: the virus scan first (its verdict wins: a document with a virus is
  // kept for forensics even if it is not XML either), then the XML check.
  // An upload of at least kCheckBesideBytes has its XML check on a thread of its own.
  CheckPipeline make(uint64_t expected_bytes) const;
  // Re-reads XML_SCHEMA if it changed (one stat() when not); logs a schema that no longer loads.
  void refresh();
  // Keeps a refused upload's plaintext when the virus scan refused it and SCAN_QUARANTINE_DIR is
  // set.
  void keep_refused(const std::string& temp_path, int fd, const std::string& name,
                    const CheckVerdict& verdict) const;
  // "xml_schema": loaded (and whether a newer file failed); "clamd": zPING and zVERSION.
  void add_readiness(Readiness& r);
  // For the start line: "xml=wellformed schema=... clamd=...".
  std::string describe() const;

 private:
  ContentChecks(const ReceiverConfig& config, Logger logger, std::shared_ptr<SchemaFile> schema,
                std::optional<ClamdAddress> clamd);

  bool xml_;
  XmlLimits limits_;
  Logger logger_;
  std::shared_ptr<SchemaFile> schema_;
  std::optional<ClamdAddress> clamd_;
  ClamdTimeouts timeouts_;
  std::optional<ScanQuarantine> quarantine_;
  ScanObserver observer_;
};

}  // namespace transfer::receiver
