// libFuzzer target: upload-name validation (the <name> of POST /upload/<name>, percent-decoded).
// Invariants: an accepted name is one path component that is not "." or "..", not hidden, with
// no separator, NUL or control character, so "<dir>/<name>.xml" stays in <dir> (".." inside a
// name, as in "a..b", is harmless there); it is in NFC (utf8proc agrees it is its own NFC form)
// and holds no invisible filler. A refusal's message is short and never repeats a long name.
#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "transfer/upload_name.hpp"

using namespace transfer;

namespace {

bool is_nfc(const std::string& name) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(name.data()),
                              static_cast<utf8proc_ssize_t>(name.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const bool same =
      n >= 0 && name == std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return same;
}

bool holds_a_filler(const std::string& name) {
  for (const char* filler : {"\u115F", "\u1160", "\u3164", "\uFFA0", "\u2800"}) {
    if (name.find(filler) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name(reinterpret_cast<const char*>(data), size);
  auto valid = validate_upload_name(name);
  if (!valid) {
    const std::string& message = valid.error().message;
    if (message.size() > 256) std::abort();
    if (name.size() >= 32 && message.find(name) != std::string::npos) std::abort();
    return 0;
  }
  if (name.empty() || name.front() == '.' || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos ||
      name == "." || name == ".." || name.size() > 255) {
    std::abort();
  }
  for (const unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) std::abort();
  }
  if (!is_nfc(name) || holds_a_filler(name)) std::abort();
  return 0;
}
