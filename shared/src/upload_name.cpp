#include "transfer/upload_name.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

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

// The NFC form of `s` (well-formed UTF-8), by utf8proc; nothing if utf8proc fails (it does only
// on input that is not UTF-8, or when out of memory).
std::optional<std::string> nfc(std::string_view s) {
  struct Free {
    void operator()(utf8proc_uint8_t* p) const { std::free(p); }
  };
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
      &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, Free> owned(out);
  if (n < 0 || out == nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

// "U+0065 U+0301" for the code points of `s` (well-formed UTF-8): at most four, then "...".
std::string code_point_labels(std::string_view s) {
  constexpr int kShown = 4;
  std::string out;
  int shown = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8::sequence_length(s, i);
    if (len == 0) break;
    if (shown == kShown) return out + " ...";
    if (shown++ > 0) out += ' ';
    out += code_point_label(utf8::decode(s, i, len));
    i += len;
  }
  return out;
}

// Why `name` (well-formed UTF-8 whose code points start at `starts`, one past the end last) is not
// in NFC: the shortest run of it that is not, from the starter (combining class 0) before the
// first code point that normalization changes to the next starter, with its NFC form. A run is
// not cut before a starter that normalization composes with what precedes it (Hangul jamo, a few
// Indic vowel signs): the run grows until it alone changes under normalization.
std::string not_nfc_reason(std::string_view name, const std::vector<size_t>& starts,
                           std::string_view normalized) {
  const size_t n = starts.size() - 1;
  auto at = [&](size_t k) { return utf8::decode(name, starts[k], starts[k + 1] - starts[k]); };
  auto starter = [&](size_t k) {
    return utf8proc_get_property(static_cast<utf8proc_int32_t>(at(k)))->combining_class == 0;
  };
  // The code point holding the first byte that normalization changes.
  const size_t byte = static_cast<size_t>(
      std::mismatch(name.begin(), name.end(), normalized.begin(), normalized.end()).first -
      name.begin());
  const auto holding = std::upper_bound(starts.begin(), starts.end(), byte) - 1;
  size_t from = std::min(static_cast<size_t>(holding - starts.begin()), n - 1);
  while (from > 0 && !starter(from)) --from;
  std::string run;
  std::string fixed;
  for (size_t to = from + 1; to <= n; ++to) {
    if (to < n && !starter(to)) continue;
    run = std::string(name.substr(starts[from], starts[to] - starts[from]));
    if (auto f = nfc(run); f && *f != run) {
      fixed = std::move(*f);
      break;
    }
  }
  if (fixed.empty()) {  // not expected: show where it starts to differ
    return "not in Unicode normalization form NFC (from " +
           code_point_labels(name.substr(starts[from])) + ": use the composed form)";
  }
  return "not in Unicode normalization form NFC (" + code_point_labels(run) +
         ": use the composed form " + code_point_labels(fixed) + ")";
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
  std::vector<size_t> starts;  // where each code point starts
  starts.reserve(name.size() + 1);
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
    if (in_ranges(kInvisibleFillers, cp)) {
      return bad("contains the invisible filler " + code_point_label(cp) +
                 " (Hangul fillers and the blank Braille pattern draw nothing: a name can look "
                 "empty or read as another)");
    }
    if (in_ranges(kLineSeparators, cp))
      return bad("contains the line or paragraph separator " + code_point_label(cp));
    only_spaces = only_spaces && in_ranges(kSpaceSeparators, cp);
    last = cp;
    starts.push_back(i);
    i += len;
  }
  starts.push_back(name.size());
  if (only_spaces) return bad("made only of spaces");
  if (last == '.') return bad("ends in a dot");
  if (in_ranges(kSpaceSeparators, last))
    return bad("ends in a space (" + code_point_label(last) + ")");
  // One name, one spelling: "caf\u00E9" (NFC) and "cafe\u0301" (NFD) look the same but would be
  // two files. NFC is what macOS, Windows and most input methods produce.
  const auto normalized = nfc(name);
  if (!normalized) return bad("cannot be normalized to NFC");
  if (*normalized != name) return bad(not_nfc_reason(name, starts, *normalized));
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
