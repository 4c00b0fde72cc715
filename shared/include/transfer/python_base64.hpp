#pragma once
// A streaming base64 decoder that accepts exactly what Python's base64.urlsafe_b64decode()
// accepts (binascii.a2b_base64 in its default, non-strict mode): both alphabets, characters
// outside the alphabet are skipped, decoding stops at the first complete '=' padding (anything
// after it is ignored), and a final partial quantum is an error.

#include <cstddef>
#include <cstdint>
#include <string>

namespace transfer {

class PythonBase64Decoder {
 public:
  // Decodes `size` characters, appending bytes to `out`.
  void update(const char* data, size_t size, std::string& out);
  // True when the input seen so far forms a complete encoding (call after the last update).
  bool finish_ok() const { return done_ || quad_pos_ == 0; }

 private:
  int quad_pos_ = 0;
  int pads_ = 0;
  uint8_t left_ = 0;
  bool done_ = false;
};

// Standard base64 text to the URL-safe alphabet in place ('+' -> '-', '/' -> '_'), eight bytes
// per step (as two tests per byte it was a quarter of the encryptor's instructions).
void to_url_safe_alphabet(char* text, size_t size);

// Encodes with the URL-safe alphabet and '=' padding (OpenSSL underneath), appending to `out`.
void append_urlsafe_b64(const uint8_t* data, size_t size, std::string& out);
// The same into a new string.
std::string urlsafe_b64encode(const uint8_t* data, size_t size);

}  // namespace transfer
