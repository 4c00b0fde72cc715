#include "transfer/key_file.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "transfer/file_util.hpp"
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

constexpr size_t kMaxKeyFileBytes = 1U << 16;

Error not_a_regular_file(const std::string& path, unsigned mode) {
  const char* kind = S_ISFIFO(mode)   ? "a FIFO"
                     : S_ISSOCK(mode) ? "a socket"
                     : S_ISCHR(mode)  ? "a character device"
                     : S_ISBLK(mode)  ? "a block device"
                     : S_ISDIR(mode)  ? "a directory"
                                      : "not a regular file";
  return make_error(ErrorCode::kInvalidKey,
                    "key file " + path + " is " + kind +
                        ", not a regular file: refusing to read it (replace it "
                        "with a file holding the key)");
}

// `s` as one word for a POSIX shell: as is when it holds only safe characters, else in single
// quotes (a quote inside as '\'').
std::string shell_quoted(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::string_view("_-./+:,=@%").find(c) != std::string_view::npos;
  });
  if (plain) return s;
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
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

Result<KeyFileContents> read_key_file(const std::string& path) {
  // Non-blocking: opening a FIFO for reading would otherwise wait for a writer, forever and deaf
  // to SIGTERM (the signal thread asks the service to stop, and the service is not built yet).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  struct stat st {};
  if (!fd) {
    const int err = errno;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      return not_a_regular_file(path, st.st_mode);
    return make_error(ErrorCode::kInvalidKey, "cannot read key file " + path + ": " +
                                                  std::strerror(err) + "; " + how_to_create(path));
  }
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(ErrorCode::kInvalidKey,
                      "cannot stat key file " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return not_a_regular_file(path, st.st_mode);
  std::string text;
  // One buffer, so that cleansing it at the end reaches every copy of the key text.
  text.reserve(std::min(static_cast<size_t>(st.st_size), kMaxKeyFileBytes) + 1);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      OPENSSL_cleanse(text.data(), text.size());
      return make_error(ErrorCode::kInvalidKey,
                        "cannot read key file " + path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxKeyFileBytes) {
      OPENSSL_cleanse(text.data(), text.size());
      OPENSSL_cleanse(buf, sizeof buf);
      return make_error(ErrorCode::kInvalidKey, path + ": too large to be a key file; " + how_to_create(path));
    }
  }
  OPENSSL_cleanse(buf, sizeof buf);
  auto keys = parse_key_text(text, path);
  OPENSSL_cleanse(text.data(), text.size());
  if (!keys) return keys.error();
  return KeyFileContents{std::move(*keys), key_file_access_warning(path, st.st_mode)};
}

Result<std::vector<FernetKey>> load_key_file(const std::string& path) {
  auto contents = read_key_file(path);
  if (!contents) return contents.error();
  return std::move(contents->keys);
}

std::string key_file_access_warning(const std::string& path, unsigned mode) {
  if ((mode & S_IROTH) == 0) return {};
  char octal[8];
  std::snprintf(octal, sizeof octal, "%04o", mode & 07777U);
  const std::string quoted = shell_quoted(path);
  return "key file " + path + " is readable by every user on this host (mode " + octal +
         "): run chmod o-r " + quoted + " (or chmod 600 " + quoted + ")";
}

Result<std::string> generate_key_text() {
  uint8_t raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return make_error(ErrorCode::kIo, "no random bytes");
  std::string text = urlsafe_b64encode(raw, sizeof raw);
  OPENSSL_cleanse(raw, sizeof raw);
  return text;
}

}  // namespace transfer
