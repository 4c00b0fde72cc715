#include "transfer/terminal_text.hpp"

#include <cstdint>
#include <cstdio>
#include <utility>

#include "utf8.hpp"

namespace transfer {
namespace {

using utf8::CodeRange;
using utf8::in_ranges;
#include "upload_name_tables.inc"

bool needs_escape(char32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || in_ranges(kFormatChars, cp) ||
         in_ranges(kLineSeparators, cp);
}

void escape_code_point(std::string& out, char32_t cp) {
  static constexpr std::pair<char32_t, const char*> kShortForms[] = {
      {'\n', "\\n"}, {'\r', "\\r"}, {'\t', "\\t"}};
  for (const auto& [c, form] : kShortForms) {
    if (cp == c) {
      out += form;
      return;
    }
  }
  char buf[16];
  if (cp < 0x80) {
    std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
  } else if (cp <= 0xFFFF) {
    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
  } else {
    std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
  }
  out += buf;
}

// `text` escaped; `quoting` also escapes '"' and '\'. Returns whether anything was escaped.
bool escape(std::string_view text, bool quoting, std::string& out) {
  bool escaped = false;
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8::sequence_length(text, i);
    if (len == 0) {  // not UTF-8: the byte itself
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x",
                    static_cast<unsigned>(static_cast<uint8_t>(text[i])));
      out += buf;
      escaped = true;
      ++i;
      continue;
    }
    const char32_t cp = utf8::decode(text, i, len);
    if (needs_escape(cp)) {
      escape_code_point(out, cp);
      escaped = true;
    } else if (quoting && (cp == '"' || cp == '\\')) {
      out += '\\';
      out += static_cast<char>(cp);
      escaped = true;
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return escaped;
}

}  // namespace

std::string terminal_name(std::string_view name) {
  std::string out = "\"";
  if (!escape(name, /*quoting=*/true, out)) return std::string(name);
  return out + "\"";
}

std::string terminal_text(std::string_view text) {
  std::string out;
  escape(text, /*quoting=*/false, out);
  return out;
}

}  // namespace transfer
