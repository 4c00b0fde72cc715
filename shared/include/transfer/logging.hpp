#pragma once
// Loggers are values made in main and passed in (tests give them an ostream sink).
// Lines carry key=value fields: "delivered file=books.json bytes=2048 ms=3 status=201".

#include <memory>
#include <spdlog/logger.h>
#include <string>

#include "transfer/result.hpp"

namespace transfer {

using Logger = std::shared_ptr<spdlog::logger>;

// Level names as the old pair took them (case-insensitive): debug, info, warning/warn, error,
// critical, plus trace and off.
Result<spdlog::level::level_enum> parse_log_level(const std::string& text);

// A logger writing one line per event to stderr.
Logger make_stderr_logger(const std::string& name, spdlog::level::level_enum level);

// Quotes a field value for key=value logs when it holds spaces, quotes or control characters.
std::string log_value(const std::string& value);

}  // namespace transfer
