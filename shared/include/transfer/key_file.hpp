#pragma once
// Fernet keys as the old pair stored them: a text file holding base64 (standard or URL-safe
// alphabet, '=' padded) of exactly 32 bytes, surrounding whitespace ignored. A file may hold
// several keys, one per line: the first is the one to encrypt with, any may decrypt (Python's
// MultiFernet). Key material never appears in an error message.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "transfer/result.hpp"

namespace transfer {

struct FernetKey {
  std::array<uint8_t, 16> signing_key{};
  std::array<uint8_t, 16> encryption_key{};
};

// Parses the text of a key file; `origin` names it in errors.
Result<std::vector<FernetKey>> parse_key_text(std::string_view text, const std::string& origin);

// A key file as read: its keys and what its permissions say.
struct KeyFileContents {
  std::vector<FernetKey> keys;
  // Non-empty when users other than the owner and the group may read the file (mode o+r): one
  // line naming the path and the chmod to run. The caller logs it (this library has no logger).
  std::string access_warning;
};

// Reads and parses a key file. It is opened non-blocking and must be a regular file (a symlink
// to one is fine): a FIFO, socket, device or directory is refused with kInvalidKey without
// waiting for a writer. Errors name the path and say how to create a key.
Result<KeyFileContents> read_key_file(const std::string& path);
// The keys of read_key_file(path).
Result<std::vector<FernetKey>> load_key_file(const std::string& path);

// The warning read_key_file() gives a file of permission bits `mode` ("" when others cannot
// read it): "key file /k is readable by every user (mode 0644): run chmod o-r /k ...".
std::string key_file_access_warning(const std::string& path, unsigned mode);

// Base64 text (URL-safe alphabet, as Python's Fernet.generate_key()) of 32 fresh random bytes.
Result<std::string> generate_key_text();

}  // namespace transfer
