#include "transfer/upload_signature.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "transfer/sha256.hpp"

namespace transfer {
namespace {

constexpr std::string_view kInfo = "transfer upload signature v1";
constexpr std::string_view kDomain = "transfer-upload-v1";
constexpr size_t kMacSize = 32;
constexpr size_t kMaxTimeDigits = 19;  // every 19-digit decimal fits in uint64_t
constexpr std::string_view kMalformed =
    "X-Transfer-Signature must be t=<unix time>,v1=<64 hex digits>";

struct KdfFree {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

// Wipes a buffer of key material when it goes out of scope.
template <size_t N>
struct WipedBytes {
  std::array<uint8_t, N> bytes{};
  WipedBytes() = default;
  WipedBytes(const WipedBytes&) = delete;
  WipedBytes& operator=(const WipedBytes&) = delete;
  ~WipedBytes() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

Error unauthenticated(std::string message) {
  return make_error(ErrorCode::kUnauthenticated, std::move(message));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is refused: the header is lowercase by definition
}

// 64 lowercase hex digits into 32 bytes; false for anything else.
bool decode_mac_hex(std::string_view hex, std::array<uint8_t, kMacSize>& out) {
  if (hex.size() != 2 * kMacSize) return false;
  for (size_t i = 0; i < kMacSize; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

// HMAC-SHA256 of `data`. OpenSSL failing on a 32-byte key and SHA-256 (both always available
// where derive_upload_signing_key succeeded) is a broken invariant.
std::array<uint8_t, kMacSize> hmac_sha256(const UploadSigningKey& key, std::string_view data) {
  std::array<uint8_t, kMacSize> mac{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.bytes().data(), static_cast<int>(key.bytes().size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
           &len) == nullptr ||
      len != mac.size()) {
    std::abort();
  }
  return mac;
}

bool has_line_break(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace

Result<std::vector<uint8_t>> hkdf_sha256(std::span<const uint8_t> ikm,
                                         std::span<const uint8_t> salt,
                                         std::span<const uint8_t> info, size_t length) {
  if (length == 0 || length > 255 * kMacSize) {
    return make_error(ErrorCode::kInvalidArgument,
                      "HKDF-SHA256 output length " + std::to_string(length) + " is not in 1..8160");
  }
  std::unique_ptr<EVP_KDF, KdfFree> kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr));
  if (!kdf) return make_error(ErrorCode::kIo, "OpenSSL: HKDF unavailable");
  std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return make_error(ErrorCode::kIo, "OpenSSL: cannot create an HKDF context");

  // OSSL_PARAM takes non-const pointers; OpenSSL only reads these.
  char digest[] = "SHA256";
  // An empty IKM is still passed (HKDF accepts it); an empty salt or info is left out, which
  // RFC 5869 defines as the same (salt: HashLen zero bytes; info: the empty string).
  static const uint8_t kEmpty = 0;
  std::array<OSSL_PARAM, 5> params{};
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.empty() ? &kEmpty : ikm.data()), ikm.size());
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                    const_cast<uint8_t*>(salt.data()), salt.size());
  }
  if (!info.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                    const_cast<uint8_t*>(info.data()), info.size());
  }
  params[n] = OSSL_PARAM_construct_end();

  std::vector<uint8_t> out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params.data()) != 1) {
    return make_error(ErrorCode::kIo, "OpenSSL: HKDF-SHA256 failed");
  }
  return out;
}

UploadSigningKey::~UploadSigningKey() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

Result<UploadSigningKey> derive_upload_signing_key(const FernetKey& key) {
  WipedBytes<32> ikm;
  std::memcpy(ikm.bytes.data(), key.signing_key.data(), key.signing_key.size());
  std::memcpy(ikm.bytes.data() + key.signing_key.size(), key.encryption_key.data(),
              key.encryption_key.size());
  const auto* info = reinterpret_cast<const uint8_t*>(kInfo.data());
  auto okm = hkdf_sha256(ikm.bytes, {}, std::span<const uint8_t>(info, kInfo.size()),
                         UploadSigningKey::kSize);
  if (!okm) return okm.error();
  WipedBytes<UploadSigningKey::kSize> bytes;
  std::memcpy(bytes.bytes.data(), okm->data(), bytes.bytes.size());
  OPENSSL_cleanse(okm->data(), okm->size());
  return UploadSigningKey(bytes.bytes);
}

std::string canonical_upload_head(const SignedHead& head, uint64_t unix_time) {
  std::string s;
  s.reserve(kDomain.size() + head.method.size() + head.target.size() +
            head.plaintext_sha256.size() + head.idempotency_key.size() + head.transfer_id.size() +
            48);
  s += kDomain;
  s += '\n';
  s += head.method;
  s += '\n';
  s += head.target;
  s += '\n';
  s += std::to_string(head.content_length);
  s += '\n';
  s += head.plaintext_sha256;
  s += '\n';
  s += head.idempotency_key;
  s += '\n';
  s += head.transfer_id;
  s += '\n';
  s += std::to_string(unix_time);
  return s;
}

std::string sign_upload_head(const UploadSigningKey& key, const SignedHead& head,
                             uint64_t unix_time) {
  const auto mac = hmac_sha256(key, canonical_upload_head(head, unix_time));
  return "t=" + std::to_string(unix_time) + ",v1=" + to_hex(mac.data(), mac.size());
}

Result<ParsedSignature> parse_upload_signature(std::string_view v) {
  // The longest valid value: "t=" + 19 digits + ",v1=" + 64; checked first, before any work.
  constexpr size_t kMaxSize = 2 + kMaxTimeDigits + 4 + 2 * kMacSize;
  if (v.size() > kMaxSize || v.substr(0, 2) != "t=")
    return unauthenticated(std::string(kMalformed));
  v.remove_prefix(2);
  size_t digits = 0;
  uint64_t time = 0;
  while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') {
    time = time * 10 + static_cast<uint64_t>(v[digits] - '0');
    ++digits;
  }
  // One spelling per time, so "the same decimal" in S is unambiguous: no leading zero.
  if (digits == 0 || digits > kMaxTimeDigits || (digits > 1 && v[0] == '0')) {
    return unauthenticated(std::string(kMalformed));
  }
  v.remove_prefix(digits);
  if (v.substr(0, 4) != ",v1=") return unauthenticated(std::string(kMalformed));
  v.remove_prefix(4);
  std::array<uint8_t, kMacSize> mac{};
  if (!decode_mac_hex(v, mac)) return unauthenticated(std::string(kMalformed));
  return ParsedSignature{time, std::string(v)};
}

Result<size_t> verify_upload_signature(std::string_view header_value, const SignedHead& head,
                                       const std::vector<UploadSigningKey>& keys, uint64_t now,
                                       uint64_t window_seconds) {
  auto parsed = parse_upload_signature(header_value);
  if (!parsed) return parsed.error();
  const uint64_t t = parsed->time;
  const uint64_t skew = t > now ? t - now : now - t;
  if (skew > window_seconds) {
    return unauthenticated("the signature's time " + std::to_string(t) + " is " +
                           std::to_string(skew) + " s from the receiver's clock; the window is " +
                           std::to_string(window_seconds) + " s");
  }
  if (has_line_break(head.method) || has_line_break(head.target) ||
      has_line_break(head.plaintext_sha256) || has_line_break(head.idempotency_key) ||
      has_line_break(head.transfer_id)) {
    return unauthenticated(
        "a signed request head cannot hold a line break in its method, target or headers");
  }
  std::array<uint8_t, kMacSize> claimed{};
  decode_mac_hex(parsed->v1_hex, claimed);  // cannot fail: parse checked it
  const std::string canonical = canonical_upload_head(head, t);
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto mac = hmac_sha256(keys[i], canonical);
    if (CRYPTO_memcmp(mac.data(), claimed.data(), mac.size()) == 0) return i;
  }
  return unauthenticated("the signature matches no loaded key");
}

size_t SignatureReplayGuard::MacHash::operator()(const Mac& m) const {
  // The MAC is uniformly random to anyone without the key: its first bytes are a good hash.
  size_t h = 0;
  std::memcpy(&h, m.data(), sizeof h);
  return h;
}

SignatureReplayGuard::SignatureReplayGuard(uint64_t window_seconds, size_t capacity,
                                           uint64_t not_before)
    : window_seconds_(window_seconds),
      capacity_(capacity == 0 ? 1 : capacity),
      not_before_(not_before) {
  time_of_.reserve(capacity_ < 4096 ? capacity_ : 4096);
}

Status SignatureReplayGuard::first_use(std::string_view signature_hex, uint64_t signature_time,
                                       uint64_t now) {
  Mac mac{};
  if (!decode_mac_hex(signature_hex, mac)) return unauthenticated(std::string(kMalformed));
  if (signature_time < not_before_) {
    return unauthenticated("the signature's time " + std::to_string(signature_time) +
                           " predates this receiver's start (it accepts signatures timed from " +
                           std::to_string(not_before_) +
                           " on, so that none made before a restart can be replayed); sign the "
                           "request again and retry");
  }
  std::lock_guard lock(mu_);
  drop_expired(now);
  if (time_of_.contains(mac)) {
    // Our sender signs each attempt with a transfer id of its own: a second use is a replay,
    // answered as "retry" all the same (a replay gains nothing from that).
    return make_error(ErrorCode::kBusy,
                      "this signature was used already; sign the request again and retry");
  }
  if (floor_ > 0 && signature_time <= floor_) {
    return make_error(ErrorCode::kBusy, "the replay memory had to forget signatures timed up to " +
                                            std::to_string(floor_) +
                                            " to make room, so one timed " +
                                            std::to_string(signature_time) +
                                            " may be a replay; sign the request again and retry");
  }
  if (signature_time > UINT64_MAX - window_seconds_ ||
      signature_time + window_seconds_ >= now) {  // else already expired: nothing to remember
    if (time_of_.size() >= capacity_ && signature_time <= by_time_.begin()->first) {
      // Older than everything remembered: it would be the one forgotten, and then refused.
      return make_error(ErrorCode::kBusy,
                        "the replay memory is full with newer signatures, so one timed " +
                            std::to_string(signature_time) +
                            " cannot be remembered; sign the request again and retry");
    }
    while (time_of_.size() >= capacity_) floor_ = std::max(floor_, drop_oldest());
    const auto it = time_of_.emplace(mac, signature_time).first;
    by_time_.emplace(signature_time, &it->first);  // keys of an unordered_map stay put
  }
  return ok_status();
}

size_t SignatureReplayGuard::size() const {
  std::lock_guard lock(mu_);
  return time_of_.size();
}

uint64_t SignatureReplayGuard::forgotten_up_to() const {
  std::lock_guard lock(mu_);
  return floor_;
}

void SignatureReplayGuard::drop_expired(uint64_t now) {
  // Expired: time + window < now, i.e. time < now - window.
  while (!by_time_.empty() && now > window_seconds_ &&
         by_time_.begin()->first < now - window_seconds_) {
    drop_oldest();
  }
}

uint64_t SignatureReplayGuard::drop_oldest() {
  const auto first = by_time_.begin();
  const uint64_t time = first->first;
  const auto entry = time_of_.find(*first->second);
  by_time_.erase(first);
  time_of_.erase(entry);
  return time;
}

}  // namespace transfer
