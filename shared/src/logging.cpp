#include "transfer/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace transfer {

Result<spdlog::level::level_enum> parse_log_level(const std::string& text) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "trace") return spdlog::level::trace;
  if (t == "debug") return spdlog::level::debug;
  if (t == "info") return spdlog::level::info;
  if (t == "warning" || t == "warn") return spdlog::level::warn;
  if (t == "error") return spdlog::level::err;
  if (t == "critical" || t == "fatal") return spdlog::level::critical;
  if (t == "off") return spdlog::level::off;
  return make_error(ErrorCode::kInvalidArgument,
                    "LOG_LEVEL: expected debug, info, warning, error or critical, got '" + text + "'");
}

namespace {

bool is_field_key(std::string_view key) {
  if (key.empty() || !(std::islower(static_cast<unsigned char>(key[0])) || key[0] == '_')) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
}

// A value as log_value() wrote it, from `pos`: quoted ("..." with \" \\ \xHH) or up to a space.
std::string read_value(std::string_view msg, size_t& pos) {
  std::string out;
  if (pos < msg.size() && msg[pos] == '"') {
    ++pos;
    while (pos < msg.size() && msg[pos] != '"') {
      if (msg[pos] == '\\' && pos + 1 < msg.size()) {
        unsigned byte = 0;
        const char* hex = msg.data() + pos + 2;
        if (msg[pos + 1] == 'x' && pos + 3 < msg.size() &&
            std::from_chars(hex, hex + 2, byte, 16).ptr == hex + 2) {
          out += static_cast<char>(byte);
          pos += 4;
          continue;
        }
        out += msg[pos + 1];
        pos += 2;
        continue;
      }
      out += msg[pos++];
    }
    if (pos < msg.size()) ++pos;  // the closing quote
    return out;
  }
  const size_t end = std::min(msg.find(' ', pos), msg.size());
  out = msg.substr(pos, end - pos);
  pos = end;
  return out;
}

nlohmann::json typed(const std::string& v) {
  if (v == "true" || v == "false") return v == "true";
  if (v.empty() || v.size() > 18) return v;
  int64_t i = 0;
  if (auto r = std::from_chars(v.data(), v.data() + v.size(), i); r.ec == std::errc() && r.ptr == v.data() + v.size()) {
    if (v.size() == 1 || v[0] != '0') return i;  // keep "007" as text
  }
  double d = 0;
  const bool decimal = v.find_first_not_of("-0123456789.") == std::string::npos &&
                       std::count(v.begin(), v.end(), '.') == 1 && v.front() != '.' && v.back() != '.';
  if (decimal) {
    if (auto r = std::from_chars(v.data(), v.data() + v.size(), d); r.ec == std::errc() && r.ptr == v.data() + v.size()) return d;
  }
  return v;
}

class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto t = std::chrono::system_clock::to_time_t(msg.time);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[40];
    const size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(ms));
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line = json_log_line(stamp, std::string(level.data(), level.size()),
                                           std::string(msg.logger_name.data(), msg.logger_name.size()),
                                           std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

Logger finish_logger(Logger logger, spdlog::level::level_enum level, LogFormat format) {
  if (format == LogFormat::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %n %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  return logger;
}

}  // namespace

Result<LogFormat> parse_log_format(const std::string& text) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return make_error(ErrorCode::kInvalidArgument, "LOG_FORMAT: expected text or json, got '" + text + "'");
}

std::string json_log_line(const std::string& time, const std::string& level,
                          const std::string& logger, std::string_view msg) {
  nlohmann::ordered_json j;
  j["time"] = time;
  j["level"] = level == "warning" ? "warn" : level;
  j["logger"] = logger;
  j["event"] = "";  // filled below; here so it comes before the fields
  std::string event;
  std::string detail;
  size_t pos = 0;
  bool in_fields = false;
  while (pos < msg.size()) {
    if (msg[pos] == ' ') {
      ++pos;
      continue;
    }
    const size_t space = std::min(msg.find(' ', pos), msg.size());
    const size_t eq = msg.find('=', pos);
    if (eq != std::string_view::npos && eq < space && is_field_key(msg.substr(pos, eq - pos))) {
      in_fields = true;
      std::string key(msg.substr(pos, eq - pos));
      if (key == "time" || key == "level" || key == "logger" || key == "event") key = "field_" + key;
      pos = eq + 1;
      j[key] = typed(read_value(msg, pos));
      continue;
    }
    std::string& text = in_fields ? detail : event;
    if (!text.empty()) text += ' ';
    text += msg.substr(pos, space - pos);
    pos = space;
  }
  j["event"] = event;
  if (!detail.empty()) j["detail"] = detail;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Logger make_stderr_logger(const std::string& name, spdlog::level::level_enum level, LogFormat format) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  return finish_logger(std::make_shared<spdlog::logger>(name, std::move(sink)), level, format);
}

Logger make_stream_logger(const std::string& name, std::ostream& out, LogFormat format) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  return finish_logger(std::make_shared<spdlog::logger>(name, std::move(sink)), spdlog::level::trace, format);
}

std::string log_value(const std::string& value) {
  const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
    return c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20;
  });
  if (plain) return value;
  std::string out = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[(c >> 4) & 0xF];
      out += kHex[c & 0xF];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string client_value_prefix(std::string_view value, size_t max_bytes) {
  if (value.size() <= max_bytes) return std::string(value);
  size_t cut = max_bytes;
  // Back off to the start of a UTF-8 sequence so the prefix stays valid text.
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  return std::string(value.substr(0, cut)) + "...(+" + std::to_string(value.size() - cut) +
         " bytes)";
}

std::string log_client_value(std::string_view value, size_t max_bytes) {
  return log_value(client_value_prefix(value, max_bytes));
}

}  // namespace transfer
