#include "receiver_config.hpp"

#include <algorithm>
#include <thread>
#include <tuple>

#include "clamd_client.hpp"
#include "output_committer.hpp"
#include "upload_gate.hpp"
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
      {"threads", "THREADS", "0", "Uploads served at once (0: four per core, at least 16), of which unsigned uploads may take half; requests without a body have 3 workers of their own (one only for /readyz), and idle, slow or unread connections hold none (the connection front reads every head and writes every answer)"},
      {"token-ttl", "TOKEN_TTL", "0", "Refuse tokens older than this many seconds (0: no limit, as the old pair)"},
      {"read-timeout", "READ_TIMEOUT", "30", "Seconds an upload's body may stall between two pieces"},
      {"min-body-rate", "MIN_BODY_RATE", "1K", "Bytes per second an upload's body must average after READ_TIMEOUT's grace (the deadline grows by one second per MIN_BODY_RATE bytes received), so a trickle cannot hold a worker; suffixes K, M"},
      {"header-timeout", "HEADER_TIMEOUT", "10", "Seconds the whole request head may take to arrive, from the accept (on a kept-alive connection, from the next request's first byte) to its empty line (408 beyond)"},
      {"keep-alive-timeout", "KEEP_ALIVE_TIMEOUT", "30", "Seconds an idle keep-alive connection stays open between two requests"},
      {"answer-timeout", "ANSWER_TIMEOUT", "10", "Seconds a client may take to read one whole answer; one that does not read is disconnected (answers are written by the connection front: a client that does not read never holds a worker)"},
      {"files-access", "FILES_ACCESS", "open", "Who may read the ledger (GET /files, /files/<name>: names, sizes, plaintext SHA-256): open (anyone who reaches the port, as before), signed (a GET signed like an upload, with X-Transfer-Signature: `sender sign-request /files`; 401 otherwise) or off (404)"},
      {"metrics-access", "METRICS_ACCESS", "open", "Who may read GET /metrics (counts and names of destinations, checks and refusals): open, signed or off, as FILES_ACCESS"},
      {"refusal-log-rate", "REFUSAL_LOG_RATE", "20", "Log lines per minute for each reason uploads are refused for; beyond it refusals are only counted (metrics) and one line then says how many were not logged"},
      {"refusal-retention-days", "REFUSAL_RETENTION_DAYS", "30", "Days a refused upload stays in the ledger's upload log (only refusals of clients that proved a key are recorded; the others go to metrics and the rate-limited log)"},
      {"refusal-retention-rows", "REFUSAL_RETENTION_ROWS", "100000", "Most refused uploads kept in the ledger's upload log (the oldest are deleted first)"},
      {"max-head-bytes", "MAX_HEAD_BYTES", "64K", "Largest request head (request line and header fields; 431 beyond); suffixes K, M"},
      {"max-headers", "MAX_HEADERS", "100", "Most header fields in one request (431 beyond)"},
      {"max-connections", "MAX_CONNECTIONS", "10000", "Open connections in all; beyond it the oldest idle connection is closed to make room (the process raises its open-file limit to fit)"},
      {"upload-signatures", "UPLOAD_SIGNATURES", "optional", "required: uploads must carry a valid X-Transfer-Signature (our sender signs every upload; 401 before a byte of body is read otherwise); optional: unsigned uploads are accepted as from the old Python sender, a present signature must still be valid"},
      {"signature-window", "SIGNATURE_WINDOW", "300", "Seconds a signed upload's time may be from the receiver's clock, either way (a signature is accepted once)"},
      {"replay-memory", "REPLAY_MEMORY", "65536", "Signed uploads remembered to refuse a replay within SIGNATURE_WINDOW (about 128 bytes each: 8 MiB at the default); when full, the oldest is forgotten and every signature timed at or before it is refused (503 with Retry-After: our sender signs each attempt afresh, so it passes on retry)"},
      {"unsigned-upload-budget", "UNSIGNED_UPLOAD_BUDGET", "2G", "Bytes of request body unsigned uploads in flight may hold together (503 with Retry-After beyond; a single larger one: 413); suffixes K, M, G"},
      {"max-connections-per-client", "MAX_CONNECTIONS_PER_CLIENT", "256", "Open connections from one client address (429 beyond)"},
      {"ready-file", "READY_FILE", "", "Write the listening port to this file once ready"},
      {"on-conflict", "ON_CONFLICT", "overwrite", "A name uploaded again with other content: overwrite, reject (409) or version (<name>.1.xml, ...)"},
      {"drain-timeout", "DRAIN_TIMEOUT", "10", "Seconds in-flight uploads may take to finish after SIGTERM"},
      {"min-free-bytes", "MIN_FREE_BYTES", "64M", "GET /readyz answers 503 when the output file system has less free space than this; suffixes K, M, G"},
      {"fsync", "FSYNC", "on", "on: a 201 means the file and its name are on disk (fsync of the file, then of the directory); off: skip both (faster, but a power loss can lose or empty files already answered 201, as with the old pair)"},
      {"xml-check", "XML_CHECK", "wellformed", "wellformed: only well-formed XML lands (libxml2, streaming; no entity declarations, no external DTD, nesting at most XML_MAX_DEPTH; 422 otherwise); off: any plaintext is written, as the old pair did"},
      {"xml-max-depth", "XML_MAX_DEPTH", "256", "Deepest element nesting XML_CHECK accepts, the root included (256: what libxml2 reads on default settings and what our sender's MAX_DEPTH makes)"},
      {"xml-max-attributes", "XML_MAX_ATTRIBUTES", "32", "Most attributes one start tag may carry under XML_CHECK, namespace declarations and the attribute defaults a DOCTYPE declares included (422 beyond). dicttoxml, and so our sender, writes at most 2; libxml2 checks a tag's attributes pairwise (160,000 took 8 s of CPU)"},
      {"xml-max-construct", "XML_MAX_CONSTRUCT", "1M", "Largest single tag, comment, processing instruction, CDATA section, DOCTYPE or entity reference under XML_CHECK, and with XML_SCHEMA one element's text (422 beyond; suffixes K, M). libxml2 holds a whole construct before reading it, 2-2.7 times over; raise it for senders with XML_CDATA=on and strings over 1 MiB"},
      {"xml-max-namespaces", "XML_MAX_NAMESPACES", "64", "Most namespace declarations in scope at once under XML_CHECK (422 beyond; libxml2 looks every prefix up through all of them: 8,160 made 4 MB cost 2.7 s)"},
      {"xml-max-names", "XML_MAX_NAMES", "100000", "Most distinct element, attribute and namespace names in one upload under XML_CHECK (422 beyond; libxml2's dictionary slows down with their square: 1,000,000 cost 16 s and 54 MiB); their bytes are held to about 1 MiB"},
      {"xml-schema", "XML_SCHEMA", "", "An XML Schema (XSD 1.0) file every upload must be valid against (422 otherwise); reloaded when the file changes, a broken new one keeps the old; needs XML_CHECK=wellformed"},
      {"clamd-address", "CLAMD_ADDRESS", "", "Scan every upload with clamd before it lands: unix:/run/clamav/clamd.ctl or host:port (a virus: 422; clamd unreachable, slow or in error: 503 with Retry-After, nothing unscanned lands)"},
      {"clamd-timeout", "CLAMD_TIMEOUT", "60", "Seconds clamd may take for each write and for its verdict (connecting: at most 5)"},
      {"scan-quarantine-dir", "SCAN_QUARANTINE_DIR", "", "Keep the plaintext of uploads clamd found a virus in here (mode 0600, with a .reason file), for forensics; empty: discard them"},
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
  // 0: four per core, at least 16: an upload's worker mostly waits for the network and the disk.
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
  auto min_rate = parse_size(v.get("min-body-rate"), "MIN_BODY_RATE");
  if (!min_rate) return bad(min_rate.error());
  if (*min_rate == 0) return bad(make_error(ErrorCode::kInvalidArgument, "MIN_BODY_RATE must be at least 1"));
  c.min_body_rate = *min_rate;
  auto header_timeout = parse_seconds(v.get("header-timeout"), "HEADER_TIMEOUT");
  if (!header_timeout) return bad(header_timeout.error());
  c.header_timeout_s = *header_timeout;
  auto keep_alive = parse_seconds(v.get("keep-alive-timeout"), "KEEP_ALIVE_TIMEOUT");
  if (!keep_alive) return bad(keep_alive.error());
  c.keep_alive_timeout_s = *keep_alive;
  auto answer_timeout = parse_seconds(v.get("answer-timeout"), "ANSWER_TIMEOUT");
  if (!answer_timeout) return bad(answer_timeout.error());
  c.answer_timeout_s = *answer_timeout;
  for (auto [name, env_name, field] : {std::tuple{"files-access", "FILES_ACCESS", &c.files_access},
                                      std::tuple{"metrics-access", "METRICS_ACCESS", &c.metrics_access}}) {
    *field = v.get(name);
    if (*field != "open" && *field != "signed" && *field != "off") {
      return bad(make_error(ErrorCode::kInvalidArgument,
                            std::string(env_name) + " must be open, signed or off, not '" + *field + "'"));
    }
  }
  auto log_rate = parse_integer(v.get("refusal-log-rate"), "REFUSAL_LOG_RATE", 0, 1000000);
  if (!log_rate) return bad(log_rate.error());
  c.refusal_log_rate = static_cast<uint64_t>(*log_rate);
  auto days = parse_integer(v.get("refusal-retention-days"), "REFUSAL_RETENTION_DAYS", 1, 36500);
  if (!days) return bad(days.error());
  c.refusal_retention_days = static_cast<uint64_t>(*days);
  auto rows = parse_integer(v.get("refusal-retention-rows"), "REFUSAL_RETENTION_ROWS", 1, 1000000000);
  if (!rows) return bad(rows.error());
  c.refusal_retention_rows = static_cast<uint64_t>(*rows);
  auto head_bytes = parse_size(v.get("max-head-bytes"), "MAX_HEAD_BYTES");
  if (!head_bytes) return bad(head_bytes.error());
  if (*head_bytes < 1024 || *head_bytes > (16ULL << 20)) {
    return bad(make_error(ErrorCode::kInvalidArgument, "MAX_HEAD_BYTES must be between 1K and 16M"));
  }
  c.max_head_bytes = *head_bytes;
  auto headers = parse_integer(v.get("max-headers"), "MAX_HEADERS", 8, 10000);
  if (!headers) return bad(headers.error());
  c.max_headers = static_cast<size_t>(*headers);
  auto connections = parse_integer(v.get("max-connections"), "MAX_CONNECTIONS", 16, 1000000);
  if (!connections) return bad(connections.error());
  c.max_connections = static_cast<size_t>(*connections);
  auto per_client = parse_integer(v.get("max-connections-per-client"), "MAX_CONNECTIONS_PER_CLIENT", 1, 1000000);
  if (!per_client) return bad(per_client.error());
  c.max_connections_per_client = static_cast<size_t>(*per_client);
  c.upload_signatures = v.get("upload-signatures");
  if (auto p = parse_signature_policy(c.upload_signatures); !p) return bad(p.error());
  auto window = parse_integer(v.get("signature-window"), "SIGNATURE_WINDOW", 1, 86400);
  if (!window) return bad(window.error());
  c.signature_window_s = static_cast<uint64_t>(*window);
  auto replay_memory = parse_integer(v.get("replay-memory"), "REPLAY_MEMORY", 16, 1LL << 24);
  if (!replay_memory) return bad(replay_memory.error());
  c.replay_memory = static_cast<size_t>(*replay_memory);
  auto budget = parse_size(v.get("unsigned-upload-budget"), "UNSIGNED_UPLOAD_BUDGET");
  if (!budget) return bad(budget.error());
  c.unsigned_upload_budget = *budget;
  auto min_free = parse_size(v.get("min-free-bytes"), "MIN_FREE_BYTES");
  if (!min_free) return bad(min_free.error());
  c.min_free_bytes = *min_free;
  const std::string fsync = v.get("fsync");
  if (fsync != "on" && fsync != "off") {
    return bad(make_error(ErrorCode::kInvalidArgument, "FSYNC must be on or off, not '" + fsync + "'"));
  }
  c.fsync = fsync == "on";
  c.xml_check = v.get("xml-check");
  if (c.xml_check != "wellformed" && c.xml_check != "off") {
    return bad(make_error(ErrorCode::kInvalidArgument, "XML_CHECK must be wellformed or off, not '" + c.xml_check + "'"));
  }
  auto depth = parse_integer(v.get("xml-max-depth"), "XML_MAX_DEPTH", 1, 100000);
  if (!depth) return bad(depth.error());
  c.xml_max_depth = static_cast<size_t>(*depth);
  auto attributes = parse_integer(v.get("xml-max-attributes"), "XML_MAX_ATTRIBUTES", 1, 4096);
  if (!attributes) return bad(attributes.error());
  c.xml_max_attributes = static_cast<size_t>(*attributes);
  auto construct = parse_size(v.get("xml-max-construct"), "XML_MAX_CONSTRUCT");
  if (!construct) return bad(construct.error());
  if (*construct < 1024 || *construct > 10'000'000) {
    return bad(make_error(ErrorCode::kInvalidArgument,
                          "XML_MAX_CONSTRUCT must be between 1K and 10000000 (libxml2's own limit)"));
  }
  c.xml_max_construct = *construct;
  auto namespaces = parse_integer(v.get("xml-max-namespaces"), "XML_MAX_NAMESPACES", 1, 100000);
  if (!namespaces) return bad(namespaces.error());
  c.xml_max_namespaces = static_cast<size_t>(*namespaces);
  auto names = parse_integer(v.get("xml-max-names"), "XML_MAX_NAMES", 100, 10000000);
  if (!names) return bad(names.error());
  c.xml_max_names = static_cast<size_t>(*names);
  c.xml_schema = v.get("xml-schema");
  if (!c.xml_schema.empty() && c.xml_check == "off") {
    return bad(make_error(ErrorCode::kInvalidArgument, "XML_SCHEMA needs XML_CHECK=wellformed (a schema checks XML)"));
  }
  c.clamd_address = v.get("clamd-address");
  if (!c.clamd_address.empty()) {
    if (auto a = parse_clamd_address(c.clamd_address); !a) return bad(a.error());
  }
  auto clamd_timeout = parse_seconds(v.get("clamd-timeout"), "CLAMD_TIMEOUT");
  if (!clamd_timeout) return bad(clamd_timeout.error());
  c.clamd_timeout_s = *clamd_timeout;
  c.scan_quarantine_dir = v.get("scan-quarantine-dir");
  if (!c.scan_quarantine_dir.empty() && c.clamd_address.empty()) {
    return bad(make_error(ErrorCode::kInvalidArgument, "SCAN_QUARANTINE_DIR needs CLAMD_ADDRESS (it keeps what clamd finds)"));
  }
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
