#include "transfer/upload_name.hpp"

#include <cstdio>

#include "utf8.hpp"

namespace transfer {
namespace {

using utf8::CodeRange;
using utf8::in_ranges;
#include "upload_name_tables.inc"

Error bad(std::string why) { return make_error(ErrorCode::kInvalidName, "invalid upload name: " + std::move(why)); }

std::string code_point_label(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

}  // namespace

Status validate_upload_name(std::string_view name) {
  if (name.empty()) return bad("empty");
  if (name.size() > kMaxUploadNameBytes) {
    return bad("longer than " + std::to_string(kMaxUploadNameBytes) + " bytes");
  }
  if (name.front() == '.') return bad("starts with a dot");
  bool only_spaces = true;
  char32_t last = 0;
  for (size_t i = 0; i < name.size();) {
    const auto c = static_cast<uint8_t>(name[i]);
    if (c == '/' || c == '\\') return bad("contains a path separator");
    if (c < 0x20 || c == 0x7F) return bad("contains a control character");
    const size_t len = utf8::sequence_length(name, i);
    if (len == 0) return bad("not valid UTF-8");
    const char32_t cp = utf8::decode(name, i, len);
    if (cp >= 0x80 && cp <= 0x9F) return bad("contains a control character");  // C1 controls
    if (in_ranges(kFormatChars, cp)) {
      return bad("contains the invisible format character " + code_point_label(cp) +
                 " (Unicode category Cf: bidi controls and zero-width characters can make a name "
                 "read as another)");
    }
    if (in_ranges(kLineSeparators, cp))
      return bad("contains the line or paragraph separator " + code_point_label(cp));
    only_spaces = only_spaces && in_ranges(kSpaceSeparators, cp);
    last = cp;
    i += len;
  }
  if (only_spaces) return bad("made only of spaces");
  if (last == '.') return bad("ends in a dot");
  if (in_ranges(kSpaceSeparators, last))
    return bad("ends in a space (" + code_point_label(last) + ")");
  return ok_status();
}

std::string upload_name_for_file(std::string_view file_name) {
  constexpr std::string_view kSuffix = ".json";
  if (file_name.size() >= kSuffix.size() &&
      file_name.substr(file_name.size() - kSuffix.size()) == kSuffix) {
    file_name.remove_suffix(kSuffix.size());
  }
  return std::string(file_name);
}

}  // namespace transfer
