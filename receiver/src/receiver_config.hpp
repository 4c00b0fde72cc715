#pragma once
// The receiver's options: one table for flags, environment and --help.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "transfer/config.hpp"

namespace transfer::receiver {

struct ReceiverConfig {
  std::string output_dir;
  std::string key_path;
  std::string server_ip;
  int server_port = 8080;
  std::string status_db_path;
  std::string log_level;
  unsigned long long max_upload_bytes = 0;
  int threads = 8;
  std::optional<uint64_t> token_ttl;
  double read_timeout_s = 30;
  std::string ready_file;
  std::string on_conflict = "overwrite";
  double drain_timeout_s = 10;
  unsigned long long min_body_rate = 1024;
  double header_timeout_s = 10;
  double keep_alive_timeout_s = 30;
  double answer_timeout_s = 10;          // the whole answer, however slowly the client reads
  uint64_t refusal_log_rate = 20;        // log lines per minute per refusal reason
  uint64_t refusal_retention_days = 30;  // refusals kept in the ledger ...
  uint64_t refusal_retention_rows = 100000;  // ... at most this many
  std::string files_access = "open";     // open, signed or off: GET /files, /files/<name>
  std::string metrics_access = "open";   // open, signed or off: GET /metrics
  unsigned long long max_head_bytes = 64 * 1024;
  size_t max_headers = 100;
  size_t max_connections = 10000;
  size_t max_connections_per_client = 256;
  std::string upload_signatures = "optional";  // or required
  uint64_t signature_window_s = 300;
  size_t replay_memory = 65536;  // signatures remembered to refuse replays
  unsigned long long unsigned_upload_budget = 2ULL << 30;
  unsigned long long min_free_bytes = 64ULL << 20;
  bool fsync = true;  // FSYNC=off: no fsync of files or the directory (as unsafe as the old pair)
  std::string xml_check = "wellformed";  // or off
  size_t xml_max_depth = 256;
  size_t xml_max_attributes = 32;               // per start tag
  unsigned long long xml_max_construct = 1 << 20;  // one tag, comment, PI, CDATA, DOCTYPE, ...
  size_t xml_max_namespaces = 64;               // declarations in scope at once
  size_t xml_max_names = 100000;                // distinct names in one upload
  std::string xml_schema;           // an XSD every upload must be valid against
  std::string clamd_address;        // scan uploads with clamd
  double clamd_timeout_s = 60;
  std::string scan_quarantine_dir;  // keep what clamd refused here
  std::string log_format = "text";
  std::string tls_cert_file;   // with tls_key_file: serve HTTPS
  std::string tls_key_file;
  std::string client_ca_file;  // require client certificates signed by this CA (mTLS)
  bool health_check = false;  // --health-check: probe a running receiver and exit
};

const std::vector<OptionSpec>& receiver_options();

inline bool uses_tls(const ReceiverConfig& c) { return !c.tls_cert_file.empty(); }

// --help/--version/errors come back as EarlyExit; bad values as an error naming the option.
std::variant<ReceiverConfig, EarlyExit> load_receiver_config(const std::vector<std::string>& args,
                                                             const EnvLookup& env);

}  // namespace transfer::receiver
