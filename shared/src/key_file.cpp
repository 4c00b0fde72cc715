#include "transfer/key_file.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "transfer/python_base64.hpp"

namespace transfer {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

bool is_b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '-' || c == '_';
}

std::string how_to_create(const std::string& origin) {
  return "create one with: dd if=/dev/urandom bs=32 count=1 2>/dev/null | openssl base64 > " +
         origin + " (or scripts/prepare-env.sh)";
}

// One key: 44 characters of base64 (either alphabet) ending in '=', nothing else.
Result<FernetKey> parse_one(std::string_view line, const std::string& where) {
  const bool shape_ok = line.size() == 44 && line[43] == '=' &&
                        std::all_of(line.begin(), line.end() - 1, is_b64_char);
  if (!shape_ok) {
    return make_error(ErrorCode::kInvalidKey,
                      where + ": not a Fernet key (expected base64 of 32 bytes: 44 characters "
                              "ending in '=')");
  }
  PythonBase64Decoder dec;
  std::string raw;
  dec.update(line.data(), line.size(), raw);
  if (!dec.finish_ok() || raw.size() != 32) {
    return make_error(ErrorCode::kInvalidKey, where + ": not a Fernet key (does not decode to 32 bytes)");
  }
  FernetKey key;
  std::memcpy(key.signing_key.data(), raw.data(), 16);
  std::memcpy(key.encryption_key.data(), raw.data() + 16, 16);
  OPENSSL_cleanse(raw.data(), raw.size());
  return key;
}

}  // namespace

Result<std::vector<FernetKey>> parse_key_text(std::string_view text, const std::string& origin) {
  std::vector<FernetKey> keys;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    auto key = parse_one(line, origin + " line " + std::to_string(line_no));
    if (!key) {
      return make_error(ErrorCode::kInvalidKey, key.error().message + "; " + how_to_create(origin));
    }
    keys.push_back(*key);
  }
  if (keys.empty()) {
    return make_error(ErrorCode::kInvalidKey, origin + ": the key file holds no key; " + how_to_create(origin));
  }
  return keys;
}

Result<std::vector<FernetKey>> load_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(ErrorCode::kInvalidKey, "cannot read key file " + path + ": " +
                                                  std::strerror(errno) + "; " + how_to_create(path));
  }
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > (1U << 16)) {
      return make_error(ErrorCode::kInvalidKey, path + ": too large to be a key file; " + how_to_create(path));
    }
  }
  auto keys = parse_key_text(text, path);
  OPENSSL_cleanse(text.data(), text.size());
  return keys;
}

Result<std::string> generate_key_text() {
  uint8_t raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return make_error(ErrorCode::kIo, "no random bytes");
  std::string text = urlsafe_b64encode(raw, sizeof raw);
  OPENSSL_cleanse(raw, sizeof raw);
  return text;
}

}  // namespace transfer
