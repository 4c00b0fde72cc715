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

// Reads and parses a key file. Errors name the path and say how to create a key.
Result<std::vector<FernetKey>> load_key_file(const std::string& path);

// Base64 text (URL-safe alphabet, as Python's Fernet.generate_key()) of 32 fresh random bytes.
Result<std::string> generate_key_text();

}  // namespace transfer
