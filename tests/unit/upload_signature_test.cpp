#include "transfer/upload_signature.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "transfer/key_file.hpp"

namespace transfer {
namespace {

std::vector<uint8_t> byte_range(int first, int last) {  // first..last inclusive
  std::vector<uint8_t> out;
  for (int b = first; b <= last; ++b) out.push_back(static_cast<uint8_t>(b));
  return out;
}

std::string hex_of(const std::vector<uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
  }
  return out;
}

FernetKey key_from(const std::string& text) {
  auto keys = parse_key_text(text, "test key");
  EXPECT_TRUE(keys.ok());
  return keys.value().front();
}

// The Fernet specification's key; the expected values below were computed independently with
// Python's cryptography (HKDF) and hmac.
const FernetKey kFernetKey = key_from("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=");
constexpr const char* kDerivedHex =
    "af3c1f33db87d039fa0c6103464707459dbdd5b053a37228a51acead6fe498c7";
constexpr uint64_t kTime = 1764421234;
constexpr uint64_t kWindow = 300;

UploadSigningKey derive(const FernetKey& key) {
  auto k = derive_upload_signing_key(key);
  EXPECT_TRUE(k.ok());
  return k.value();
}

SignedHead golden_head() {
  SignedHead h;
  h.method = "POST";
  h.target = "/upload/books%20x";
  h.content_length = 1234;
  for (int i = 0; i < 32; ++i) h.plaintext_sha256 += "ab";
  h.idempotency_key = "idem-1";
  h.transfer_id = "0123456789abcdef";
  return h;
}

TEST(Hkdf, MatchesRfc5869Sha256Vectors) {
  struct Case {
    const char* name;
    std::vector<uint8_t> ikm, salt, info;
    size_t length;
    const char* okm;
  };
  const std::vector<Case> cases = {
      {"A.1", std::vector<uint8_t>(22, 0x0b), byte_range(0x00, 0x0c), byte_range(0xf0, 0xf9), 42,
       "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
      {"A.2", byte_range(0x00, 0x4f), byte_range(0x60, 0xaf), byte_range(0xb0, 0xff), 82,
       "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
       "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
       "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
      // clang-format off
      {"A.3", std::vector<uint8_t>(22, 0x0b), {}, {}, 42,
       "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
      // clang-format on
  };
  for (const auto& c : cases) {
    auto okm = hkdf_sha256(c.ikm, c.salt, c.info, c.length);
    ASSERT_TRUE(okm.ok()) << c.name << ": " << okm.error().message;
    EXPECT_EQ(hex_of(*okm), c.okm) << c.name;
  }
}

TEST(Hkdf, RefusesLengthsHkdfCannotMake) {
  const std::vector<uint8_t> ikm(32, 1);
  for (const size_t length : {size_t{0}, size_t{255 * 32 + 1}}) {
    auto okm = hkdf_sha256(ikm, {}, {}, length);
    ASSERT_FALSE(okm.ok()) << length;
    EXPECT_EQ(okm.error().code, ErrorCode::kInvalidArgument) << length;
  }
  EXPECT_TRUE(hkdf_sha256(ikm, {}, {}, 255 * 32).ok());
}

TEST(UploadSignature, DerivesTheDocumentedKey) {
  const auto key = derive(kFernetKey);
  EXPECT_EQ(hex_of({key.bytes().begin(), key.bytes().end()}), kDerivedHex);
  // Never the Fernet signing key itself, nor its first half.
  EXPECT_NE(std::memcmp(key.bytes().data(), kFernetKey.signing_key.data(), 16), 0);
}

TEST(UploadSignature, SignsTheDocumentedCanonicalString) {
  const auto head = golden_head();
  EXPECT_EQ(canonical_upload_head(head, kTime),
            "transfer-upload-v1\nPOST\n/upload/books%20x\n1234\n" + head.plaintext_sha256 +
                "\nidem-1\n0123456789abcdef\n1764421234");
  EXPECT_EQ(sign_upload_head(derive(kFernetKey), head, kTime),
            "t=1764421234,v1=65761caef3402f67428ade651ff4f354f31f69f294ecce65fea559b4f90f49a2");
  // No transfer id: an empty line where it goes.
  SignedHead no_id = head;
  no_id.transfer_id.clear();
  EXPECT_EQ(sign_upload_head(derive(kFernetKey), no_id, kTime),
            "t=1764421234,v1=2e4c491072a38ee494c7f9b6a1a9213b67ee312823338c141aec61ab7882fa70");
  // Absent headers are empty lines.
  SignedHead bare{"POST", "/upload/x", 7, "", "", ""};
  EXPECT_EQ(canonical_upload_head(bare, 5), "transfer-upload-v1\nPOST\n/upload/x\n7\n\n\n\n5");
}

TEST(UploadSignature, AttemptsInTheSameSecondDifferByTheirTransferId) {
  const std::vector<UploadSigningKey> keys = {derive(kFernetKey)};
  SignedHead first = golden_head();
  SignedHead second = first;
  second.transfer_id = "fedcba9876543210";
  const std::string a = sign_upload_head(keys[0], first, kTime);
  const std::string b = sign_upload_head(keys[0], second, kTime);
  EXPECT_NE(a, b);
  EXPECT_TRUE(verify_upload_signature(a, first, keys, kTime, kWindow).ok());
  EXPECT_TRUE(verify_upload_signature(b, second, keys, kTime, kWindow).ok());
  // So a replay guard takes both.
  SignatureReplayGuard guard(kWindow);
  EXPECT_TRUE(guard.first_use(parse_upload_signature(a)->v1_hex, kTime, kTime));
  EXPECT_TRUE(guard.first_use(parse_upload_signature(b)->v1_hex, kTime, kTime));
}

TEST(UploadSignature, RoundTrips) {
  const std::vector<UploadSigningKey> keys = {derive(kFernetKey)};
  const auto head = golden_head();
  const std::string header = sign_upload_head(keys[0], head, kTime);
  auto verified = verify_upload_signature(header, head, keys, kTime, kWindow);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(*verified, 0U);
  auto parsed = parse_upload_signature(header);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->time, kTime);
  EXPECT_EQ(parsed->v1_hex, header.substr(header.find("v1=") + 3));
}

TEST(UploadSignature, RefusesEachTamperedField) {
  const std::vector<UploadSigningKey> keys = {derive(kFernetKey)};
  const auto head = golden_head();
  const std::string header = sign_upload_head(keys[0], head, kTime);
  struct Case {
    const char* name;
    std::function<void(SignedHead&, std::string&)> tamper;
  };
  const std::vector<Case> cases = {
      {"method", [](SignedHead& h, std::string&) { h.method = "PUT"; }},
      {"method case", [](SignedHead& h, std::string&) { h.method = "post"; }},
      {"target", [](SignedHead& h, std::string&) { h.target = "/upload/books x"; }},
      {"target encoding", [](SignedHead& h, std::string&) { h.target = "/upload/books%20X"; }},
      {"content length", [](SignedHead& h, std::string&) { h.content_length += 1; }},
      {"plaintext sha", [](SignedHead& h, std::string&) { h.plaintext_sha256[0] = 'c'; }},
      {"sha dropped", [](SignedHead& h, std::string&) { h.plaintext_sha256.clear(); }},
      {"idempotency key", [](SignedHead& h, std::string&) { h.idempotency_key = "idem-2"; }},
      {"idempotency key dropped", [](SignedHead& h, std::string&) { h.idempotency_key.clear(); }},
      {"transfer id", [](SignedHead& h, std::string&) { h.transfer_id = "0123456789abcdee"; }},
      {"transfer id dropped", [](SignedHead& h, std::string&) { h.transfer_id.clear(); }},
      {"transfer id and key swapped",
       [](SignedHead& h, std::string&) { std::swap(h.idempotency_key, h.transfer_id); }},
      {"t", [](SignedHead&, std::string& v) { v.replace(2, 10, "1764421235"); }},
      {"first hex digit of v1",
       [](SignedHead&, std::string& v) {
         const size_t at = v.find("v1=") + 3;
         v[at] = v[at] == '0' ? '1' : '0';
       }},
      {"last hex digit of v1",
       [](SignedHead&, std::string& v) { v.back() = v.back() == 'f' ? 'e' : 'f'; }},
      {"fields moved across a line",
       [](SignedHead& h, std::string&) {
         h.target += "\n1234";
         h.content_length = 0;
       }},
  };
  for (const auto& c : cases) {
    SignedHead h = head;
    std::string v = header;
    c.tamper(h, v);
    auto verified = verify_upload_signature(v, h, keys, kTime, kWindow);
    ASSERT_FALSE(verified.ok()) << c.name;
    EXPECT_EQ(verified.error().code, ErrorCode::kUnauthenticated) << c.name;
  }
  // A line break in any field is refused even when the signature was made over it.
  for (const char* id : {"0123456789\nabcdef", "0123456789abcdef\r"}) {
    SignedHead h = head;
    h.transfer_id = id;
    auto verified =
        verify_upload_signature(sign_upload_head(keys[0], h, kTime), h, keys, kTime, kWindow);
    ASSERT_FALSE(verified.ok()) << id;
    EXPECT_EQ(verified.error().message,
              "a signed request head cannot hold a line break in its method, target or headers")
        << id;
  }
}

TEST(UploadSignature, RefusesTimesOutsideTheWindow) {
  const std::vector<UploadSigningKey> keys = {derive(kFernetKey)};
  const auto head = golden_head();
  struct Case {
    int64_t signed_offset;  // signature time relative to the verifier's clock
    bool accepted;
  };
  const std::vector<Case> cases = {
      {0, true},     {-299, true}, {299, true},   {-300, true},   {300, true},
      {-301, false}, {301, false}, {-412, false}, {86400, false}, {-86400, false},
  };
  for (const auto& c : cases) {
    const uint64_t t = static_cast<uint64_t>(static_cast<int64_t>(kTime) + c.signed_offset);
    auto verified =
        verify_upload_signature(sign_upload_head(keys[0], head, t), head, keys, kTime, kWindow);
    EXPECT_EQ(verified.ok(), c.accepted) << c.signed_offset;
    if (!verified.ok()) {
      EXPECT_EQ(verified.error().code, ErrorCode::kUnauthenticated) << c.signed_offset;
    }
  }
  auto stale = verify_upload_signature(sign_upload_head(keys[0], head, kTime - 412), head, keys,
                                       kTime, kWindow);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(
      stale.error().message,
      "the signature's time 1764420822 is 412 s from the receiver's clock; the window is 300 s");
  // A clock near zero does not wrap around.
  EXPECT_FALSE(
      verify_upload_signature(sign_upload_head(keys[0], head, 400), head, keys, 0, kWindow).ok());
  EXPECT_TRUE(
      verify_upload_signature(sign_upload_head(keys[0], head, 0), head, keys, 300, kWindow).ok());
}

TEST(UploadSignature, RefusesAKeyNotLoaded) {
  const auto other = derive(key_from("0000000000000000000000000000000000000000000="));
  const std::vector<UploadSigningKey> keys = {derive(kFernetKey)};
  const auto head = golden_head();
  auto verified =
      verify_upload_signature(sign_upload_head(other, head, kTime), head, keys, kTime, kWindow);
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(verified.error().message, "the signature matches no loaded key");
  // No keys at all: nothing matches.
  EXPECT_FALSE(
      verify_upload_signature(sign_upload_head(other, head, kTime), head, {}, kTime, kWindow).ok());
  // The Fernet signing key used directly as the HMAC key is not the scheme.
  std::array<uint8_t, 32> raw{};
  std::copy(kFernetKey.signing_key.begin(), kFernetKey.signing_key.end(), raw.begin());
  EXPECT_FALSE(verify_upload_signature(sign_upload_head(UploadSigningKey(raw), head, kTime), head,
                                       keys, kTime, kWindow)
                   .ok());
}

TEST(UploadSignature, ReportsWhichKeyMatched) {
  const auto old_key = derive(key_from("0000000000000000000000000000000000000000000="));
  const std::vector<UploadSigningKey> keys = {old_key, derive(kFernetKey)};
  const auto head = golden_head();
  auto second =
      verify_upload_signature(sign_upload_head(keys[1], head, kTime), head, keys, kTime, kWindow);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(*second, 1U);
  auto first =
      verify_upload_signature(sign_upload_head(old_key, head, kTime), head, keys, kTime, kWindow);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 0U);
}

TEST(UploadSignature, RefusesMalformedHeaders) {
  const std::vector<UploadSigningKey> keys = {derive(kFernetKey)};
  const auto head = golden_head();
  const std::string good = sign_upload_head(keys[0], head, kTime);
  const std::string mac = good.substr(good.find("v1=") + 3);
  std::string upper = mac;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(upper, mac);
  const std::vector<std::string> bad = {
      "",
      "v1=" + mac,                                   // no t
      "t=1764421234",                                // no v1
      "t=1764421234,",                               // v1 cut
      "t=1764421234,v1=",                            // v1 empty
      "t=,v1=" + mac,                                // t empty
      "t=1764421234,v1=" + mac.substr(0, 63),        // short
      "t=1764421234,v1=" + mac + "0",                // long
      "t=1764421234,v1=" + mac.substr(0, 63) + "g",  // not hex
      "t=1764421234,v1=" + upper,                    // uppercase hex
      "t=1764421234, v1=" + mac,                     // spaces
      " t=1764421234,v1=" + mac,
      "t=1764421234,v1=" + mac + " ",
      "t = 1764421234,v1=" + mac,
      "t=1764421234,v1=" + mac + ",v1=" + mac,  // duplicate fields
      "t=1764421234,t=1764421234,v1=" + mac,
      "v1=" + mac + ",t=1764421234",  // other order
      "t=+1764421234,v1=" + mac,      // a sign
      "t=-1764421234,v1=" + mac,
      "t=x1764421234,v1=" + mac,  // leading garbage
      "t=01764421234,v1=" + mac,  // leading zero
      "t=1764421234x,v1=" + mac,
      "t=0x69,v1=" + mac,
      "t=99999999999999999999,v1=" + mac,  // 20 digits: past uint64_t
      "t=1764421234;v1=" + mac,
      "t=1764421234,v0=" + mac,
      "t=1764421234,v1=" + mac + ",v2=" + mac,  // fields we do not define
      "T=1764421234,v1=" + mac,
      std::string("t=1764421234,v1=") + mac.substr(0, 10) + '\0' + mac.substr(11),
      "t=1764421234,v1=" + mac + std::string(100000, 'a'),  // overlong
      std::string(100000, 't'),
  };
  for (const auto& v : bad) {
    auto verified = verify_upload_signature(v, head, keys, kTime, kWindow);
    ASSERT_FALSE(verified.ok()) << v.substr(0, 120);
    EXPECT_EQ(verified.error().code, ErrorCode::kUnauthenticated) << v.substr(0, 120);
    EXPECT_EQ(verified.error().message,
              "X-Transfer-Signature must be t=<unix time>,v1=<64 hex digits>")
        << v.substr(0, 120);
  }
  // The longest time accepted: 19 digits (verified against a clock at the same time).
  const uint64_t far = 9999999999999999999ULL;
  EXPECT_TRUE(
      verify_upload_signature(sign_upload_head(keys[0], head, far), head, keys, far, kWindow).ok());
  EXPECT_TRUE(
      verify_upload_signature(sign_upload_head(keys[0], head, 0), head, keys, 0, kWindow).ok());
}

TEST(UploadSignature, NeverCrashesOnArbitraryHeaderBytes) {
  const std::vector<UploadSigningKey> keys = {derive(kFernetKey)};
  const auto head = golden_head();
  const std::string good = sign_upload_head(keys[0], head, kTime);
  std::mt19937_64 rng(13);  // fixed seed: a failure reproduces
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> size(0, 200);
  for (int i = 0; i < 500; ++i) {
    std::string v;
    if (i % 2 == 0) {
      v.resize(size(rng));
      for (char& c : v) c = static_cast<char>(byte(rng));
    } else {  // the valid header with a few bytes changed, inserted or cut: near misses
      v = good;
      const int edits = 1 + i % 4;
      for (int e = 0; e < edits && !v.empty(); ++e) {
        const size_t at = std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng);
        switch (byte(rng) % 3) {
          case 0:
            v[at] = static_cast<char>(byte(rng));
            break;
          case 1:
            v.insert(at, 1, static_cast<char>(byte(rng)));
            break;
          default:
            v.erase(at, 1);
            break;
        }
      }
    }
    auto verified = verify_upload_signature(v, head, keys, kTime, kWindow);
    if (verified.ok()) {
      EXPECT_EQ(v, good);  // only the untouched header verifies (an edit may undo itself)
    } else {
      EXPECT_EQ(verified.error().code, ErrorCode::kUnauthenticated);
    }
  }
}

std::string mac_hex(int n) {  // a distinct valid v1 value per n
  std::string s = std::to_string(n);
  return std::string(64 - s.size(), 'a') + s;
}

TEST(SignatureReplayGuard, RefusesASecondUse) {
  SignatureReplayGuard guard(kWindow);
  EXPECT_TRUE(guard.first_use(mac_hex(1), kTime, kTime));
  EXPECT_FALSE(guard.first_use(mac_hex(1), kTime, kTime));
  EXPECT_FALSE(guard.first_use(mac_hex(1), kTime, kTime + 299));
  EXPECT_FALSE(guard.first_use(mac_hex(1), kTime, kTime + 300));  // verify still accepts it then
  EXPECT_TRUE(guard.first_use(mac_hex(2), kTime, kTime));
  EXPECT_EQ(guard.size(), 2U);
}

TEST(SignatureReplayGuard, ForgetsAfterExpiry) {
  SignatureReplayGuard guard(kWindow);
  EXPECT_TRUE(guard.first_use(mac_hex(1), kTime, kTime));
  EXPECT_TRUE(guard.first_use(mac_hex(1), kTime, kTime + 301));  // (verify refuses it as stale)
  EXPECT_EQ(guard.size(), 0U);  // an expired signature is not remembered again
  // A signature from the future lives until its own time plus the window.
  EXPECT_TRUE(guard.first_use(mac_hex(2), kTime + 300, kTime));
  EXPECT_FALSE(guard.first_use(mac_hex(2), kTime + 300, kTime + 600));
  // Expired entries are dropped as time goes on, not only when full.
  EXPECT_TRUE(guard.first_use(mac_hex(3), kTime + 2000, kTime + 2000));
  EXPECT_EQ(guard.size(), 1U);
}

TEST(SignatureReplayGuard, RefusesValuesThatAreNotSignatures) {
  SignatureReplayGuard guard(kWindow);
  for (const std::string& v : {std::string(), std::string(63, 'a'), std::string(65, 'a'),
                               std::string(64, 'A'), std::string(64, 'g')}) {
    EXPECT_FALSE(guard.first_use(v, kTime, kTime)) << v;
  }
  EXPECT_EQ(guard.size(), 0U);
}

TEST(SignatureReplayGuard, HoldsItsCapacity) {
  constexpr size_t kCapacity = 1000;
  SignatureReplayGuard guard(kWindow, kCapacity);
  // All within one window: nothing expires, so the oldest make room.
  for (int i = 0; i < static_cast<int>(kCapacity) + 500; ++i) {
    EXPECT_TRUE(guard.first_use(mac_hex(i), kTime + static_cast<uint64_t>(i) / 100, kTime)) << i;
    ASSERT_LE(guard.size(), kCapacity) << i;
  }
  EXPECT_EQ(guard.size(), kCapacity);
  EXPECT_FALSE(
      guard.first_use(mac_hex(static_cast<int>(kCapacity) + 499), kTime, kTime));  // newest kept
  // The oldest were dropped to make room, and stay refused: their times are under the floor.
  EXPECT_EQ(guard.forgotten_up_to(), kTime + 4);
  EXPECT_FALSE(guard.first_use(mac_hex(0), kTime, kTime));
  EXPECT_EQ(guard.size(), kCapacity);

  // When full, expired entries go before any live one.
  SignatureReplayGuard small(kWindow, 3);
  EXPECT_TRUE(small.first_use(mac_hex(1), kTime, kTime));
  EXPECT_TRUE(small.first_use(mac_hex(2), kTime + 1000, kTime));
  EXPECT_TRUE(small.first_use(mac_hex(3), kTime + 1000, kTime));
  EXPECT_TRUE(small.first_use(mac_hex(4), kTime + 1000, kTime + 400));  // 1 has expired: dropped
  EXPECT_EQ(small.size(), 3U);
  EXPECT_FALSE(small.first_use(mac_hex(2), kTime + 1000, kTime + 400));
  EXPECT_FALSE(small.first_use(mac_hex(3), kTime + 1000, kTime + 400));
}

// A full memory forgets its oldest signature, and then refuses everything timed at or before it
// (it may be a replay it forgot), rather than taking a forgotten one for new. The clock is the
// `now` passed in.
TEST(SignatureReplayGuard, RefusesWhatAFullMemoryForgot) {
  constexpr size_t kCapacity = 4;
  SignatureReplayGuard guard(kWindow, kCapacity);
  // N + 1 signatures, a second apart: the fifth makes the memory forget the first.
  for (int i = 0; i <= static_cast<int>(kCapacity); ++i) {
    ASSERT_TRUE(guard.first_use(mac_hex(i), kTime + i, kTime + i).ok()) << i;
  }
  EXPECT_EQ(guard.size(), kCapacity);
  EXPECT_EQ(guard.forgotten_up_to(), kTime);
  const uint64_t now = kTime + 10;
  auto forgotten = guard.first_use(mac_hex(0), kTime, now);
  ASSERT_FALSE(forgotten.ok());
  EXPECT_NE(
      forgotten.error().message.find("forget signatures timed up to " + std::to_string(kTime)),
      std::string::npos)
      << forgotten.error().message;
  struct Case {
    const char* what;
    int mac;
    uint64_t time;
    bool accepted;
  };
  for (const Case& c : std::vector<Case>{
           {"the forgotten one replayed", 0, kTime, false},
           {"a remembered one replayed", 3, kTime + 3, false},
           {"never seen, timed at the floor", 100, kTime, false},
           {"never seen, timed before the floor", 101, kTime - 5, false},
           {"fresh, timed now", 102, now, true},
           {"that fresh one again", 102, now, false},
       }) {
    auto st = guard.first_use(mac_hex(c.mac), c.time, now);
    EXPECT_EQ(st.ok(), c.accepted) << c.what;
    if (!st.ok()) {
      EXPECT_EQ(st.error().code, ErrorCode::kBusy) << c.what;
      EXPECT_NE(st.error().message.find("sign the request again"), std::string::npos) << c.what;
    }
  }
  EXPECT_LE(guard.size(), kCapacity);
}

TEST(SignatureReplayGuard, AFullMemoryRefusesASignatureOlderThanAllItHolds) {
  SignatureReplayGuard guard(kWindow, 2);
  ASSERT_TRUE(guard.first_use(mac_hex(1), kTime + 5, kTime + 5).ok());
  ASSERT_TRUE(guard.first_use(mac_hex(2), kTime + 6, kTime + 6).ok());
  // Timed before both: it would be the one forgotten. Refused, and nothing is forgotten for it.
  auto old = guard.first_use(mac_hex(3), kTime + 5, kTime + 7);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, ErrorCode::kBusy);
  EXPECT_EQ(guard.forgotten_up_to(), 0U);
  EXPECT_FALSE(guard.first_use(mac_hex(1), kTime + 5, kTime + 7).ok());
  EXPECT_FALSE(guard.first_use(mac_hex(2), kTime + 6, kTime + 7).ok());
}

TEST(SignatureReplayGuard, ABurstInOneSecondRefusesTheRestOfThatSecond) {
  SignatureReplayGuard guard(kWindow, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(guard.first_use(mac_hex(i), kTime, kTime).ok()) << i;
  // A fourth in the same second is older than nothing held and as old as all: refused.
  EXPECT_EQ(guard.first_use(mac_hex(3), kTime, kTime).error().code, ErrorCode::kBusy);
  // Signed again a second later, it passes (and the memory forgets one of kTime).
  EXPECT_TRUE(guard.first_use(mac_hex(4), kTime + 1, kTime + 1).ok());
  EXPECT_EQ(guard.forgotten_up_to(), kTime);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(guard.first_use(mac_hex(i), kTime, kTime + 1).ok()) << i;
}

TEST(SignatureReplayGuard, ForgottenSignaturesStayRefusedOnceTheMemoryEmpties) {
  SignatureReplayGuard guard(kWindow, 1);
  ASSERT_TRUE(guard.first_use(mac_hex(1), kTime, kTime).ok());
  ASSERT_TRUE(guard.first_use(mac_hex(2), kTime + 1, kTime + 1).ok());  // forgets 1
  // 2 expires; the floor stays (until the window makes every signature at or before it stale).
  EXPECT_FALSE(guard.first_use(mac_hex(1), kTime, kTime + 299).ok());
  EXPECT_TRUE(guard.first_use(mac_hex(3), kTime + 302, kTime + 302).ok());
  EXPECT_EQ(guard.size(), 1U);
  EXPECT_FALSE(guard.first_use(mac_hex(1), kTime, kTime + 302).ok());
}

// A restart: the new process's memory is empty, so it refuses every signature timed before the
// second after it started, even one made in the very second it started.
TEST(SignatureReplayGuard, RefusesSignaturesMadeBeforeItStarted) {
  EXPECT_EQ(signatures_not_before(kTime), kTime + 1);
  SignatureReplayGuard before_restart(kWindow);
  ASSERT_TRUE(before_restart.first_use(mac_hex(1), kTime, kTime).ok());
  for (const uint64_t restarted_at : {kTime, kTime + 1, kTime + 200}) {
    SignatureReplayGuard after_restart(kWindow, SignatureReplayGuard::kDefaultCapacity,
                                       signatures_not_before(restarted_at));
    EXPECT_EQ(after_restart.not_before(), restarted_at + 1);
    auto replayed = after_restart.first_use(mac_hex(1), kTime, restarted_at);
    ASSERT_FALSE(replayed.ok()) << restarted_at;
    EXPECT_EQ(replayed.error().code, ErrorCode::kUnauthenticated);
    EXPECT_NE(replayed.error().message.find("predates this receiver's start"), std::string::npos)
        << replayed.error().message;
    // Made before the restart, even by an honest sender: refused too; signed again, it passes.
    EXPECT_FALSE(after_restart.first_use(mac_hex(2), restarted_at, restarted_at).ok());
    EXPECT_TRUE(after_restart.first_use(mac_hex(2), restarted_at + 1, restarted_at + 1).ok());
    EXPECT_EQ(after_restart.size(), 1U) << "refused signatures are not remembered";
  }
}

TEST(SignatureReplayGuard, OneWinnerPerSignatureAcrossThreads) {
  SignatureReplayGuard guard(kWindow, 256);
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (guard.first_use(mac_hex(i), kTime, kTime)) winners.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 200);
  EXPECT_LE(guard.size(), 256U);
}

}  // namespace
}  // namespace transfer
