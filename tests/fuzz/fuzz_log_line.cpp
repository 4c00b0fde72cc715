// libFuzzer target: the JSON log formatter (LOG_FORMAT=json), which re-reads messages that carry
// untrusted text (upload names, peers' error messages) quoted by log_value(). Invariants: any
// message gives one line of valid JSON; a field written by log_value() reads back as the same
// text when it stays a string (ASCII input; other bytes may be replaced to keep the JSON valid).
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "transfer/logging.hpp"

using namespace transfer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const std::string& msg : {text, "upload rejected name=" + log_value(text) + " status=400"}) {
    const std::string line = json_log_line("t", "info", "fuzz", msg);
    if (line.find('\n') != std::string::npos) std::abort();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      std::abort();
    }
    if (!j.contains("event") || !j.contains("time")) std::abort();
  }
  bool ascii = !text.empty();
  for (const unsigned char c : text) ascii = ascii && c < 0x80;
  if (ascii) {
    const auto j = nlohmann::json::parse(json_log_line("t", "info", "fuzz", "e name=" + log_value(text)));
    if (j.contains("name") && j["name"].is_string() && j["name"].get<std::string>() != text) std::abort();
    if (!j.contains("name")) std::abort();
  }
  return 0;
}
