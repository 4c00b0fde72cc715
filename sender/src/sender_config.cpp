#include "sender_config.hpp"

namespace transfer::sender {

const std::vector<OptionSpec>& sender_options() {
  static const std::vector<OptionSpec> kOptions = {
      {"input-dir", "INPUT_DIR", "/usr/src/app-sender/input", "Directory scanned (not recursively) for *.json files"},
      {"encryption-key", "ENCRYPTION_KEY", "/run/secrets/encryption_key", "Path of the key file (base64 of 32 bytes; the first line encrypts)"},
      {"scan-interval", "SCAN_INTERVAL", "5", "Seconds between scans of the input directory"},
      {"status-db-path", "STATUS_DB_PATH", "/usr/src/app-sender/status-db", "Directory of the state database sender.db (and the XML spool)"},
      {"receiver-address", "RECEIVER_ADDRESS", "127.0.0.1", "Receiver host name or address"},
      {"receiver-port", "RECEIVER_PORT", "8080", "Receiver port"},
      {"receiver-uri", "RECEIVER_URI", "/upload", "Path prefix of the upload endpoint; files go to <uri>/<name>"},
      {"log-level", "LOG_LEVEL", "info", "debug, info, warning, error or critical"},
      {"max-depth", "MAX_DEPTH", "512", "Deepest JSON nesting accepted (deeper files are rejected)"},
      {"connect-timeout", "CONNECT_TIMEOUT", "10", "Seconds to wait for a connection to the receiver"},
      {"io-timeout", "IO_TIMEOUT", "60", "Seconds a send or a wait for the answer may stall"},
      {"once", "", "", "Scan once, process every file and exit: 0 if all delivered, 1 if any failed or was rejected", true},
  };
  return kOptions;
}

std::variant<SenderConfig, EarlyExit> load_sender_config(const std::vector<std::string>& args,
                                                         const EnvLookup& env) {
  const ProgramInfo info{"sender",
                         "Watches a directory for JSON files, converts each to XML, encrypts it "
                         "(Fernet) and uploads it to the receiver.",
                         TRANSFER_VERSION};
  auto parsed = parse_options(info, sender_options(), args, env);
  if (auto* exit = std::get_if<EarlyExit>(&parsed)) return *exit;
  const auto& v = std::get<OptionValues>(parsed);
  auto bad = [](const Error& e) { return EarlyExit{2, {}, "sender: " + e.message + "\n"}; };

  SenderConfig c;
  c.input_dir = v.get("input-dir");
  c.key_path = v.get("encryption-key");
  c.status_db_path = v.get("status-db-path");
  c.receiver_address = v.get("receiver-address");
  c.receiver_uri = v.get("receiver-uri");
  c.log_level = v.get("log-level");
  c.once = v.is_set("once");
  while (!c.receiver_uri.empty() && c.receiver_uri.back() == '/') c.receiver_uri.pop_back();
  if (!c.receiver_uri.empty() && c.receiver_uri.front() != '/') c.receiver_uri = "/" + c.receiver_uri;
  auto interval = parse_seconds(v.get("scan-interval"), "SCAN_INTERVAL");
  if (!interval) return bad(interval.error());
  c.scan_interval_s = *interval;
  auto port = parse_integer(v.get("receiver-port"), "RECEIVER_PORT", 1, 65535);
  if (!port) return bad(port.error());
  c.receiver_port = static_cast<int>(*port);
  auto depth = parse_integer(v.get("max-depth"), "MAX_DEPTH", 1, 100000);
  if (!depth) return bad(depth.error());
  c.max_depth = static_cast<size_t>(*depth);
  auto ct = parse_seconds(v.get("connect-timeout"), "CONNECT_TIMEOUT");
  if (!ct) return bad(ct.error());
  c.connect_timeout_s = *ct;
  auto io = parse_seconds(v.get("io-timeout"), "IO_TIMEOUT");
  if (!io) return bad(io.error());
  c.io_timeout_s = *io;
  return c;
}

}  // namespace transfer::sender
