#pragma once
// Signed upload heads: our sender signs each upload's request head so the receiver can
// authenticate it before it reads a byte of body (an unsigned or forged upload costs no disk).
//
//   key    = HKDF-SHA256(IKM = the 32 bytes of the Fernet key (signing half, then encryption
//            half), salt = empty, info = "transfer upload signature v1", L = 32)
//   header = X-Transfer-Signature: t=<unix seconds>,v1=<64 lowercase hex HMAC-SHA256(key, S)>
//   S      = "transfer-upload-v1\n<METHOD>\n<request target as sent>\n<Content-Length>\n"
//            "<X-Transfer-Plaintext-SHA256 or empty>\n<Idempotency-Key or empty>\n"
//            "<X-Transfer-Id or empty>\n<t>"
//
// The request target is the one on the request line, byte for byte (percent-encoded as sent,
// never decoded); t is the same decimal in the header and in S. The transfer id is a nonce: our
// sender draws 16 random hex digits per attempt, so two attempts of one upload carry different
// signatures even within the same second (the receiver accepts each signature once). The Fernet
// signing key itself is never an HMAC key here. Everything is pure: the clock is passed in. The
// functions are thread-safe; SignatureReplayGuard is thread-safe too.

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "transfer/key_file.hpp"
#include "transfer/result.hpp"

namespace transfer {

inline constexpr std::string_view kSignatureHeader = "X-Transfer-Signature";
// How far a signature's time may be from the verifier's clock, either way, by default.
inline constexpr uint64_t kDefaultSignatureWindowSeconds = 300;

// RFC 5869 HKDF with SHA-256 (OpenSSL's EVP_KDF "HKDF"): `length` bytes of output keying
// material. kInvalidArgument when `length` is 0 or over 255 * 32; kIo when OpenSSL fails.
Result<std::vector<uint8_t>> hkdf_sha256(std::span<const uint8_t> ikm,
                                         std::span<const uint8_t> salt,
                                         std::span<const uint8_t> info, size_t length);

// The 32-byte HMAC key for upload signatures. Its bytes are wiped (OPENSSL_cleanse) when it is
// destroyed; copies wipe their own.
class UploadSigningKey {
 public:
  static constexpr size_t kSize = 32;
  explicit UploadSigningKey(const std::array<uint8_t, kSize>& bytes) : bytes_(bytes) {}
  UploadSigningKey(const UploadSigningKey&) = default;
  UploadSigningKey& operator=(const UploadSigningKey&) = default;
  ~UploadSigningKey();
  const std::array<uint8_t, kSize>& bytes() const { return bytes_; }

 private:
  std::array<uint8_t, kSize> bytes_;
};

// The upload signing key of a Fernet key (a few microseconds: callers that verify often keep
// the derived keys beside the key set they came from). kIo only when OpenSSL fails.
Result<UploadSigningKey> derive_upload_signing_key(const FernetKey& key);

// The parts of a request head that are signed. Fields must not hold '\n' (HTTP field values
// cannot; verify_upload_signature refuses a head whose fields do).
struct SignedHead {
  std::string method;            // "POST"
  std::string target;            // the request target exactly as on the request line
  uint64_t content_length = 0;   // the Content-Length sent
  std::string plaintext_sha256;  // X-Transfer-Plaintext-SHA256, or empty when not sent
  std::string idempotency_key;   // Idempotency-Key, or empty when not sent
  std::string transfer_id;       // X-Transfer-Id (a nonce per attempt), or empty when not sent
};

// The string S signed for `head` at `unix_time` (exposed for tests and for independent checks).
std::string canonical_upload_head(const SignedHead& head, uint64_t unix_time);

// The X-Transfer-Signature value for `head` signed at `unix_time`: "t=<unix_time>,v1=<hex>".
std::string sign_upload_head(const UploadSigningKey& key, const SignedHead& head,
                             uint64_t unix_time);

// A header value taken apart (syntax only, nothing verified).
struct ParsedSignature {
  uint64_t time = 0;
  std::string v1_hex;  // 64 lowercase hex digits
};

// Exactly "t=<1-19 decimal digits, no sign, no leading zero>,v1=<64 lowercase hex digits>":
// no spaces, no other or repeated fields. Otherwise kUnauthenticated, with the message
// "X-Transfer-Signature must be t=<unix time>,v1=<64 hex digits>".
Result<ParsedSignature> parse_upload_signature(std::string_view header_value);

// Verifies `header_value` for `head` against each of `keys` in order; returns the index of the
// key whose signature matches. Errors (all kUnauthenticated, messages safe to send to a client):
// a malformed header, a time more than `window_seconds` from `now` either way, a head whose
// fields hold a line break, or no key matching. MACs are compared in constant time. Does not
// check for replays: pair it with SignatureReplayGuard.
Result<size_t> verify_upload_signature(std::string_view header_value, const SignedHead& head,
                                       const std::vector<UploadSigningKey>& keys, uint64_t now,
                                       uint64_t window_seconds);

// Remembers the signatures already used, so a captured signed head cannot be sent again while
// its time is inside the window, neither after a restart nor once the memory is full:
//   - Entries: signature -> its time; an entry is kept until time + window_seconds (an older
//     signature is refused as stale by verify_upload_signature anyway).
//   - Start: the memory starts empty, so a signature timed before `not_before` is refused
//     (kUnauthenticated): the process that ran before may have accepted it. Give it the first
//     whole second after the process started (signatures_not_before()): a signature made in the
//     second of a restart may have been accepted by the previous process in that same second.
//     Honest senders sign each attempt afresh, so their next attempt passes.
//   - Bound: at most `capacity` entries (default 65,536; 128 bytes each, measured: 8 MiB when
//     full). Each call first drops expired entries; when still full, the entry with the oldest
//     time is forgotten, and its time becomes a floor: every signature timed at or before the
//     floor is refused from then on (kBusy: it may be one we forgot), so a replay is never taken
//     for a first use, whatever the load. That refusal reaches an honest sender only when it
//     signed no later than the newest signature forgotten, i.e. when more than `capacity`
//     signatures arrived since its own time (65,536 per window is 218 uploads/s sustained);
//     re-signed, it passes.
//   - A second use of a remembered signature: kBusy (a retry signs afresh, so this is a replay).
// Only signatures that verified should be offered, so a client without a key cannot fill it.
// Thread-safe; each call is O(log n) under one mutex.
class SignatureReplayGuard {
 public:
  static constexpr size_t kDefaultCapacity = 65536;
  explicit SignatureReplayGuard(uint64_t window_seconds = kDefaultSignatureWindowSeconds,
                                size_t capacity = kDefaultCapacity, uint64_t not_before = 0);

  // Ok the first time `signature_hex` (the v1 value) timed `signature_time` is offered at `now`,
  // and again once its entry expired. Otherwise (messages safe to send to a client):
  // kUnauthenticated for a time before not_before() or a value that is not 64 lowercase hex
  // digits; kBusy for a signature remembered, one timed at or before the floor, or, when the
  // memory is full, one timed no later than everything it holds (it would be the one forgotten).
  Status first_use(std::string_view signature_hex, uint64_t signature_time, uint64_t now);

  size_t size() const;
  size_t capacity() const { return capacity_; }
  uint64_t not_before() const { return not_before_; }
  // The newest signature time forgotten to make room (signatures timed at or before it are
  // refused), or 0 while the memory never had to forget a live entry.
  uint64_t forgotten_up_to() const;

 private:
  using Mac = std::array<uint8_t, 32>;
  struct MacHash {
    size_t operator()(const Mac& m) const;
  };
  void drop_expired(uint64_t now);  // with mu_ held
  uint64_t drop_oldest();           // with mu_ held; returns the dropped entry's time

  const uint64_t window_seconds_;
  const size_t capacity_;
  const uint64_t not_before_;
  mutable std::mutex mu_;
  uint64_t floor_ = 0;
  std::unordered_map<Mac, uint64_t, MacHash> time_of_;  // signature -> its time
  std::set<std::pair<uint64_t, const Mac*>> by_time_;   // the same entries, oldest time first
};

// The first whole second after `start_unix_seconds` (a process's start, as a fraction of a second
// is lost in whole seconds): the not_before of a replay memory started then.
inline uint64_t signatures_not_before(uint64_t start_unix_seconds) {
  return start_unix_seconds + 1;
}

}  // namespace transfer
