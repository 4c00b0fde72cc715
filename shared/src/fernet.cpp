#include "transfer/fernet.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "transfer/file_util.hpp"

namespace transfer {
namespace {

constexpr uint8_t kVersion = 0x80;
constexpr size_t kHeaderSize = 1 + 8 + 16;
constexpr size_t kMacSize = 32;
constexpr size_t kBlock = 16;

struct CipherFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherFree>;
using MacCtx = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

Error invalid_token(std::string why) {
  return make_error(ErrorCode::kInvalidToken, "invalid Fernet token: " + std::move(why));
}

Result<MacCtx> new_hmac(const std::array<uint8_t, 16>& key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return make_error(ErrorCode::kIo, "OpenSSL: HMAC unavailable");
  MacCtx ctx(EVP_MAC_CTX_new(mac));
  EVP_MAC_free(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (!ctx || EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1) {
    return make_error(ErrorCode::kIo, "OpenSSL: HMAC init failed");
  }
  return ctx;
}

Result<CipherCtx> new_cipher(const std::array<uint8_t, 16>& key, const uint8_t* iv, bool encrypt) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, key.data(), iv,
                                encrypt ? 1 : 0) != 1) {
    return make_error(ErrorCode::kIo, "OpenSSL: AES init failed");
  }
  return ctx;
}

uint64_t unix_now() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Streams raw bytes out as URL-safe base64 text, carrying up to two bytes between calls.
class Base64Writer {
 public:
  void write(const uint8_t* data, size_t size, std::string& out) {
    while (size > 0 && carry_len_ > 0 && carry_len_ < 3) {
      carry_[carry_len_++] = *data++;
      --size;
    }
    if (carry_len_ == 3) {
      append_urlsafe_b64(carry_, 3, out);
      carry_len_ = 0;
    }
    const size_t whole = size - size % 3;
    if (whole > 0) append_urlsafe_b64(data, whole, out);
    for (size_t i = whole; i < size; ++i) carry_[carry_len_++] = data[i];
  }
  void finish(std::string& out) {
    if (carry_len_ > 0) append_urlsafe_b64(carry_, carry_len_, out);
    carry_len_ = 0;
  }

 private:
  uint8_t carry_[3] = {};
  size_t carry_len_ = 0;
};

}  // namespace

uint64_t fernet_token_length(uint64_t plaintext_size) {
  const uint64_t raw = kHeaderSize + kBlock * (plaintext_size / kBlock + 1) + kMacSize;
  return 4 * ((raw + 2) / 3);
}

// ---------------------------------------------------------------------------------------------
struct FernetStreamEncryptor::State {
  CipherCtx cipher;
  MacCtx mac;
  Base64Writer b64;
  std::vector<uint8_t> buf;

  void emit_raw(const uint8_t* data, size_t size, std::string& out) {
    EVP_MAC_update(mac.get(), data, size);
    b64.write(data, size, out);
  }
};

Result<FernetStreamEncryptor> FernetStreamEncryptor::create(const FernetKey& key,
                                                            std::optional<uint64_t> timestamp,
                                                            const uint8_t* iv) {
  uint8_t header[kHeaderSize];
  header[0] = kVersion;
  const uint64_t ts = timestamp.value_or(unix_now());
  for (int i = 0; i < 8; ++i) header[1 + i] = static_cast<uint8_t>(ts >> (56 - 8 * i));
  if (iv != nullptr) {
    std::memcpy(header + 9, iv, 16);
  } else if (RAND_bytes(header + 9, 16) != 1) {
    return make_error(ErrorCode::kIo, "OpenSSL: no random bytes for the IV");
  }
  auto state = std::make_unique<State>();
  auto cipher = new_cipher(key.encryption_key, header + 9, true);
  if (!cipher) return cipher.error();
  auto mac = new_hmac(key.signing_key);
  if (!mac) return mac.error();
  state->cipher = std::move(*cipher);
  state->mac = std::move(*mac);
  FernetStreamEncryptor enc(std::move(state));
  enc.pending_header_.assign(header, header + kHeaderSize);
  return enc;
}

FernetStreamEncryptor::FernetStreamEncryptor(std::unique_ptr<State> state) : s_(std::move(state)) {}
FernetStreamEncryptor::FernetStreamEncryptor(FernetStreamEncryptor&&) noexcept = default;
FernetStreamEncryptor& FernetStreamEncryptor::operator=(FernetStreamEncryptor&&) noexcept = default;
FernetStreamEncryptor::~FernetStreamEncryptor() = default;

void FernetStreamEncryptor::update(const void* data, size_t size, std::string& out) {
  if (!pending_header_.empty()) {
    s_->emit_raw(pending_header_.data(), pending_header_.size(), out);
    pending_header_.clear();
  }
  s_->buf.resize(size + kBlock);
  int n = 0;
  EVP_CipherUpdate(s_->cipher.get(), s_->buf.data(), &n, static_cast<const uint8_t*>(data),
                   static_cast<int>(size));
  s_->emit_raw(s_->buf.data(), static_cast<size_t>(n), out);
}

void FernetStreamEncryptor::finish(std::string& out) {
  update(nullptr, 0, out);
  uint8_t last[kBlock];
  int n = 0;
  EVP_CipherFinal_ex(s_->cipher.get(), last, &n);
  s_->emit_raw(last, static_cast<size_t>(n), out);
  uint8_t tag[kMacSize];
  size_t tag_len = 0;
  EVP_MAC_final(s_->mac.get(), tag, &tag_len, sizeof tag);
  s_->b64.write(tag, tag_len, out);
  s_->b64.finish(out);
}

// ---------------------------------------------------------------------------------------------
struct FernetStreamDecryptor::State {
  struct PerKey {
    CipherCtx cipher;
    MacCtx mac;
  };
  std::vector<FernetKey> keys;
  std::vector<PerKey> per_key;
  PlaintextSink sink;
  CiphertextSink ciphertext_sink;  // set: authenticate only
  std::array<uint8_t, kBlock> iv{};
  std::optional<uint64_t> ttl;
  PythonBase64Decoder b64;
  std::string raw;          // decoded bytes not yet consumed (header, or the held-back MAC tail)
  std::vector<uint8_t> out; // plaintext scratch
  bool header_done = false;
  uint64_t timestamp = 0;
  uint64_t ciphertext_size = 0;
  bool failed = false;

  Status consume_body(const uint8_t* data, size_t size) {
    if (size == 0) return ok_status();
    ciphertext_size += size;
    if (ciphertext_sink) {
      for (auto& k : per_key) EVP_MAC_update(k.mac.get(), data, size);
      return ciphertext_sink(reinterpret_cast<const char*>(data), size);
    }
    out.resize(size + kBlock);
    for (size_t k = 0; k < per_key.size(); ++k) {
      EVP_MAC_update(per_key[k].mac.get(), data, size);
      int n = 0;
      if (EVP_CipherUpdate(per_key[k].cipher.get(), out.data(), &n, data,
                           static_cast<int>(size)) != 1) {
        return invalid_token("decryption failed");
      }
      if (n > 0) {
        auto st = sink(k, reinterpret_cast<const char*>(out.data()), static_cast<size_t>(n));
        if (!st) return st;
      }
    }
    return ok_status();
  }
};

Result<FernetStreamDecryptor> FernetStreamDecryptor::create(std::vector<FernetKey> keys,
                                                            PlaintextSink sink,
                                                            std::optional<uint64_t> ttl_seconds) {
  if (keys.empty()) return make_error(ErrorCode::kInvalidKey, "no decryption key");
  auto state = std::make_unique<State>();
  state->keys = std::move(keys);
  state->sink = std::move(sink);
  state->ttl = ttl_seconds;
  return FernetStreamDecryptor(std::move(state));
}

Result<FernetStreamDecryptor> FernetStreamDecryptor::create_authenticator(std::vector<FernetKey> keys,
                                                                          CiphertextSink sink,
                                                                          std::optional<uint64_t> ttl_seconds) {
  if (keys.empty()) return make_error(ErrorCode::kInvalidKey, "no decryption key");
  auto state = std::make_unique<State>();
  state->keys = std::move(keys);
  state->ciphertext_sink = std::move(sink);
  state->ttl = ttl_seconds;
  return FernetStreamDecryptor(std::move(state));
}

FernetStreamDecryptor::FernetStreamDecryptor(std::unique_ptr<State> state) : s_(std::move(state)) {}
FernetStreamDecryptor::FernetStreamDecryptor(FernetStreamDecryptor&&) noexcept = default;
FernetStreamDecryptor& FernetStreamDecryptor::operator=(FernetStreamDecryptor&&) noexcept = default;
FernetStreamDecryptor::~FernetStreamDecryptor() = default;

uint64_t FernetStreamDecryptor::token_timestamp() const { return s_->timestamp; }
const std::array<uint8_t, 16>& FernetStreamDecryptor::iv() const { return s_->iv; }

Status FernetStreamDecryptor::update(const char* data, size_t size) {
  State& s = *s_;
  if (s.failed) return invalid_token("decryption already failed");
  s.b64.update(data, size, s.raw);
  if (!s.header_done) {
    if (!s.raw.empty() && static_cast<uint8_t>(s.raw[0]) != kVersion) {
      s.failed = true;
      return invalid_token("unknown version byte");
    }
    if (s.raw.size() < kHeaderSize) return ok_status();
    const auto* h = reinterpret_cast<const uint8_t*>(s.raw.data());
    for (int i = 0; i < 8; ++i) s.timestamp = (s.timestamp << 8) | h[1 + i];
    std::memcpy(s.iv.data(), h + 9, kBlock);
    for (const FernetKey& key : s.keys) {
      CipherCtx cipher_ctx;
      if (!s.ciphertext_sink) {
        auto cipher = new_cipher(key.encryption_key, h + 9, false);
        if (!cipher) return cipher.error();
        cipher_ctx = std::move(*cipher);
      }
      auto mac = new_hmac(key.signing_key);
      if (!mac) return mac.error();
      EVP_MAC_update(mac->get(), h, kHeaderSize);
      s.per_key.push_back({std::move(cipher_ctx), std::move(*mac)});
    }
    s.raw.erase(0, kHeaderSize);
    s.header_done = true;
  }
  // Everything but the last 32 bytes seen so far is ciphertext; the rest may be the MAC.
  if (s.raw.size() > kMacSize) {
    const size_t body = s.raw.size() - kMacSize;
    auto st = s.consume_body(reinterpret_cast<const uint8_t*>(s.raw.data()), body);
    if (!st) {
      s.failed = true;
      return st;
    }
    s.raw.erase(0, body);
  }
  return ok_status();
}

Result<size_t> FernetStreamDecryptor::finish(uint64_t now_unix_seconds) {
  State& s = *s_;
  if (s.failed) return invalid_token("decryption already failed");
  s.failed = true;  // finish() is final whatever happens below
  if (!s.b64.finish_ok()) return invalid_token("incorrect base64 padding");
  if (!s.header_done) return invalid_token("too short");
  if (s.raw.size() != kMacSize) return invalid_token("too short");
  if (s.ciphertext_size == 0 || s.ciphertext_size % kBlock != 0) {
    return invalid_token("ciphertext is not a whole number of blocks");
  }
  if (s.ttl) {
    if (s.timestamp + *s.ttl < now_unix_seconds) return invalid_token("expired (TTL)");
    if (now_unix_seconds + 60 < s.timestamp) return invalid_token("timestamp in the future");
  }
  for (size_t k = 0; k < s.per_key.size(); ++k) {
    uint8_t tag[kMacSize];
    size_t tag_len = 0;
    EVP_MAC_final(s.per_key[k].mac.get(), tag, &tag_len, sizeof tag);
    if (tag_len != kMacSize || CRYPTO_memcmp(tag, s.raw.data(), kMacSize) != 0) continue;
    if (s.ciphertext_sink) return k;  // the padding is checked when it is decrypted
    uint8_t last[kBlock];
    int n = 0;
    if (EVP_CipherFinal_ex(s.per_key[k].cipher.get(), last, &n) != 1) {
      return invalid_token("bad padding");
    }
    if (n > 0) {
      auto st = s.sink(k, reinterpret_cast<const char*>(last), static_cast<size_t>(n));
      if (!st) return st.error();
    }
    return k;
  }
  return invalid_token("HMAC does not match (wrong key or tampered)");
}

// ---------------------------------------------------------------------------------------------
Result<uint64_t> fernet_decrypt_in_place(int fd, uint64_t ciphertext_size, const FernetKey& key,
                                         const std::array<uint8_t, 16>& iv,
                                         const std::function<void(const char*, size_t)>& observe,
                                         const std::string& path) {
  if (ciphertext_size == 0 || ciphertext_size % kBlock != 0) {
    return invalid_token("ciphertext is not a whole number of blocks");
  }
  auto cipher = new_cipher(key.encryption_key, iv.data(), false);
  if (!cipher) return cipher.error();
  constexpr size_t kChunk = 256 * 1024;
  std::vector<uint8_t> in(kChunk);
  std::vector<uint8_t> out(kChunk + kBlock);
  uint64_t read_at = 0;
  uint64_t write_at = 0;  // never ahead of read_at: CBC output lags its input
  auto put = [&](const uint8_t* data, size_t size) -> Status {
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(write_at));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("cannot write", path, errno);
      }
      done += static_cast<size_t>(n);
      write_at += static_cast<uint64_t>(n);
    }
    if (observe) observe(reinterpret_cast<const char*>(data), size);
    return ok_status();
  };
  while (read_at < ciphertext_size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, ciphertext_size - read_at));
    size_t got = 0;
    while (got < want) {
      const ssize_t n = ::pread(fd, in.data() + got, want - got, static_cast<off_t>(read_at + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n < 0 ? errno_error("cannot read", path, errno) : make_error(ErrorCode::kIo, path + ": shorter than its ciphertext");
      got += static_cast<size_t>(n);
    }
    read_at += got;
    int n = 0;
    if (EVP_CipherUpdate(cipher->get(), out.data(), &n, in.data(), static_cast<int>(got)) != 1) {
      return invalid_token("decryption failed");
    }
    if (auto st = put(out.data(), static_cast<size_t>(n)); !st) return st.error();
  }
  int n = 0;
  if (EVP_CipherFinal_ex(cipher->get(), out.data(), &n) != 1) return invalid_token("bad padding");
  if (auto st = put(out.data(), static_cast<size_t>(n)); !st) return st.error();
  if (::ftruncate(fd, static_cast<off_t>(write_at)) != 0) return errno_error("cannot truncate", path, errno);
  return write_at;
}

Result<std::string> fernet_encrypt(const FernetKey& key, std::string_view plaintext,
                                   std::optional<uint64_t> timestamp, const uint8_t* iv) {
  auto enc = FernetStreamEncryptor::create(key, timestamp, iv);
  if (!enc) return enc.error();
  std::string out;
  enc->update(plaintext.data(), plaintext.size(), out);
  enc->finish(out);
  return out;
}

Result<std::string> fernet_decrypt(const std::vector<FernetKey>& keys, std::string_view token,
                                   std::optional<uint64_t> ttl_seconds, uint64_t now_unix_seconds) {
  std::vector<std::string> plain(keys.size());
  auto dec = FernetStreamDecryptor::create(
      keys,
      [&](size_t k, const char* data, size_t size) {
        plain[k].append(data, size);
        return ok_status();
      },
      ttl_seconds);
  if (!dec) return dec.error();
  auto st = dec->update(token);
  if (!st) return st.error();
  auto key = dec->finish(now_unix_seconds);
  if (!key) return key.error();
  return std::move(plain[*key]);
}

}  // namespace transfer
