#include "receiver_config.hpp"

#include <algorithm>
#include <thread>

#include "output_committer.hpp"
#include "transfer/logging.hpp"
#include "transfer/tls_files.hpp"

namespace transfer::receiver {

const std::vector<OptionSpec>& receiver_options() {
  static const std::vector<OptionSpec> kOptions = {
      {"output-dir", "OUTPUT_DIR", "/usr/src/app-receiver/output", "Directory the decrypted <name>.xml files are written to"},
      {"decryption-key", "DECRYPTION_KEY", "/run/secrets/decryption_key", "Path of the key file (base64 of 32 bytes; one key per line, any may decrypt)"},
      {"server-ip", "SERVER_IP", "127.0.0.1", "Address to listen on (0.0.0.0 for all)"},
      {"server-port", "SERVER_PORT", "8080", "Port to listen on (0 picks a free port, logged and written to --ready-file)"},
      {"status-db-path", "STATUS_DB_PATH", "/usr/src/app-receiver/status-db", "Directory of the upload ledger receiver.db"},
      {"log-level", "LOG_LEVEL", "info", "debug, info, warning, error or critical"},
      {"max-upload-bytes", "MAX_UPLOAD_BYTES", "16G", "Largest upload body accepted (413 above it); suffixes K, M, G"},
      {"threads", "THREADS", "0", "Uploads and connections handled concurrently (0: four per core, at least 16)"},
      {"token-ttl", "TOKEN_TTL", "0", "Refuse tokens older than this many seconds (0: no limit, as the old pair)"},
      {"read-timeout", "READ_TIMEOUT", "30", "Seconds a client may stall while sending"},
      {"ready-file", "READY_FILE", "", "Write the listening port to this file once ready"},
      {"on-conflict", "ON_CONFLICT", "overwrite", "A name uploaded again with other content: overwrite, reject (409) or version (<name>.1.xml, ...)"},
      {"drain-timeout", "DRAIN_TIMEOUT", "10", "Seconds in-flight uploads may take to finish after SIGTERM"},
      {"queue-limit", "QUEUE_LIMIT", "32", "Accepted connections that may wait for a thread (then the kernel backlog)"},
      {"min-free-bytes", "MIN_FREE_BYTES", "64M", "GET /readyz answers 503 when the output file system has less free space than this; suffixes K, M, G"},
      {"fsync", "FSYNC", "on", "on: a 201 means the file and its name are on disk (fsync of the file, then of the directory); off: skip both (faster, but a power loss can lose or empty files already answered 201, as with the old pair)"},
      {"log-format", "LOG_FORMAT", "text", "text, or json: one JSON object per line (time, level, event and the fields)"},
      {"tls-cert-file", "TLS_CERT_FILE", "", "PEM certificate (chain) to serve HTTPS with; needs TLS_KEY_FILE (empty: plain HTTP, as the old pair)"},
      {"tls-key-file", "TLS_KEY_FILE", "", "PEM private key of TLS_CERT_FILE (read like the Fernet key: never logged)"},
      {"client-ca-file", "CLIENT_CA_FILE", "", "With TLS: require client certificates signed by a CA in this PEM file (mutual TLS)"},
      {"health-check", "", "", "Probe GET /readyz of the receiver these options describe (0.0.0.0 means 127.0.0.1) and exit 0 if it answers 200 within 3 s, else 1 (a HEALTHCHECK without curl)", true},
  };
  return kOptions;
}

std::variant<ReceiverConfig, EarlyExit> load_receiver_config(const std::vector<std::string>& args,
                                                             const EnvLookup& env) {
  const ProgramInfo info{"receiver",
                         "Receives Fernet-encrypted XML uploads (POST /upload/<name>), decrypts "
                         "them and writes <name>.xml atomically to the output directory.",
                         TRANSFER_VERSION};
  auto parsed = parse_options(info, receiver_options(), args, env);
  if (auto* exit = std::get_if<EarlyExit>(&parsed)) return *exit;
  const auto& v = std::get<OptionValues>(parsed);
  auto bad = [](const Error& e) { return EarlyExit{2, {}, "receiver: " + e.message + "\n"}; };

  ReceiverConfig c;
  c.output_dir = v.get("output-dir");
  c.key_path = v.get("decryption-key");
  c.server_ip = v.get("server-ip");
  c.status_db_path = v.get("status-db-path");
  c.log_level = v.get("log-level");
  c.ready_file = v.get("ready-file");
  auto port = parse_integer(v.get("server-port"), "SERVER_PORT", 0, 65535);
  if (!port) return bad(port.error());
  c.server_port = static_cast<int>(*port);
  auto max = parse_size(v.get("max-upload-bytes"), "MAX_UPLOAD_BYTES");
  if (!max) return bad(max.error());
  c.max_upload_bytes = *max;
  auto threads = parse_integer(v.get("threads"), "THREADS", 0, 1024);
  if (!threads) return bad(threads.error());
  // 0: four per core, at least 16. cpp-httplib gives each keep-alive connection a thread for as
  // long as it stays open, so fewer threads than busy clients makes the others queue.
  c.threads = *threads > 0 ? static_cast<int>(*threads)
                           : std::max(16, 4 * static_cast<int>(std::thread::hardware_concurrency()));
  auto ttl = parse_integer(v.get("token-ttl"), "TOKEN_TTL", 0, 1LL << 40);
  if (!ttl) return bad(ttl.error());
  if (*ttl > 0) c.token_ttl = static_cast<uint64_t>(*ttl);
  auto rt = parse_seconds(v.get("read-timeout"), "READ_TIMEOUT");
  if (!rt) return bad(rt.error());
  c.read_timeout_s = *rt;
  c.on_conflict = v.get("on-conflict");
  if (auto p = parse_conflict_policy(c.on_conflict); !p) return bad(p.error());
  auto drain = parse_seconds(v.get("drain-timeout"), "DRAIN_TIMEOUT");
  if (!drain) return bad(drain.error());
  c.drain_timeout_s = *drain;
  auto queue = parse_integer(v.get("queue-limit"), "QUEUE_LIMIT", 1, 100000);
  if (!queue) return bad(queue.error());
  c.queue_limit = static_cast<int>(*queue);
  auto min_free = parse_size(v.get("min-free-bytes"), "MIN_FREE_BYTES");
  if (!min_free) return bad(min_free.error());
  c.min_free_bytes = *min_free;
  const std::string fsync = v.get("fsync");
  if (fsync != "on" && fsync != "off") {
    return bad(make_error(ErrorCode::kInvalidArgument, "FSYNC must be on or off, not '" + fsync + "'"));
  }
  c.fsync = fsync == "on";
  c.log_format = v.get("log-format");
  if (auto f = parse_log_format(c.log_format); !f) return bad(f.error());
  c.tls_cert_file = v.get("tls-cert-file");
  c.tls_key_file = v.get("tls-key-file");
  c.client_ca_file = v.get("client-ca-file");
  if (!c.client_ca_file.empty() && c.tls_cert_file.empty()) {
    return bad(make_error(ErrorCode::kInvalidArgument, "CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE (mutual TLS is on top of TLS)"));
  }
  if (auto st = check_tls_files({c.tls_cert_file, c.tls_key_file, c.client_ca_file}, "TLS_CERT_FILE",
                                "TLS_KEY_FILE", "CLIENT_CA_FILE");
      !st) {
    return bad(st.error());
  }
  c.health_check = v.is_set("health-check");
  return c;
}

}  // namespace transfer::receiver
