#include "transfer/python_base64.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstring>

namespace transfer {
namespace {

constexpr uint8_t kInvalid = 0xFF;

constexpr std::array<uint8_t, 256> make_table() {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = kInvalid;
  for (int i = 0; i < 26; ++i) t['A' + i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 26; ++i) t['a' + i] = static_cast<uint8_t>(26 + i);
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<uint8_t>(52 + i);
  t['+'] = t['-'] = 62;  // urlsafe_b64decode maps '-' to '+' and '_' to '/' first
  t['/'] = t['_'] = 63;
  return t;
}
constexpr auto kTable = make_table();

}  // namespace

// Mirrors CPython 3.11 binascii.a2b_base64(strict_mode=False), the decoder behind
// base64.urlsafe_b64decode() that Fernet uses. Whole quanta of four alphabet characters (nearly
// all of a token) take a fast path; anything else goes one character at a time.
void PythonBase64Decoder::update(const char* data, size_t size, std::string& out) {
  const auto* d = reinterpret_cast<const uint8_t*>(data);
  const size_t at = out.size();
  out.resize(at + (size + 3) / 4 * 3 + 3);  // at most 3 bytes per 4 characters, plus a carry
  auto* o = reinterpret_cast<uint8_t*>(out.data() + at);
  size_t i = 0;
  while (i < size && !done_) {
    if (quad_pos_ == 0) {
      const size_t from = i;
      while (i + 4 <= size) {
        const uint8_t a = kTable[d[i]], b = kTable[d[i + 1]], c = kTable[d[i + 2]], e = kTable[d[i + 3]];
        if ((a | b | c | e) & 0x80) break;  // '=' or outside the alphabet: the careful path
        const uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6) | e;
        o[0] = static_cast<uint8_t>(v >> 16);
        o[1] = static_cast<uint8_t>(v >> 8);
        o[2] = static_cast<uint8_t>(v);
        o += 3;
        i += 4;
      }
      if (i != from) pads_ = 0;
      if (i == size) break;
    }
    const uint8_t ch = d[i++];
    if (ch == '=') {
      if (quad_pos_ >= 2 && quad_pos_ + ++pads_ >= 4) done_ = true;
      continue;
    }
    const uint8_t v = kTable[ch];
    if (v == kInvalid) continue;
    pads_ = 0;
    switch (quad_pos_) {
      case 0:
        quad_pos_ = 1;
        left_ = v;
        break;
      case 1:
        quad_pos_ = 2;
        *o++ = static_cast<uint8_t>((left_ << 2) | (v >> 4));
        left_ = v & 0x0F;
        break;
      case 2:
        quad_pos_ = 3;
        *o++ = static_cast<uint8_t>((left_ << 4) | (v >> 2));
        left_ = v & 0x03;
        break;
      default:
        quad_pos_ = 0;
        *o++ = static_cast<uint8_t>((left_ << 6) | v);
        left_ = 0;
        break;
    }
  }
  out.resize(static_cast<size_t>(reinterpret_cast<char*>(o) - out.data()));
}

namespace {
// Which bytes of `w` equal `c`: 0x01 in each such byte, 0 elsewhere (exact, no carries).
uint64_t bytes_equal(uint64_t w, char c) {
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL;
  const uint64_t x = w ^ (0x0101010101010101ULL * static_cast<uint8_t>(c));
  return (~(((x & kLow7) + kLow7) | x | kLow7)) >> 7;
}
}  // namespace

void to_url_safe_alphabet(char* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    w += bytes_equal(w, '+') * ('-' - '+') + bytes_equal(w, '/') * ('_' - '/');
    std::memcpy(p + i, &w, 8);
  }
  for (; i < n; ++i) {
    if (p[i] == '+') p[i] = '-';
    if (p[i] == '/') p[i] = '_';
  }
}

void append_urlsafe_b64(const uint8_t* data, size_t size, std::string& out) {
  const size_t at = out.size();
  out.resize(at + 4 * ((size + 2) / 3) + 1);
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + at), data,
                                static_cast<int>(size));
  out.resize(at + static_cast<size_t>(n));
  to_url_safe_alphabet(out.data() + at, static_cast<size_t>(n));
}

std::string urlsafe_b64encode(const uint8_t* data, size_t size) {
  std::string out;
  append_urlsafe_b64(data, size, out);
  return out;
}

}  // namespace transfer
