#pragma once
// Loggers are values made in main and passed in (tests give them an ostream sink).
// Lines carry key=value fields: "delivered file=books.json bytes=2048 ms=3 status=201".

#include <memory>
#include <spdlog/logger.h>
#include <string>
#include <string_view>

#include "transfer/result.hpp"

namespace transfer {

using Logger = std::shared_ptr<spdlog::logger>;

// Level names as the old pair took them (case-insensitive): debug, info, warning/warn, error,
// critical, plus trace and off.
Result<spdlog::level::level_enum> parse_log_level(const std::string& text);

// LOG_FORMAT: text (the default, "time level program event key=value ...") or json (one object
// per line: {"time":..,"level":..,"logger":..,"event":..,<field>:<value>,...}).
enum class LogFormat { kText, kJson };
Result<LogFormat> parse_log_format(const std::string& text);

// A logger writing one line per event to stderr.
Logger make_stderr_logger(const std::string& name, spdlog::level::level_enum level,
                          LogFormat format = LogFormat::kText);

// A logger writing to `out` (tests).
Logger make_stream_logger(const std::string& name, std::ostream& out, LogFormat format);

// The JSON line for one message written as "event words key=value key="quoted value" ...":
// the words before the first key=value are the event; values are unquoted (log_value's
// quoting), integers and decimals become numbers; words after the fields go to "detail".
// Field names that collide with time, level, logger or event get a "field_" prefix.
std::string json_log_line(const std::string& time, const std::string& level,
                          const std::string& logger, std::string_view message);

// Quotes a field value for key=value logs when it holds spaces, quotes or control characters.
std::string log_value(const std::string& value);

// A value a client chose (a name, a header), for a log line or a message: at most `max_bytes`
// of it (cut at a UTF-8 boundary), then "...(+N bytes)", quoted as log_value quotes. A client
// cannot make a line longer than that by sending a longer value.
inline constexpr size_t kClientValueLogBytes = 64;
std::string log_client_value(std::string_view value, size_t max_bytes = kClientValueLogBytes);
// The same prefix without the quoting (for messages that are JSON-encoded later).
std::string client_value_prefix(std::string_view value, size_t max_bytes = kClientValueLogBytes);

}  // namespace transfer
