#include "input_screen.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "transfer/file_util.hpp"

namespace transfer::sender {
namespace {

// Reads up to `size` bytes at `offset` (fewer only at the end of the file).
Result<size_t> read_at(int fd, char* buf, size_t size, off_t offset, const std::string& name) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, buf + got, size - got, offset + static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot read", name, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

std::string hex_byte(unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("0x") + kHex[c >> 4] + kHex[c & 0xF];
}

// Sparse: a hole before the end, or (where holes are not reported) little allocated and a NUL
// byte at one of the places probed.
Result<std::optional<std::string>> check_sparse(int fd, const struct stat& st,
                                                const std::string& name) {
  const auto size = static_cast<int64_t>(st.st_size);
  const auto allocated = static_cast<int64_t>(st.st_blocks) * 512;
  const std::string figures =
      std::to_string(size) + " bytes with " + std::to_string(allocated) + " allocated, ";
  if (size == 0) return std::optional<std::string>();
  const off_t hole = ::lseek(fd, 0, SEEK_HOLE);
  if (::lseek(fd, 0, SEEK_SET) != 0) return errno_error("cannot seek in", name, errno);
  if (hole >= 0 && hole < size) {
    return std::optional<std::string>(figures + "a hole at byte offset " + std::to_string(hole) +
                                      " (a hole reads as NUL bytes, which no JSON text holds)");
  }
  // No hole reported: there is none, or the file system cannot tell (SEEK_HOLE fails, or its
  // generic implementation calls the whole file data). The allocation decides whether to probe.
  std::array<char, kScreenPrefixBytes> buf{};
  for (const int64_t at : sparse_probe_offsets(size, allocated)) {
    auto n = read_at(fd, buf.data(), buf.size(), static_cast<off_t>(at), name);
    if (!n) return n.error();
    if (const void* nul = std::memchr(buf.data(), 0, *n)) {
      const int64_t offset = at + (static_cast<const char*>(nul) - buf.data());
      return std::optional<std::string>(figures + "a NUL byte at byte offset " +
                                        std::to_string(offset) + " (no JSON text holds one)");
    }
  }
  return std::optional<std::string>();
}

}  // namespace

std::vector<int64_t> sparse_probe_offsets(int64_t size, int64_t allocated) {
  std::vector<int64_t> out;
  if (size < kSparseCheckMinBytes || allocated >= size / kSparseAllocationRatio) return out;
  const int64_t last = size - static_cast<int64_t>(kScreenPrefixBytes);
  for (int k = 0; k < kSparseProbes; ++k) out.push_back(last * k / (kSparseProbes - 1));
  return out;
}

std::optional<std::string> check_json_start(std::string_view prefix) {
  if (const void* nul = std::memchr(prefix.data(), 0, prefix.size())) {
    return "invalid JSON at byte offset " +
           std::to_string(static_cast<const char*>(nul) - prefix.data()) + ": raw NUL byte";
  }
  size_t i = prefix.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;  // the converter skips a UTF-8 BOM
  while (i < prefix.size() &&
         (prefix[i] == ' ' || prefix[i] == '\t' || prefix[i] == '\n' || prefix[i] == '\r')) {
    ++i;
  }
  if (i == prefix.size()) return std::nullopt;  // empty or blank so far: the converter decides
  const char c = prefix[i];
  if (std::strchr("{[\"-0123456789tfn", c) != nullptr) return std::nullopt;
  return "invalid JSON at byte offset " + std::to_string(i) + ": " +
         hex_byte(static_cast<unsigned char>(c)) + " cannot begin a JSON text";
}

Result<std::optional<std::string>> screen_input(int fd, const struct stat& st,
                                                const std::string& name,
                                                const ScreenLimits& limits) {
  const auto size = static_cast<int64_t>(st.st_size);
  if (limits.max_input_bytes > 0 && size > limits.max_input_bytes) {
    return std::optional<std::string>(name + ": refused: " + std::to_string(size) +
                                      " bytes, more than MAX_INPUT_BYTES=" +
                                      std::to_string(limits.max_input_bytes) + " (not read)");
  }
  auto sparse = check_sparse(fd, st, name);
  if (!sparse) return sparse.error();
  if (*sparse) {
    return std::optional<std::string>(name + ": refused as sparse: " + **sparse + "; not hashed");
  }
  std::array<char, kScreenPrefixBytes> buf{};
  auto n = read_at(fd, buf.data(), buf.size(), 0, name);
  if (!n) return n.error();
  if (auto why = check_json_start(std::string_view(buf.data(), *n))) {
    return std::optional<std::string>(name + ": " + *why +
                                      " (seen in its first bytes; not hashed)");
  }
  return std::optional<std::string>();
}

}  // namespace transfer::sender
