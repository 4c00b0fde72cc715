#include "destinations.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "transfer/config.hpp"
#include "transfer/key_file.hpp"

namespace transfer::sender {
namespace {

using nlohmann::json;

const std::set<std::string>& common_fields() {
  static const std::set<std::string> kFields = {
      "name",      "type",          "payload",           "key_file",       "upload_concurrency",
      "retry_base_delay", "retry_max_delay", "max_attempts", "max_age",    "enabled",
      "xml_root",  "xml_type_attrs", "xml_item_name",    "xml_item_wrap",  "xml_pretty",
      "xml_declaration", "xml_cdata"};
  return kFields;
}

const std::set<std::string>& type_fields(DestinationType type) {
  static const std::set<std::string> kReceiver = {"url", "ca_file", "client_cert_file",
                                                  "client_key_file"};
  static const std::set<std::string> kS3 = {"endpoint",        "region",          "bucket",
                                            "prefix",          "path_style",      "access_key_file",
                                            "secret_key_file", "ca_file",         "multipart_threshold",
                                            "part_size",       "name_template"};
  static const std::set<std::string> kSftp = {"host",     "port",             "user",
                                              "private_key_file", "known_hosts_file", "remote_dir",
                                              "on_conflict", "name_template"};
  static const std::set<std::string> kFtps = {"host",       "port",    "user",        "password_file",
                                              "remote_dir", "tls",     "ca_file",     "on_conflict",
                                              "name_template"};
  switch (type) {
    case DestinationType::kReceiver: return kReceiver;
    case DestinationType::kS3: return kS3;
    case DestinationType::kSftp: return kSftp;
    case DestinationType::kFtps: return kFtps;
  }
  return kReceiver;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

// Reads one entry; `where` is "<source>: destination <n>" (and the name once known).
class EntryReader {
 public:
  EntryReader(const json& entry, std::string where) : entry_(entry), where_(std::move(where)) {}
  const std::string& where() const { return where_; }
  void named(const std::string& name) { where_ += " (" + name + ")"; }

  Error bad(const std::string& field, const std::string& why) const {
    return make_error(ErrorCode::kInvalidArgument, where_ + ": " + field + " " + why);
  }
  bool has(const char* field) const { return entry_.contains(field); }

  Result<std::string> text(const char* field, bool required) const {
    if (!entry_.contains(field)) {
      if (required) return bad(field, "is missing");
      return std::string();
    }
    const json& v = entry_.at(field);
    if (!v.is_string()) return bad(field, "must be a string");
    std::string s = v.get<std::string>();
    if (s.empty()) return bad(field, "is empty");
    return s;
  }
  Result<double> seconds(const char* field, double fallback, double min) const {
    if (!entry_.contains(field)) return fallback;
    const json& v = entry_.at(field);
    if (!v.is_number()) return bad(field, "must be a number of seconds");
    const double d = v.get<double>();
    if (!(d >= min) || d > 1e9)
      return bad(field, "must be between " + std::to_string(static_cast<int>(min)) + " and 1e9");
    return d;
  }
  Result<bool> boolean(const char* field, bool fallback) const {
    if (!entry_.contains(field)) return fallback;
    const json& v = entry_.at(field);
    if (!v.is_boolean()) return bad(field, "must be true or false");
    return v.get<bool>();
  }
  // Bytes: an integer, or a string with a K, M or G suffix ("8M").
  Result<uint64_t> size(const char* field, uint64_t fallback, uint64_t min, uint64_t max) const {
    if (!entry_.contains(field)) return fallback;
    const json& v = entry_.at(field);
    uint64_t n = 0;
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      n = v.get<uint64_t>();
    } else if (v.is_string()) {
      auto parsed = parse_size(v.get<std::string>(), field);
      if (!parsed) return bad(field, "must be a size in bytes (a number, or with K, M or G)");
      n = *parsed;
    } else {
      return bad(field, "must be a size in bytes (a number, or with K, M or G)");
    }
    if (n < min || n > max)
      return bad(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
    return n;
  }
  Result<int64_t> integer(const char* field, int64_t fallback, int64_t min, int64_t max) const {
    if (!entry_.contains(field)) return fallback;
    const json& v = entry_.at(field);
    if (!v.is_number_integer()) return bad(field, "must be an integer");
    const int64_t i = v.get<int64_t>();
    if (i < min || i > max)
      return bad(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return i;
  }

 private:
  const json& entry_;
  std::string where_;
};

Result<DestinationType> parse_type(const std::string& text) {
  if (text == "receiver") return DestinationType::kReceiver;
  if (text == "s3") return DestinationType::kS3;
  if (text == "sftp") return DestinationType::kSftp;
  if (text == "ftps") return DestinationType::kFtps;
  return make_error(ErrorCode::kInvalidArgument,
                    "'" + text + "' is not a type (receiver, s3, sftp or ftps)");
}

Result<OnConflict> read_conflict(EntryReader& r) {
  auto v = r.text("on_conflict", false);
  if (!v) return v.error();
  if (v->empty()) return OnConflict::kOverwrite;
  auto parsed = parse_on_conflict(*v);
  if (!parsed) return r.bad("on_conflict", "must be overwrite or fail, not '" + *v + "'");
  return *parsed;
}

// host, port, user and remote_dir of an SFTP or FTPS server.
Status read_server(EntryReader& r, std::string& host, int& port, std::string& user,
                   std::string& remote_dir) {
  auto h = r.text("host", true);
  if (!h) return h.error();
  if (h->find_first_of("/@ \t") != std::string::npos) return r.bad("host", "must be a host name or address");
  host = *h;
  auto p = r.integer("port", port, 1, 65535);
  if (!p) return p.error();
  port = static_cast<int>(*p);
  auto u = r.text("user", true);
  if (!u) return u.error();
  user = *u;
  auto dir = r.text("remote_dir", true);
  if (!dir) return dir.error();
  if (dir->find('\0') != std::string::npos) return r.bad("remote_dir", "holds a NUL");
  remote_dir = *dir;
  return ok_status();
}

Status read_receiver(const json& entry, EntryReader& r, const SenderConfig& g, Destination& d) {
  (void)entry;
  auto url = r.text("url", true);
  if (!url) return url.error();
  if (auto st = parse_destination_url(*url, d); !st) return r.bad("url", st.error().message);
  // TLS files: a destination's own, else the global ones for https destinations only.
  const bool https = d.scheme == "https";
  for (auto [field, member, global] :
       {std::tuple{"ca_file", &d.ca_file, &g.ca_file},
        std::tuple{"client_cert_file", &d.client_cert_file, &g.client_cert_file},
        std::tuple{"client_key_file", &d.client_key_file, &g.client_key_file}}) {
    auto v = r.text(field, false);
    if (!v) return v.error();
    if (!v->empty() && !https) return r.bad(field, "needs an https url");
    *member = !v->empty() ? *v : (https ? *global : std::string());
  }
  if (d.client_cert_file.empty() != d.client_key_file.empty()) {
    return r.bad(d.client_cert_file.empty() ? "client_cert_file" : "client_key_file",
                 "is missing (mutual TLS needs client_cert_file and client_key_file)");
  }
  if (d.payload != PayloadKind::kFernet) return r.bad("payload", "must be fernet for a receiver");
  return ok_status();
}

Status read_s3(EntryReader& r, Destination& d) {
  S3Fields& s = d.s3;
  auto endpoint = r.text("endpoint", true);
  if (!endpoint) return endpoint.error();
  if (endpoint->rfind("https://", 0) != 0 && endpoint->rfind("http://", 0) != 0)
    return r.bad("endpoint", "must start with https:// or http://");
  if (endpoint->find_first_of("?#@ ") != std::string::npos)
    return r.bad("endpoint", "may hold no user, query, fragment or space");
  s.endpoint = *endpoint;
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  for (auto [field, into, required] :
       {std::tuple{"bucket", &s.bucket, true}, std::tuple{"access_key_file", &s.access_key_file, true},
        std::tuple{"secret_key_file", &s.secret_key_file, true}, std::tuple{"region", &s.region, false},
        std::tuple{"prefix", &s.prefix, false}, std::tuple{"ca_file", &s.ca_file, false}}) {
    auto v = r.text(field, required);
    if (!v) return v.error();
    if (!v->empty()) *into = *v;
  }
  const std::string& b = s.bucket;
  if (b.size() < 3 || b.size() > 63 ||
      b.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") != std::string::npos) {
    return r.bad("bucket", "'" + b + "' is not a bucket name (3 to 63 of a-z 0-9 . -)");
  }
  if (!s.prefix.empty() && s.prefix.front() == '/') return r.bad("prefix", "must not start with '/'");
  if (s.prefix.find("..") != std::string::npos || s.prefix.find("//") != std::string::npos)
    return r.bad("prefix", "may hold no '..' and no '//'");
  auto path_style = r.boolean("path_style", false);
  if (!path_style) return path_style.error();
  s.path_style = *path_style;
  constexpr uint64_t kMinPart = 5ULL << 20, kMaxPart = 5ULL << 30;
  auto part = r.size("part_size", s.part_size, kMinPart, kMaxPart);
  if (!part) return part.error();
  s.part_size = *part;
  auto threshold = r.size("multipart_threshold", s.multipart_threshold, kMinPart, kMaxPart);
  if (!threshold) return threshold.error();
  s.multipart_threshold = *threshold;
  return ok_status();
}

Status read_sftp(EntryReader& r, Destination& d) {
  SftpFields& s = d.sftp;
  if (auto st = read_server(r, s.host, s.port, s.user, s.remote_dir); !st) return st;
  for (auto [field, into] : {std::pair{"private_key_file", &s.private_key_file},
                             std::pair{"known_hosts_file", &s.known_hosts_file}}) {
    auto v = r.text(field, true);
    if (!v) return v.error();
    *into = *v;
  }
  auto conflict = read_conflict(r);
  if (!conflict) return conflict.error();
  s.on_conflict = *conflict;
  return ok_status();
}

Status read_ftps(EntryReader& r, Destination& d) {
  FtpsFields& s = d.ftps;
  if (auto st = read_server(r, s.host, s.port, s.user, s.remote_dir); !st) return st;
  auto password = r.text("password_file", true);
  if (!password) return password.error();
  s.password_file = *password;
  auto tls = r.boolean("tls", true);
  if (!tls) return tls.error();
  s.tls = *tls;
  auto ca = r.text("ca_file", false);
  if (!ca) return ca.error();
  if (!ca->empty() && !s.tls) return r.bad("ca_file", "needs tls");
  s.ca_file = *ca;
  auto conflict = read_conflict(r);
  if (!conflict) return conflict.error();
  s.on_conflict = *conflict;
  return ok_status();
}

Result<Destination> read_entry(const json& entry, EntryReader& r, const SenderConfig& g,
                               const FileCheck& check) {
  if (!entry.is_object())
    return make_error(ErrorCode::kInvalidArgument, r.where() + ": must be an object");
  Destination d = default_destination(g);
  auto name = r.text("name", true);
  if (!name) return name.error();
  if (!valid_name(*name)) return r.bad("name", "'" + *name + "' must be 1 to 32 of a-z 0-9 _ -");
  d.name = *name;
  r.named(d.name);
  auto type_text = r.text("type", false);
  if (!type_text) return type_text.error();
  if (!type_text->empty()) {
    auto type = parse_type(*type_text);
    if (!type) return r.bad("type", type.error().message);
    d.type = *type;
  }
  for (const auto& [field, value] : entry.items()) {
    if (common_fields().count(field) == 0 && type_fields(d.type).count(field) == 0) {
      return r.bad("'" + field + "'", "is not a field of a " +
                                          std::string(destination_type_name(d.type)) +
                                          " destination (a typo, or another type's?)");
    }
  }
  auto payload = r.text("payload", false);
  if (!payload) return payload.error();
  if (payload->empty() || *payload == "fernet") {
    d.payload = PayloadKind::kFernet;
  } else if (*payload == "xml") {
    d.payload = PayloadKind::kXml;
  } else {
    return r.bad("payload", "must be fernet or xml, not '" + *payload + "'");
  }
  auto key = r.text("key_file", d.payload == PayloadKind::kFernet);
  if (!key) return key.error();
  if (d.payload == PayloadKind::kXml && !key->empty())
    return r.bad("key_file", "is not used with payload xml (the XML is stored as it is)");
  d.key_file = *key;
  d.ca_file.clear();
  d.client_cert_file.clear();
  d.client_key_file.clear();
  Status typed = ok_status();
  switch (d.type) {
    case DestinationType::kReceiver: typed = read_receiver(entry, r, g, d); break;
    case DestinationType::kS3: typed = read_s3(r, d); break;
    case DestinationType::kSftp: typed = read_sftp(r, d); break;
    case DestinationType::kFtps: typed = read_ftps(r, d); break;
  }
  if (!typed) return typed.error();
  if (d.type != DestinationType::kReceiver) {
    d.name_template = NameTemplate::default_for(d.payload == PayloadKind::kFernet);
    auto text = r.text("name_template", false);
    if (!text) return text.error();
    if (!text->empty()) {
      auto parsed = NameTemplate::parse(*text);
      if (!parsed) return r.bad("name_template", parsed.error().message);
      if (d.type != DestinationType::kS3 && text->find('/') != std::string::npos) {
        return r.bad("name_template", "'" + *text + "' has a '/': an " +
                                          std::string(destination_type_name(d.type)) +
                                          " destination stores files in remote_dir itself (name "
                                          "the directory there)");
      }
      d.name_template = *parsed;
    }
  }
  auto concurrency = r.integer("upload_concurrency", g.upload_concurrency, 1, 256);
  if (!concurrency) return concurrency.error();
  d.upload_concurrency = static_cast<int>(*concurrency);
  auto base = r.seconds("retry_base_delay", g.retry.base_delay_s, 0.001);
  if (!base) return base.error();
  auto cap = r.seconds("retry_max_delay", g.retry.max_delay_s, 0.001);
  if (!cap) return cap.error();
  if (*cap < *base) return r.bad("retry_max_delay", "must be at least retry_base_delay");
  auto attempts = r.integer("max_attempts", g.retry.max_attempts, 0, 1'000'000'000);
  if (!attempts) return attempts.error();
  auto age = r.seconds("max_age", g.retry.max_age_s, 0);
  if (!age) return age.error();
  d.retry = RetrySettings{*base, *cap, *attempts, *age};
  auto enabled = r.boolean("enabled", true);
  if (!enabled) return enabled.error();
  d.enabled = *enabled;
  // The XML mapping: names as strings, switches as true/false (or "on"/"off", as the options).
  for (auto [field, into] : {std::pair{"xml_root", &d.xml.root}, std::pair{"xml_item_name", &d.xml.item_name}}) {
    auto v = r.text(field, false);
    if (!v) return v.error();
    if (!v->empty()) *into = *v;
  }
  for (auto [field, into] : {std::pair{"xml_type_attrs", &d.xml.type_attrs}, std::pair{"xml_item_wrap", &d.xml.item_wrap},
                             std::pair{"xml_pretty", &d.xml.pretty}, std::pair{"xml_declaration", &d.xml.declaration},
                             std::pair{"xml_cdata", &d.xml.cdata}}) {
    if (!r.has(field)) continue;
    const json& v = entry.at(field);
    if (v.is_boolean()) {
      *into = v.get<bool>();
    } else if (v.is_string() && (v.get<std::string>() == "on" || v.get<std::string>() == "off")) {
      *into = v.get<std::string>() == "on";
    } else {
      return r.bad(field, "must be true or false (or \"on\" / \"off\")");
    }
  }
  for (auto [field, element] : {std::pair{"xml_root", &d.xml.root}, std::pair{"xml_item_name", &d.xml.item_name}}) {
    if (auto st = check_xml_element_name(field, *element); !st)
      return make_error(ErrorCode::kInvalidArgument, r.where() + ": " + st.error().message);
  }
  if (d.enabled) {  // a disabled destination's secrets may be gone
    for (const auto& [field, path] : d.files()) {
      if (auto st = check(field, path); !st) {
        return Error{st.error().code, r.where() + ": " + field + " " + path + ": " + st.error().message};
      }
    }
  }
  return d;
}

}  // namespace

std::string_view destination_type_name(DestinationType type) {
  switch (type) {
    case DestinationType::kReceiver: return "receiver";
    case DestinationType::kS3: return "s3";
    case DestinationType::kSftp: return "sftp";
    case DestinationType::kFtps: return "ftps";
  }
  return "receiver";
}

std::string Destination::url() const {
  auto bracketed = [](const std::string& h) {
    return h.find(':') != std::string::npos ? "[" + h + "]" : h;
  };
  auto dir = [](const std::string& d) { return !d.empty() && d[0] == '/' ? d : "/" + d; };
  switch (type) {
    case DestinationType::kReceiver:
      return scheme + "://" + bracketed(host) + ":" + std::to_string(port) + uri;
    case DestinationType::kS3:
      return "s3://" + s3.bucket + "/" + s3.prefix;
    case DestinationType::kSftp:
      return "sftp://" + sftp.user + "@" + bracketed(sftp.host) + ":" + std::to_string(sftp.port) +
             dir(sftp.remote_dir);
    case DestinationType::kFtps:
      return std::string(ftps.tls ? "ftps" : "ftp") + "://" + ftps.user + "@" + bracketed(ftps.host) + ":" +
             std::to_string(ftps.port) + dir(ftps.remote_dir);
  }
  return {};
}

std::vector<std::pair<std::string, std::string>> Destination::files() const {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](const char* field, const std::string& path) {
    if (!path.empty()) out.emplace_back(field, path);
  };
  add("key_file", key_file);
  switch (type) {
    case DestinationType::kReceiver:
      add("ca_file", ca_file);
      add("client_cert_file", client_cert_file);
      add("client_key_file", client_key_file);
      break;
    case DestinationType::kS3:
      add("access_key_file", s3.access_key_file);
      add("secret_key_file", s3.secret_key_file);
      add("ca_file", s3.ca_file);
      break;
    case DestinationType::kSftp:
      add("private_key_file", sftp.private_key_file);
      add("known_hosts_file", sftp.known_hosts_file);
      break;
    case DestinationType::kFtps:
      add("password_file", ftps.password_file);
      add("ca_file", ftps.ca_file);
      break;
  }
  return out;
}

Destination default_destination(const SenderConfig& c) {
  Destination d;
  d.name = "default";
  d.scheme = c.receiver_scheme;
  d.host = c.receiver_address;
  d.port = c.receiver_port;
  d.uri = c.receiver_uri;
  d.key_file = c.key_path;
  d.ca_file = c.ca_file;
  d.client_cert_file = c.client_cert_file;
  d.client_key_file = c.client_key_file;
  d.upload_concurrency = c.upload_concurrency;
  d.retry = c.retry;
  d.xml = c.xml;
  return d;
}

Status parse_destination_url(const std::string& url, Destination& into) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + url + "' is not http(s)://host[:port]/path");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + url + "' must start with http:// or https://");
  }
  std::string rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("?#@ \t") != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + url + "' may hold no user, query, fragment or space");
  }
  const auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  std::string host;
  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "'" + url + "': unclosed [ in the host");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return make_error(ErrorCode::kInvalidArgument, "'" + url + "': bad port");
      port_text = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (host.empty()) return make_error(ErrorCode::kInvalidArgument, "'" + url + "' has no host");
  int port = scheme == "https" ? 443 : 80;
  if (authority.find(':') != std::string::npos &&
      !(authority.front() == '[' && port_text.empty())) {
    if (port_text.empty() || port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port_text) < 1 || std::stoi(port_text) > 65535) {
      return make_error(ErrorCode::kInvalidArgument, "'" + url + "': the port must be 1 to 65535");
    }
    port = std::stoi(port_text);
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  into.scheme = scheme;
  into.host = host;
  into.port = port;
  into.uri = path;
  return ok_status();
}

Result<std::vector<Destination>> parse_destinations(std::string_view json_text,
                                                    const std::string& source,
                                                    const SenderConfig& globals,
                                                    const FileCheck& check_file) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument, source + ": " + why);
  };
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    return bad(std::string("not JSON: ") + e.what());
  }
  if (!doc.is_object()) return bad("must be a JSON object with a \"destinations\" list");
  for (const auto& [field, value] : doc.items()) {
    if (field != "destinations")
      return bad("'" + field + "' is not a field (only \"destinations\")");
  }
  if (!doc.contains("destinations") || !doc.at("destinations").is_array())
    return bad("\"destinations\" must be a list");
  const json& list = doc.at("destinations");
  if (list.empty()) return bad("\"destinations\" is empty");
  std::vector<Destination> out;
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    EntryReader reader(list[i], source + ": destination " + std::to_string(i + 1));
    auto d = read_entry(list[i], reader, globals, check_file);
    if (!d) return d.error();
    if (!names.insert(d->name).second) return reader.bad("name", "'" + d->name + "' is used twice");
    out.push_back(std::move(*d));
  }
  bool any_enabled = false;
  for (const auto& d : out) any_enabled = any_enabled || d.enabled;
  if (!any_enabled)
    return bad("every destination is disabled (\"enabled\": false): nothing would be sent");
  return out;
}

Result<std::vector<Destination>> load_destinations_file(const std::string& path,
                                                        const SenderConfig& globals) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error(ErrorCode::kInvalidArgument,
                      "DESTINATIONS_FILE " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return parse_destinations(
      text.str(), "DESTINATIONS_FILE " + path, globals,
      [](const std::string& field, const std::string& file) -> Status {
        if (field == "key_file") {
          auto keys = read_key_file(file);
          if (!keys) return keys.error();
          return ok_status();
        }
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) return make_error(ErrorCode::kInvalidArgument, std::strerror(errno));
        ::close(fd);
        return ok_status();
      });
}

}  // namespace transfer::sender
