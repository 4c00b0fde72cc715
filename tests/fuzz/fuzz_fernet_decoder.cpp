// libFuzzer target: the Fernet stream decoder on untrusted token text. The first byte picks the
// chunk size the token is fed in (the decoder must not care), the rest is the token. Two keys,
// so the multi-key path runs too. Invariant: plaintext is only "accepted" for a key that
// finish() names, and an accepted token re-encrypts to the same length.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "transfer/fernet.hpp"

using namespace transfer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const auto keys = *parse_key_text(
      "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", "fuzz");
  const size_t chunk = 1 + data[0] % 97;
  const char* token = reinterpret_cast<const char*>(data + 1);
  const size_t len = size - 1;
  std::string plain[2];
  auto dec = FernetStreamDecryptor::create(keys, [&](size_t k, const char* d, size_t n) {
    if (k >= 2) std::abort();
    plain[k].append(d, n);
    return ok_status();
  });
  if (!dec) std::abort();
  for (size_t i = 0; i < len; i += chunk) {
    if (!dec->update(token + i, std::min(chunk, len - i))) return 0;
  }
  auto key = dec->finish(1'700'000'000);
  if (key) {
    if (*key >= 2) std::abort();
    if (fernet_token_length(plain[*key].size()) > len + 4) std::abort();  // padding may vary
  }
  return 0;
}
