// libFuzzer target: upload-name validation (the <name> of POST /upload/<name>, percent-decoded).
// Invariant: an accepted name is one path component that is not "." or "..", not hidden, with
// no separator, NUL or control character, so "<dir>/<name>.xml" stays in <dir>. (".." inside a
// name, as in "a..b", is harmless there.)
#include <cstdint>
#include <cstdlib>
#include <string>

#include "transfer/upload_name.hpp"

using namespace transfer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name(reinterpret_cast<const char*>(data), size);
  if (!validate_upload_name(name)) return 0;
  if (name.empty() || name.front() == '.' || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos ||
      name == "." || name == ".." || name.size() > 255) {
    std::abort();
  }
  for (const unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) std::abort();
  }
  return 0;
}
