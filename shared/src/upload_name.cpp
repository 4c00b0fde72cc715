#include "transfer/upload_name.hpp"

#include <algorithm>
#include <cstdio>

namespace transfer {
namespace {

struct CodeRange {
  char32_t first, last;
};
#include "upload_name_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t cp) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), cp,
                                    [](char32_t c, const CodeRange& r) { return c < r.first; });
  return it != std::begin(table) && cp <= std::prev(it)->last;
}

Error bad(std::string why) { return make_error(ErrorCode::kInvalidName, "invalid upload name: " + std::move(why)); }

std::string code_point_label(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

// Length of the UTF-8 sequence at s[i] if it is well formed (no overlongs, no surrogates), else 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  auto cont = [&](size_t k, uint8_t lo = 0x80, uint8_t hi = 0xBF) {
    if (i + k >= s.size()) return false;
    const auto b = static_cast<uint8_t>(s[i + k]);
    return b >= lo && b <= hi;
  };
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b0 >= 0xE1 && b0 <= 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (b0 == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// The code point of the well-formed sequence of `len` bytes at s[i].
char32_t decode(std::string_view s, size_t i, size_t len) {
  static constexpr uint8_t kLeadMask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t cp = static_cast<uint8_t>(s[i]) & kLeadMask[len];
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  return cp;
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
    const size_t len = utf8_sequence(name, i);
    if (len == 0) return bad("not valid UTF-8");
    const char32_t cp = decode(name, i, len);
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
