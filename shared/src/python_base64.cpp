#include "transfer/python_base64.hpp"

#include <openssl/evp.h>

#include <array>

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
// base64.urlsafe_b64decode() that Fernet uses.
void PythonBase64Decoder::update(const char* data, size_t size, std::string& out) {
  for (size_t i = 0; i < size && !done_; ++i) {
    const auto ch = static_cast<uint8_t>(data[i]);
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
        out.push_back(static_cast<char>((left_ << 2) | (v >> 4)));
        left_ = v & 0x0F;
        break;
      case 2:
        quad_pos_ = 3;
        out.push_back(static_cast<char>((left_ << 4) | (v >> 2)));
        left_ = v & 0x03;
        break;
      default:
        quad_pos_ = 0;
        out.push_back(static_cast<char>((left_ << 6) | v));
        left_ = 0;
        break;
    }
  }
}

std::string urlsafe_b64encode(const uint8_t* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

}  // namespace transfer
