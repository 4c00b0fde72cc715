#pragma once
// Where the sender delivers (issue 14, fan-out): one or more destinations, each a receiver with
// its own key, TLS files, upload concurrency and retry limits.
//   - Without DESTINATIONS_FILE, the flat options (RECEIVER_ADDRESS, RECEIVER_PORT, RECEIVER_URI,
//     RECEIVER_SCHEME, ENCRYPTION_KEY, CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE) describe one
//     destination named "default": an old deployment changes nothing.
//   - DESTINATIONS_FILE names a JSON file (a docker swarm config, each key a swarm secret):
//       {"destinations": [
//         {"name": "partner-a", "url": "http://receiver-a:8080/upload", "key_file":
//         "/run/secrets/key-a"},
//         {"name": "archive", "url": "https://archive:8443/upload", "key_file":
//         "/run/secrets/key-b",
//          "ca_file": "/run/secrets/ca.pem", "upload_concurrency": 1, "max_age": 604800}
//       ]}
//     Fields: name, url, key_file (required); ca_file, client_cert_file, client_key_file,
//     upload_concurrency, retry_base_delay, retry_max_delay, max_attempts, max_age, enabled,
//     xml_root, xml_type_attrs, xml_item_name, xml_item_wrap, xml_pretty, xml_declaration,
//     xml_cdata (optional; unset ones take the global options). Names are [a-z0-9_-]{1,32} and unique.
// Every refusal is one line naming the file, the destination (by position and name when known)
// and the field: the sender prints it and exits 2.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "retry_policy.hpp"
#include "sender_config.hpp"
#include "transfer/json_to_xml.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

struct Destination {
  std::string name;
  std::string scheme = "http";  // http or https
  std::string host;
  int port = 8080;
  std::string uri = "/upload";  // path prefix: files go to <uri>/<name>; no trailing slash
  std::string key_file;
  std::string ca_file;
  std::string client_cert_file;
  std::string client_key_file;
  int upload_concurrency = 1;
  RetrySettings retry;
  bool enabled = true;
  JsonToXmlOptions xml;  // the mapping this destination gets (xml_* fields, else the XML_* options)

  // scheme://host:port<uri>, for logs and status.
  std::string url() const;
};

// The destination the flat options describe, named "default".
Destination default_destination(const SenderConfig& config);

// Checks that a file a destination names is usable: `field` is "key_file" (read_key_file must
// take it) or a TLS file's field (it must be readable). Injected so the parser stays pure.
using FileCheck = std::function<Status(const std::string& field, const std::string& path)>;

// Parses the JSON text of a destinations file. `source` names it in errors; `globals` gives the
// values of unset fields. kInvalidArgument (kInvalidKey for a key file) with one line otherwise.
Result<std::vector<Destination>> parse_destinations(std::string_view json_text,
                                                    const std::string& source,
                                                    const SenderConfig& globals,
                                                    const FileCheck& check_file);

// Reads and parses DESTINATIONS_FILE, checking each key file with read_key_file.
Result<std::vector<Destination>> load_destinations_file(const std::string& path,
                                                        const SenderConfig& globals);

// "http://host:8080/upload" into scheme, host, port and uri (the port defaults to 80 / 443).
Status parse_destination_url(const std::string& url, Destination& into);

}  // namespace transfer::sender
