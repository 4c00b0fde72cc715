#pragma once
// Fernet (https://github.com/fernet/spec) as streams, so no stage holds a whole file.
//
//   token = base64url(0x80 | timestamp u64 BE | IV[16] | AES-128-CBC(PKCS7) | HMAC-SHA256[32])
//
// The encryptor produces the token text chunk by chunk; its length is known up front from the
// plaintext length (fernet_token_length) so a sender can announce a real Content-Length.
// The decryptor takes token text chunk by chunk (what Python accepts: either alphabet,
// whitespace and other stray characters skipped, text after the padding ignored) and writes
// plaintext as it goes; the plaintext must be treated as untrusted until finish() returns ok,
// which is when the HMAC has been verified. With several keys (MultiFernet semantics) the HMAC
// that matches is known only at the end, so each key decrypts in parallel into the sink with its
// index, and finish() says which one counts; a caller with one key sees only index 0.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transfer/key_file.hpp"
#include "transfer/python_base64.hpp"
#include "transfer/result.hpp"

namespace transfer {

// Length in characters of the token for `plaintext_size` bytes of plaintext.
uint64_t fernet_token_length(uint64_t plaintext_size);

class FernetStreamEncryptor {
 public:
  // `iv` and `timestamp` are for tests (spec vectors); normally both are chosen here.
  static Result<FernetStreamEncryptor> create(const FernetKey& key,
                                              std::optional<uint64_t> timestamp = std::nullopt,
                                              const uint8_t* iv = nullptr);
  FernetStreamEncryptor(FernetStreamEncryptor&&) noexcept;
  FernetStreamEncryptor& operator=(FernetStreamEncryptor&&) noexcept;
  ~FernetStreamEncryptor();

  // Appends token text for `size` more plaintext bytes to `out`.
  void update(const void* data, size_t size, std::string& out);
  // Appends the rest of the token (final block, HMAC, padding).
  void finish(std::string& out);

 private:
  struct State;
  explicit FernetStreamEncryptor(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
  std::vector<uint8_t> pending_header_;
};

class FernetStreamDecryptor {
 public:
  using PlaintextSink = std::function<Status(size_t key_index, const char* data, size_t size)>;
  using CiphertextSink = std::function<Status(const char* data, size_t size)>;

  // `sink` receives plaintext per key; an error from it stops decryption and is returned.
  static Result<FernetStreamDecryptor> create(std::vector<FernetKey> keys, PlaintextSink sink,
                                              std::optional<uint64_t> ttl_seconds = std::nullopt);
  // Authenticates without decrypting: the ciphertext (decoded, without header and HMAC) goes
  // to `sink` once, whatever the number of keys, and finish() says which key's HMAC matched;
  // decrypt it then with fernet_decrypt_in_place(). For a receiver that must not keep one copy
  // per key of data nobody has authenticated yet.
  static Result<FernetStreamDecryptor> create_authenticator(
      std::vector<FernetKey> keys, CiphertextSink sink, std::optional<uint64_t> ttl_seconds = std::nullopt);
  FernetStreamDecryptor(FernetStreamDecryptor&&) noexcept;
  FernetStreamDecryptor& operator=(FernetStreamDecryptor&&) noexcept;
  ~FernetStreamDecryptor();

  Status update(const char* data, size_t size);
  Status update(std::string_view text) { return update(text.data(), text.size()); }
  // Verifies framing, HMAC and padding. On success returns the index of the key that matched.
  Result<size_t> finish(uint64_t now_unix_seconds);

  uint64_t token_timestamp() const;
  // The token's IV (once its header has arrived).
  const std::array<uint8_t, 16>& iv() const;

 private:
  struct State;
  explicit FernetStreamDecryptor(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

// Decrypts in place the AES-128-CBC ciphertext of an authenticated token that `fd` holds from
// offset 0 (`ciphertext_size` bytes, as create_authenticator's sink received it), then truncates
// the file to the plaintext; `observe` sees the plaintext in order. Returns the plaintext size.
// kInvalidToken on bad padding; kIo/kNoSpace when reading or writing `path` fails.
Result<uint64_t> fernet_decrypt_in_place(int fd, uint64_t ciphertext_size, const FernetKey& key,
                                         const std::array<uint8_t, 16>& iv,
                                         const std::function<void(const char*, size_t)>& observe,
                                         const std::string& path);

// Whole-buffer helpers for tests and small payloads.
Result<std::string> fernet_encrypt(const FernetKey& key, std::string_view plaintext,
                                   std::optional<uint64_t> timestamp = std::nullopt,
                                   const uint8_t* iv = nullptr);
Result<std::string> fernet_decrypt(const std::vector<FernetKey>& keys, std::string_view token,
                                   std::optional<uint64_t> ttl_seconds = std::nullopt,
                                   uint64_t now_unix_seconds = 0);

}  // namespace transfer
