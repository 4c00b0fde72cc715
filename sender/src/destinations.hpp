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
//     Fields of every type: name (required, [a-z0-9_-]{1,32}, unique), type (receiver, the default;
//     s3, sftp, ftps), payload (fernet, the default: key_file required; xml), upload_concurrency,
//     retry_base_delay, retry_max_delay, max_attempts, max_age, enabled, xml_root, xml_type_attrs,
//     xml_item_name, xml_item_wrap, xml_pretty, xml_declaration, xml_cdata (unset: the global
//     options). receiver: url (required), key_file, ca_file, client_cert_file, client_key_file
//     (payload must be fernet). s3: endpoint, bucket, access_key_file, secret_key_file (required),
//     region, prefix, path_style, ca_file, multipart_threshold, part_size, name_template.
//     sftp: host, user, private_key_file, known_hosts_file, remote_dir (required), port,
//     on_conflict (overwrite|fail), name_template. ftps: host, user, password_file, remote_dir
//     (required), port, tls (true; false only written out), ca_file, on_conflict, name_template.
//     A field of another type is refused (a typo, or a destination of the wrong type).
// Every refusal is one line naming the file, the destination (by position and name when known)
// and the field: the sender prints it and exits 2.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "name_template.hpp"
#include "remote_names.hpp"
#include "retry_policy.hpp"
#include "sender_config.hpp"
#include "transfer/json_to_xml.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

// What a destination is (issue 21): our receiver (the default), an S3 bucket, an SFTP or an FTP(S)
// server. The scheduler, retries, state and metrics never look at it: only the client made for it.
enum class DestinationType { kReceiver, kS3, kSftp, kFtps };
std::string_view destination_type_name(DestinationType type);

// What a destination stores: the Fernet token a receiver gets (encrypted with its key_file), or
// the plaintext XML (for partners who read it directly).
enum class PayloadKind { kFernet, kXml };

struct S3Fields {
  std::string endpoint;  // https://host[:port] or http://...
  std::string region = "us-east-1";
  std::string bucket;
  std::string prefix;  // keys are prefix/name (a '/' added when it has none; see s3_object_key)
  bool path_style = false;
  std::string access_key_file;
  std::string secret_key_file;
  std::string ca_file;
  uint64_t multipart_threshold = 16ULL << 20;
  uint64_t part_size = 8ULL << 20;
};

struct SftpFields {
  std::string host;
  int port = 22;
  std::string user;
  std::string private_key_file;
  std::string known_hosts_file;
  std::string remote_dir;
  OnConflict on_conflict = OnConflict::kOverwrite;
};

struct FtpsFields {
  std::string host;
  int port = 21;
  std::string user;
  std::string password_file;
  std::string remote_dir;
  bool tls = true;  // false only when written out: plain FTP, warned about at start
  std::string ca_file;
  OnConflict on_conflict = OnConflict::kOverwrite;
};

struct Destination {
  std::string name;
  DestinationType type = DestinationType::kReceiver;
  PayloadKind payload = PayloadKind::kFernet;
  NameTemplate name_template = NameTemplate::default_for(true);  // s3, sftp, ftps
  S3Fields s3;
  SftpFields sftp;
  FtpsFields ftps;
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

  // Where it delivers, for logs and status: scheme://host:port<uri> for a receiver,
  // s3://bucket/prefix, sftp://user@host:port/dir, ftps://user@host:port/dir.
  std::string url() const;
  // Files it reads (key, credentials, TLS and host-key files), as (field, path): checked when
  // the destinations file is read, and watched for changes.
  std::vector<std::pair<std::string, std::string>> files() const;
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
