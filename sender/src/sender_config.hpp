#pragma once
// The sender's options: one table for flags, environment and --help.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "retry_policy.hpp"
#include "transfer/config.hpp"
#include "transfer/json_to_xml.hpp"

namespace transfer::sender {

struct SenderConfig {
  std::string input_dir;
  std::string key_path;
  double scan_interval_s = 5;
  std::string status_db_path;
  std::string receiver_address;
  int receiver_port = 8080;
  std::string receiver_uri;
  std::string log_level;
  size_t max_depth = kDefaultMaxDepth;  // JSON nesting; the XML is one deeper (json_to_xml.hpp)
  int64_t max_input_bytes = 0;  // larger inputs are quarantined unread (input_screen.hpp); 0: no limit
  double connect_timeout_s = 10;
  double io_timeout_s = 60;
  bool once = false;
  bool health_check = false;  // --health-check: check a running sender's resources and exit
  double min_file_age_s = 1;              // quiet period before a file is taken
  std::vector<std::string> ignore_globs;  // besides dot-files and *.tmp *.part *.partial *.swp
  bool use_inotify = true;
  RetrySettings retry;
  std::string quarantine_dir;             // default $INPUT_DIR/.quarantine
  enum class OnSuccess { kKeep, kDelete, kMove } on_success = OnSuccess::kKeep;
  std::string on_success_dir;             // for kMove
  double drain_timeout_s = 10;
  int upload_concurrency = 1;             // files converted and uploaded at once (0 in the option: one per core)
  std::string log_format = "text";
  std::optional<int> metrics_port;        // serve /metrics and /readyz here (0: any free port)
  std::string metrics_address = "127.0.0.1";
  size_t metrics_max_connections = 256;   // connections to METRICS_PORT in all
  std::string receiver_scheme = "http";   // or https
  std::string ca_file;                    // trust anchors for https (empty: the system's)
  std::string client_cert_file;           // mutual TLS
  std::string client_key_file;
  std::string destinations_file;          // DESTINATIONS_FILE: several receivers (destinations.hpp)
  JsonToXmlOptions xml;                   // XML_*: the mapping (max_depth is MAX_DEPTH's)

  std::string state_db_file() const { return status_db_path + "/sender.db"; }
};

const std::vector<OptionSpec>& sender_options();
std::variant<SenderConfig, EarlyExit> load_sender_config(const std::vector<std::string>& args,
                                                         const EnvLookup& env);

}  // namespace transfer::sender
