#include "sender_config.hpp"

#include <algorithm>
#include <thread>
#include <tuple>

#include "destination_directory.hpp"
#include "transfer/logging.hpp"
#include "transfer/tls_files.hpp"

namespace transfer::sender {

const std::vector<OptionSpec>& sender_options() {
  static const std::vector<OptionSpec> kOptions = {
      {"input-dir", "INPUT_DIR", "/usr/src/app-sender/input", "Directory scanned (not recursively) for *.json files"},
      {"encryption-key", "ENCRYPTION_KEY", "/run/secrets/encryption_key", "Path of the key file (base64 of 32 bytes; the first line encrypts)"},
      {"scan-interval", "SCAN_INTERVAL", "5", "Seconds between scans of the input directory (with inotify working, at least 50 times what the last listing took)"},
      {"status-db-path", "STATUS_DB_PATH", "/usr/src/app-sender/status-db", "Directory of the state database sender.db (and the XML spool)"},
      {"receiver-address", "RECEIVER_ADDRESS", "127.0.0.1", "Receiver host name or address"},
      {"receiver-port", "RECEIVER_PORT", "8080", "Receiver port"},
      {"receiver-uri", "RECEIVER_URI", "/upload", "Path prefix of the upload endpoint; files go to <uri>/<name>"},
      {"log-level", "LOG_LEVEL", "info", "debug, info, warning, error or critical"},
      {"max-depth", "MAX_DEPTH", std::to_string(kDefaultMaxDepth),
       "Deepest JSON nesting accepted (deeper files are quarantined); the default keeps the XML, "
       "one level deeper, within libxml2's default limit of 256 nested elements"},
      {"max-input-bytes", "MAX_INPUT_BYTES", "0", "Largest input file taken, in bytes (suffixes K, M, G); a larger one is quarantined unread (0: no limit)"},
      {"connect-timeout", "CONNECT_TIMEOUT", "10", "Seconds to wait for a connection to the receiver"},
      {"io-timeout", "IO_TIMEOUT", "60", "Seconds a send or a wait for the answer may stall"},
      {"min-file-age", "MIN_FILE_AGE", "1", "Seconds a file's size and mtime must stay unchanged before it is taken (0: at once)"},
      {"ignore-globs", "IGNORE_GLOBS", "", "Comma-separated name patterns to leave alone, besides dot-files and *.tmp *.part *.partial *.swp"},
      {"inotify", "INOTIFY", "on", "on: pick files up at once through inotify (rescans still run); off: rescans only"},
      {"retry-base-delay", "RETRY_BASE_DELAY", "1", "Seconds: first backoff ceiling after a transient failure (doubles each time, full jitter)"},
      {"retry-max-delay", "RETRY_MAX_DELAY", "300", "Seconds: the most a retry waits (also caps Retry-After)"},
      {"max-attempts", "MAX_ATTEMPTS", "0", "Quarantine a file after this many failed attempts (0: no limit)"},
      {"max-age", "MAX_AGE", "86400", "Quarantine a file still failing this many seconds after its first failure (0: no limit)"},
      {"quarantine-dir", "QUARANTINE_DIR", "", "Where given-up files go, each with a <file>.reason (default $INPUT_DIR/.quarantine)"},
      {"on-success", "ON_SUCCESS", "keep", "After delivery: keep, delete or move:<dir>"},
      {"drain-timeout", "DRAIN_TIMEOUT", "10", "Seconds an in-flight upload may take to finish after SIGTERM"},
      {"upload-concurrency", "UPLOAD_CONCURRENCY", "0", "Files converted and uploaded at once, each over its own keep-alive connection (0: one per CPU core)"},
      {"log-format", "LOG_FORMAT", "text", "text, or json: one JSON object per line (time, level, event and the fields)"},
      {"metrics-port", "METRICS_PORT", "", "Serve GET /metrics (Prometheus) and GET /readyz on this port (empty: off; 0: any free port, logged)"},
      {"metrics-address", "METRICS_ADDRESS", "127.0.0.1", "Address for METRICS_PORT (0.0.0.0 to be scraped from elsewhere)"},
      {"metrics-max-connections", "METRICS_MAX_CONNECTIONS", "256", "Open connections to METRICS_PORT in all (beyond it the oldest idle one is closed; 64 per client address); the sender raises its open-file limit to fit them beside its own files and uploads, or lowers this to what fits"},
      {"receiver-scheme", "RECEIVER_SCHEME", "http", "http (as the old pair) or https (the receiver's certificate is verified, host name included)"},
      {"ca-file", "CA_FILE", "", "With https: PEM certificates of the CA(s) to trust for the receiver (empty: the system's CAs)"},
      {"client-cert-file", "CLIENT_CERT_FILE", "", "With https: PEM client certificate for mutual TLS; needs CLIENT_KEY_FILE"},
      {"client-key-file", "CLIENT_KEY_FILE", "", "PEM private key of CLIENT_CERT_FILE (read like the Fernet key: never logged)"},
      {"destinations-file", "DESTINATIONS_FILE", "", "JSON file listing the receivers to deliver every file to, each with its own key (see README, Fan-out); empty: the RECEIVER_* options and ENCRYPTION_KEY describe one destination named default"},
      {"xml-root", "XML_ROOT", "all", "XML mapping: the element around the document (json2xml's wrapper, dicttoxml's custom_root)"},
      {"xml-type-attrs", "XML_TYPE_ATTRS", "on", "XML mapping: on: type=\"str\" etc. on every element (dicttoxml's attr_type); off: none"},
      {"xml-item-name", "XML_ITEM_NAME", "item", "XML mapping: the element of each list member (dicttoxml's item_func)"},
      {"xml-item-wrap", "XML_ITEM_WRAP", "on", "XML mapping: off: list members take the list's key as element name and the list element disappears (json2xml's item_wrap=False)"},
      {"xml-pretty", "XML_PRETTY", "on", "XML mapping: on: minidom's toprettyxml (tabs, newlines); off: the compact form dicttoxml returns"},
      {"xml-declaration", "XML_DECLARATION", "on", "XML mapping: on: the <?xml ...?> declaration; off: none"},
      {"xml-cdata", "XML_CDATA", "off", "XML mapping: on: text as CDATA sections (dicttoxml's cdata)"},
      {"once", "", "", "Process every file present once and exit: 0 if all delivered, 1 if any failed or was quarantined", true},
      {"health-check", "", "", "Check, beside a running sender, that the input is readable and the state directory and database usable; exit 0 if so, else 1 (a HEALTHCHECK)", true},
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
  c.destinations_file = v.get("destinations-file");
  c.status_db_path = v.get("status-db-path");
  c.receiver_address = v.get("receiver-address");
  c.receiver_uri = v.get("receiver-uri");
  c.log_level = v.get("log-level");
  c.once = v.is_set("once");
  c.health_check = v.is_set("health-check");
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
  c.xml.max_depth = c.max_depth;
  auto max_input = parse_size(v.get("max-input-bytes"), "MAX_INPUT_BYTES");
  if (!max_input) return bad(max_input.error());
  c.max_input_bytes = static_cast<int64_t>(*max_input);
  c.xml.root = v.get("xml-root");
  c.xml.item_name = v.get("xml-item-name");
  for (auto [flag, variable, into] : {std::tuple{"xml-type-attrs", "XML_TYPE_ATTRS", &c.xml.type_attrs},
                                 std::tuple{"xml-item-wrap", "XML_ITEM_WRAP", &c.xml.item_wrap},
                                 std::tuple{"xml-pretty", "XML_PRETTY", &c.xml.pretty},
                                 std::tuple{"xml-declaration", "XML_DECLARATION", &c.xml.declaration},
                                 std::tuple{"xml-cdata", "XML_CDATA", &c.xml.cdata}}) {
    const std::string value = v.get(flag);
    if (value != "on" && value != "off")
      return bad(make_error(ErrorCode::kInvalidArgument, std::string(variable) + " must be on or off, not '" + value + "'"));
    *into = value == "on";
  }
  if (auto st = check_json_to_xml_options(c.xml); !st) return bad(st.error());
  auto ct = parse_seconds(v.get("connect-timeout"), "CONNECT_TIMEOUT");
  if (!ct) return bad(ct.error());
  c.connect_timeout_s = *ct;
  auto io = parse_seconds(v.get("io-timeout"), "IO_TIMEOUT");
  if (!io) return bad(io.error());
  c.io_timeout_s = *io;
  auto age = parse_seconds(v.get("min-file-age"), "MIN_FILE_AGE");
  if (!age) return bad(age.error());
  c.min_file_age_s = *age;
  for (size_t start = 0; start <= v.get("ignore-globs").size();) {
    const std::string& all = v.get("ignore-globs");
    size_t end = all.find(',', start);
    if (end == std::string::npos) end = all.size();
    std::string glob = all.substr(start, end - start);
    glob.erase(0, glob.find_first_not_of(' '));
    glob.erase(glob.find_last_not_of(' ') + 1);
    if (!glob.empty()) c.ignore_globs.push_back(glob);
    start = end + 1;
  }
  const std::string inotify = v.get("inotify");
  if (inotify != "on" && inotify != "off") return bad(make_error(ErrorCode::kInvalidArgument, "INOTIFY must be on or off, not '" + inotify + "'"));
  c.use_inotify = inotify == "on";
  auto base = parse_seconds(v.get("retry-base-delay"), "RETRY_BASE_DELAY");
  if (!base) return bad(base.error());
  auto cap = parse_seconds(v.get("retry-max-delay"), "RETRY_MAX_DELAY");
  if (!cap) return bad(cap.error());
  auto attempts = parse_integer(v.get("max-attempts"), "MAX_ATTEMPTS", 0, 1LL << 40);
  if (!attempts) return bad(attempts.error());
  auto max_age = parse_seconds(v.get("max-age"), "MAX_AGE");
  if (!max_age) return bad(max_age.error());
  c.retry = RetrySettings{*base, *cap, *attempts, *max_age};
  c.quarantine_dir = v.get("quarantine-dir");
  if (c.quarantine_dir.empty()) c.quarantine_dir = c.input_dir + "/.quarantine";
  const std::string on_success = v.get("on-success");
  if (on_success == "keep") {
    c.on_success = SenderConfig::OnSuccess::kKeep;
  } else if (on_success == "delete") {
    c.on_success = SenderConfig::OnSuccess::kDelete;
  } else if (on_success.rfind("move:", 0) == 0 && on_success.size() > 5) {
    c.on_success = SenderConfig::OnSuccess::kMove;
    c.on_success_dir = on_success.substr(5);
  } else {
    return bad(make_error(ErrorCode::kInvalidArgument, "ON_SUCCESS must be keep, delete or move:<dir>, not '" + on_success + "'"));
  }
  // A symlink in place of either directory would choose where the sender writes: refused now,
  // and again at each use.
  if (auto st = check_destination_directory(c.quarantine_dir, "QUARANTINE_DIR"); !st) {
    return bad(st.error());
  }
  if (c.on_success == SenderConfig::OnSuccess::kMove) {
    if (auto st = check_destination_directory(c.on_success_dir, "ON_SUCCESS move target"); !st) {
      return bad(st.error());
    }
  }
  auto drain = parse_seconds(v.get("drain-timeout"), "DRAIN_TIMEOUT");
  if (!drain) return bad(drain.error());
  c.drain_timeout_s = *drain;
  auto concurrency = parse_integer(v.get("upload-concurrency"), "UPLOAD_CONCURRENCY", 0, 64);
  if (!concurrency) return bad(concurrency.error());
  c.upload_concurrency = static_cast<int>(*concurrency);
  if (c.upload_concurrency == 0) c.upload_concurrency = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  c.log_format = v.get("log-format");
  if (auto f = parse_log_format(c.log_format); !f) return bad(f.error());
  if (!v.get("metrics-port").empty()) {
    auto mp = parse_integer(v.get("metrics-port"), "METRICS_PORT", 0, 65535);
    if (!mp) return bad(mp.error());
    c.metrics_port = static_cast<int>(*mp);
  }
  c.metrics_address = v.get("metrics-address");
  auto metrics_connections = parse_integer(v.get("metrics-max-connections"), "METRICS_MAX_CONNECTIONS", 16, 100000);
  if (!metrics_connections) return bad(metrics_connections.error());
  c.metrics_max_connections = static_cast<size_t>(*metrics_connections);
  c.receiver_scheme = v.get("receiver-scheme");
  if (c.receiver_scheme != "http" && c.receiver_scheme != "https") {
    return bad(make_error(ErrorCode::kInvalidArgument, "RECEIVER_SCHEME must be http or https, not '" + c.receiver_scheme + "'"));
  }
  c.ca_file = v.get("ca-file");
  c.client_cert_file = v.get("client-cert-file");
  c.client_key_file = v.get("client-key-file");
  const bool tls_files = !c.ca_file.empty() || !c.client_cert_file.empty() || !c.client_key_file.empty();
  if (tls_files && c.receiver_scheme != "https") {
    return bad(make_error(ErrorCode::kInvalidArgument, "CA_FILE, CLIENT_CERT_FILE and CLIENT_KEY_FILE need RECEIVER_SCHEME=https"));
  }
  if (auto st = check_tls_files({c.client_cert_file, c.client_key_file, c.ca_file}, "CLIENT_CERT_FILE",
                                "CLIENT_KEY_FILE", "CA_FILE");
      !st) {
    return bad(st.error());
  }
  return c;
}

}  // namespace transfer::sender
