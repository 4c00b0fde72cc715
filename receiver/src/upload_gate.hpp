#pragma once
// Who may spend the receiver's disk, decided from an upload's request head
// before a byte of its body is read (as S3 and tus authenticate a request
// before they store it):
//   - authenticate(): a signed upload (X-Transfer-Signature, see
//     transfer/upload_signature.hpp) is verified against every loaded key,
//     inside the time window; a bad signature is refused whatever the policy;
//     an unsigned upload is refused when the policy requires signatures (all
//     kUnauthenticated: 401). A valid signature is then accepted once
//     (SignatureReplayGuard): one timed before this process started is
//     refused (kUnauthenticated: 401; the process before may have accepted
//     it), a second use, or one a full replay memory may have forgotten, is
//     refused with kBusy (503 with Retry-After); an honest sender signs each
//     attempt afresh and passes on its next one.
//   - admit(): any upload that would leave less than `min_free_bytes` free in the output file
//     system, counting what uploads in flight have reserved, is refused (kNoSpace: 507). A
//     signed upload reserves its whole Content-Length at once; an unsigned one reserves its
//     bytes as they arrive (Admission::received), so a client without a key that declares a
//     large body and trickles it cannot hold the volume's space. Unsigned uploads in flight also
//     share `unsigned_budget_bytes` by their declared lengths (kBusy beyond it: 503 with
//     Retry-After; one larger than the whole budget: kTooLarge, 413).
// Thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transfer/key_ring.hpp"
#include "transfer/result.hpp"
#include "transfer/upload_signature.hpp"

namespace transfer::receiver {

enum class SignaturePolicy { kOptional, kRequired };
Result<SignaturePolicy> parse_signature_policy(const std::string& text);

struct UploadGateSettings {
  SignaturePolicy policy = SignaturePolicy::kOptional;
  uint64_t window_seconds = kDefaultSignatureWindowSeconds;
  uint64_t unsigned_budget_bytes = 2ULL << 30;
  uint64_t min_free_bytes = 64ULL << 20;
  // Unsigned uploads in flight at once (0: no limit). The receiver gives them half its upload
  // workers, so clients without a key, however slow, never take every worker from signed ones.
  size_t unsigned_upload_slots = 0;
  // Signatures timed before this unix second are refused (0: none): the receiver gives
  // signatures_not_before(the second it started), and accepts no connection before it.
  uint64_t signatures_not_before = 0;
  // Signatures the replay memory holds (REPLAY_MEMORY; SignatureReplayGuard's capacity).
  size_t replay_memory = SignatureReplayGuard::kDefaultCapacity;
};

// The parts of an upload's head the gate looks at.
struct GateRequest {
  std::string method;
  std::string target;  // as on the request line
  uint64_t content_length = 0;
  std::string plaintext_sha256;
  std::string idempotency_key;
  std::string transfer_id;               // X-Transfer-Id as sent (the signature's nonce), or empty
  std::optional<std::string> signature;  // X-Transfer-Signature, if sent
};

struct Authentication {
  std::optional<size_t> key_index;  // the key that signed; nothing for an unsigned upload
};

class UploadGate {
 public:
  using FreeBytes = std::function<Result<uint64_t>()>;
  UploadGate(UploadGateSettings settings, std::shared_ptr<KeyRing> keys, FreeBytes free_bytes);

  Result<Authentication> authenticate(const GateRequest& request, uint64_t now_unix_seconds);

  // The first unix second whose signatures are accepted. The receiver must not accept a
  // connection before its clock reaches it (a request signed earlier would be refused: 401).
  uint64_t not_before() const { return replays_.not_before(); }

  // A reservation of disk, returned when it is destroyed.
  class Admission {
   public:
    Admission() = default;
    Admission(Admission&& o) noexcept { *this = std::move(o); }
    Admission& operator=(Admission&& o) noexcept;
    ~Admission() { release(); }
    // `bytes` more of the body arrived: an unsigned upload's space reservation grows with them
    // (up to its declared length); a signed one reserved it all at admission.
    void received(uint64_t bytes);

   private:
    friend class UploadGate;
    void release();
    UploadGate* gate_ = nullptr;
    uint64_t declared_ = 0;  // Content-Length
    uint64_t reserved_ = 0;  // of it, reserved against free space
    bool unsigned_ = false;
  };
  Result<Admission> admit(const Authentication& auth, uint64_t content_length);

  uint64_t unsigned_bytes_in_flight() const;
  uint64_t reserved_bytes() const;
  const UploadGateSettings& settings() const { return settings_; }

 private:
  // The signing keys derived from the keys in force (derived again when the key
  // file changes).
  std::shared_ptr<const std::vector<UploadSigningKey>> signing_keys();

  const UploadGateSettings settings_;
  std::shared_ptr<KeyRing> keys_;
  FreeBytes free_bytes_;
  SignatureReplayGuard replays_;

  std::mutex keys_mu_;
  KeySet derived_from_;
  std::shared_ptr<const std::vector<UploadSigningKey>> derived_;

  mutable std::mutex mu_;
  uint64_t reserved_ = 0;
  uint64_t unsigned_reserved_ = 0;
  size_t unsigned_uploads_ = 0;
};

}  // namespace transfer::receiver
