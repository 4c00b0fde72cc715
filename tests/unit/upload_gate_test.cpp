// UploadGate: who may spend the receiver's disk, decided from the request head. Signatures made
// with the real derivation and signing code; free space injected.
#include "upload_gate.hpp"

#include <gtest/gtest.h>

namespace transfer::receiver {
namespace {

constexpr const char* kTwoKeys =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=\n";
constexpr uint64_t kNow = 1'800'000'000;

class UploadGateTest : public ::testing::Test {
 protected:
  UploadGate gate(UploadGateSettings settings) {
    return UploadGate(settings, keys_, [this]() -> Result<uint64_t> { return free_; });
  }
  GateRequest request(const std::string& transfer_id = "0123456789abcdef") {
    GateRequest r;
    r.method = "POST";
    r.target = "/upload/books%20x";
    r.content_length = 1000;
    r.plaintext_sha256 = std::string(64, 'a');
    r.idempotency_key = "k1";
    r.transfer_id = transfer_id;
    return r;
  }
  std::string sign(const GateRequest& r, size_t key_index, uint64_t at) {
    const auto key = derive_upload_signing_key(keys_->keys()->at(key_index));
    const SignedHead head{r.method,           r.target,          r.content_length,
                          r.plaintext_sha256, r.idempotency_key, r.transfer_id};
    return sign_upload_head(*key, head, at);
  }

  std::shared_ptr<KeyRing> keys_ = KeyRing::fixed(*parse_key_text(kTwoKeys, "k"));
  uint64_t free_ = 100ULL << 30;
};

TEST_F(UploadGateTest, SignaturesAreVerifiedOnceAndRequiredWhenAsked) {
  UploadGateSettings required;
  required.policy = SignaturePolicy::kRequired;
  auto strict = gate(required);
  auto unsigned_request = request();
  auto refused = strict.authenticate(unsigned_request, kNow);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnauthenticated);

  auto lenient = gate({});
  auto accepted = lenient.authenticate(unsigned_request, kNow);
  ASSERT_TRUE(accepted.ok());
  EXPECT_FALSE(accepted->key_index.has_value()) << "unsigned, accepted by the optional policy";

  auto signed_request = request();
  signed_request.signature = sign(signed_request, 1, kNow - 10);
  auto first = strict.authenticate(signed_request, kNow);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->key_index, 1u) << "the second key signed";
  auto again = strict.authenticate(signed_request, kNow);
  ASSERT_FALSE(again.ok()) << "a signature is accepted once";
  EXPECT_EQ(again.error().code, ErrorCode::kBusy);

  // Another attempt (another transfer id) in the same second is a different signature.
  auto retry = request("fedcba9876543210");
  retry.signature = sign(retry, 1, kNow - 10);
  EXPECT_TRUE(strict.authenticate(retry, kNow).ok());

  auto tampered = request("aaaaaaaaaaaaaaaa");
  tampered.signature = sign(tampered, 0, kNow);
  tampered.content_length += 1;
  EXPECT_EQ(lenient.authenticate(tampered, kNow).error().code, ErrorCode::kUnauthenticated)
      << "a bad signature is refused even when signatures are optional";
  auto stale = request("bbbbbbbbbbbbbbbb");
  stale.signature = sign(stale, 0, kNow - 301);
  EXPECT_EQ(strict.authenticate(stale, kNow).error().code, ErrorCode::kUnauthenticated);
}

TEST_F(UploadGateTest, ReplaysAreRefusedAfterARestartAndFromAFullMemory) {
  UploadGateSettings s;
  s.policy = SignaturePolicy::kRequired;
  s.replay_memory = 16;
  auto first_run = gate(s);
  auto captured = request("0000000000000001");
  captured.signature = sign(captured, 0, kNow);
  ASSERT_TRUE(first_run.authenticate(captured, kNow).ok());

  // Restarted in the same second: what the first run accepted is refused (401), and so is a
  // signature made in that second; the next second's passes.
  s.signatures_not_before = signatures_not_before(kNow);
  auto second_run = gate(s);
  EXPECT_EQ(second_run.not_before(), kNow + 1);
  auto replayed = second_run.authenticate(captured, kNow);
  ASSERT_FALSE(replayed.ok());
  EXPECT_EQ(replayed.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(replayed.error().message.find("predates"), std::string::npos)
      << replayed.error().message;
  auto honest = request("0000000000000002");
  honest.signature = sign(honest, 0, kNow + 1);
  ASSERT_TRUE(second_run.authenticate(honest, kNow + 1).ok());

  // 16 newer signatures fill the memory: the first of this run is forgotten, and stays refused
  // (503: kBusy), where it used to pass again.
  for (int i = 0; i < 16; ++i) {
    auto r = request("1" + std::string(13, '0') + std::to_string(10 + i));
    r.signature = sign(r, 0, kNow + 2);
    ASSERT_TRUE(second_run.authenticate(r, kNow + 2).ok()) << i;
  }
  auto forgotten = second_run.authenticate(honest, kNow + 2);
  ASSERT_FALSE(forgotten.ok());
  EXPECT_EQ(forgotten.error().code, ErrorCode::kBusy);
  EXPECT_NE(forgotten.error().message.find("replay memory"), std::string::npos)
      << forgotten.error().message;
  auto fresh = request("0000000000000003");
  fresh.signature = sign(fresh, 0, kNow + 3);
  EXPECT_TRUE(second_run.authenticate(fresh, kNow + 3).ok());
}

TEST_F(UploadGateTest, UnsignedUploadsShareABudgetAndHalfTheWorkers) {
  UploadGateSettings s;
  s.unsigned_budget_bytes = 1'000'000;
  s.unsigned_upload_slots = 2;
  auto g = gate(s);
  const Authentication unsigned_upload{};
  const Authentication signed_upload{0};

  auto a = g.admit(unsigned_upload, 700'000);
  ASSERT_TRUE(a.ok());
  auto b = g.admit(unsigned_upload, 700'000);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ErrorCode::kBusy) << "over the budget while the first is in flight";
  EXPECT_EQ(g.admit(unsigned_upload, 1'000'001).error().code, ErrorCode::kTooLarge);
  EXPECT_EQ(g.unsigned_bytes_in_flight(), 700'000u);
  {
    auto small = g.admit(unsigned_upload, 1000);
    ASSERT_TRUE(small.ok());
    auto third = g.admit(unsigned_upload, 1000);
    ASSERT_FALSE(third.ok());
    EXPECT_EQ(third.error().code, ErrorCode::kBusy) << "both unsigned slots taken";
    EXPECT_TRUE(g.admit(signed_upload, 5'000'000).ok())
        << "signed uploads are not limited by either";
  }
  *a = UploadGate::Admission();  // the first one ends
  EXPECT_EQ(g.unsigned_bytes_in_flight(), 0u);
  EXPECT_EQ(g.reserved_bytes(), 0u);
  EXPECT_TRUE(g.admit(unsigned_upload, 700'000).ok());
}

TEST_F(UploadGateTest, FreeSpaceCountsWhatUploadsInFlightReserved) {
  UploadGateSettings s;
  s.min_free_bytes = 64 << 20;
  free_ = 100 << 20;
  auto g = gate(s);
  const Authentication signed_upload{0};
  auto a = g.admit(signed_upload, 30 << 20);
  ASSERT_TRUE(a.ok()) << "100 MiB free - 30 MiB >= 64 MiB";
  auto b = g.admit(signed_upload, 10 << 20);
  ASSERT_FALSE(b.ok()) << "100 - 30 reserved - 10 < 64";
  EXPECT_EQ(b.error().code, ErrorCode::kNoSpace);
  *a = UploadGate::Admission();
  EXPECT_TRUE(g.admit(signed_upload, 10 << 20).ok());
}

TEST_F(UploadGateTest, AnUnsignedUploadReservesFreeSpaceOnlyAsItsBytesArrive) {
  // The attack: an unsigned upload declares 191 MiB and trickles it; a signed 10 MB upload must
  // still fit on a volume with 256 MiB free and MIN_FREE_BYTES=64M.
  UploadGateSettings s;
  s.min_free_bytes = 64 << 20;
  s.unsigned_budget_bytes = 2ULL << 30;
  free_ = 256 << 20;
  auto g = gate(s);
  auto trickle = g.admit(Authentication{}, 191 << 20);
  ASSERT_TRUE(trickle.ok()) << "256 - 191 >= 64 at admission";
  EXPECT_EQ(g.reserved_bytes(), 0u) << "nothing has arrived yet";
  trickle->received(2048);
  EXPECT_EQ(g.reserved_bytes(), 2048u);
  auto signed_upload = g.admit(Authentication{0}, 10 << 20);
  ASSERT_TRUE(signed_upload.ok()) << "the trickle holds 2 KiB, not 191 MiB";
  EXPECT_EQ(g.reserved_bytes(), 2048u + (10 << 20));
  // The reservation never exceeds the declared length, and is returned whole.
  trickle->received(500ULL << 20);
  EXPECT_EQ(g.reserved_bytes(), (191u << 20) + (10 << 20));
  *trickle = UploadGate::Admission();
  EXPECT_EQ(g.reserved_bytes(), 10u << 20);
  EXPECT_EQ(g.unsigned_bytes_in_flight(), 0u);
  // A signed upload's bytes arriving change nothing: it reserved them all at once.
  signed_upload->received(1 << 20);
  EXPECT_EQ(g.reserved_bytes(), 10u << 20);
}

}  // namespace
}  // namespace transfer::receiver
