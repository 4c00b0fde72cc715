#include "transfer/upload_name.hpp"

namespace transfer {
namespace {

Error bad(std::string why) { return make_error(ErrorCode::kInvalidName, "invalid upload name: " + std::move(why)); }

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

}  // namespace

Status validate_upload_name(std::string_view name) {
  if (name.empty()) return bad("empty");
  if (name.size() > kMaxUploadNameBytes) {
    return bad("longer than " + std::to_string(kMaxUploadNameBytes) + " bytes");
  }
  if (name.front() == '.') return bad("starts with a dot");
  for (size_t i = 0; i < name.size();) {
    const auto c = static_cast<uint8_t>(name[i]);
    if (c == '/' || c == '\\') return bad("contains a path separator");
    if (c < 0x20 || c == 0x7F) return bad("contains a control character");
    const size_t len = utf8_sequence(name, i);
    if (len == 0) return bad("not valid UTF-8");
    if (len == 2 && c == 0xC2 && static_cast<uint8_t>(name[i + 1]) < 0xA0) {
      return bad("contains a control character");  // C1 controls U+0080..U+009F
    }
    i += len;
  }
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
