#include "destinations.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "transfer/key_file.hpp"

namespace transfer::sender {
namespace {

using nlohmann::json;

const std::set<std::string>& known_fields() {
  static const std::set<std::string> kFields = {"name",
                                                "url",
                                                "key_file",
                                                "ca_file",
                                                "client_cert_file",
                                                "client_key_file",
                                                "upload_concurrency",
                                                "retry_base_delay",
                                                "retry_max_delay",
                                                "max_attempts",
                                                "max_age",
                                                "enabled",
                                                "xml_root",
                                                "xml_type_attrs",
                                                "xml_item_name",
                                                "xml_item_wrap",
                                                "xml_pretty",
                                                "xml_declaration",
                                                "xml_cdata"};
  return kFields;
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

Result<Destination> read_entry(const json& entry, EntryReader& r, const SenderConfig& g,
                               const FileCheck& check) {
  if (!entry.is_object())
    return make_error(ErrorCode::kInvalidArgument, r.where() + ": must be an object");
  for (const auto& [field, value] : entry.items()) {
    if (known_fields().count(field) == 0)
      return r.bad("'" + field + "'", "is not a field (a typo?)");
  }
  Destination d = default_destination(g);
  auto name = r.text("name", true);
  if (!name) return name.error();
  if (!valid_name(*name)) return r.bad("name", "'" + *name + "' must be 1 to 32 of a-z 0-9 _ -");
  d.name = *name;
  r.named(d.name);
  auto url = r.text("url", true);
  if (!url) return url.error();
  if (auto st = parse_destination_url(*url, d); !st) return r.bad("url", st.error().message);
  auto key = r.text("key_file", true);
  if (!key) return key.error();
  d.key_file = *key;
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
  if (r.has("enabled")) {
    const json& v = entry.at("enabled");
    if (!v.is_boolean()) return r.bad("enabled", "must be true or false");
    d.enabled = v.get<bool>();
  }
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
  for (auto [field, path] : {std::pair{"key_file", &d.key_file}, std::pair{"ca_file", &d.ca_file},
                             std::pair{"client_cert_file", &d.client_cert_file},
                             std::pair{"client_key_file", &d.client_key_file}}) {
    if (path->empty() || !d.enabled) continue;  // a disabled destination's secrets may be gone
    if (auto st = check(field, *path); !st) {
      return Error{st.error().code,
                   r.where() + ": " + field + " " + *path + ": " + st.error().message};
    }
  }
  return d;
}

}  // namespace

std::string Destination::url() const {
  const bool v6 = host.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + uri;
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
