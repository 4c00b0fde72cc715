#include "transfer/fernet.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "transfer/file_util.hpp"

namespace transfer {
namespace {

nlohmann::json load_vectors(const std::string& name) {
  std::ifstream in(std::string(TRANSFER_FERNET_VECTORS) + "/" + name);
  EXPECT_TRUE(in.good()) << "missing " << name << " (apt-get install python3-cryptography-vectors)";
  return nlohmann::json::parse(in);
}

// "1985-10-26T01:20:00-07:00" -> unix seconds
uint64_t parse_time(const std::string& s) {
  std::tm tm{};
  strptime(s.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  int64_t t = timegm(&tm);
  const int sign = s[19] == '-' ? 1 : -1;
  t += sign * (std::stoi(s.substr(20, 2)) * 3600 + std::stoi(s.substr(23, 2)) * 60);
  return static_cast<uint64_t>(t);
}

FernetKey key_of(const std::string& secret) {
  auto keys = parse_key_text(secret, "secret");
  EXPECT_TRUE(keys.ok());
  return keys->front();
}

TEST(FernetVectors, Generate) {
  const auto vectors = load_vectors("generate.json");
  ASSERT_FALSE(vectors.empty());
  for (const auto& v : vectors) {
    std::vector<uint8_t> iv = v["iv"].get<std::vector<uint8_t>>();
    auto token = fernet_encrypt(key_of(v["secret"]), v["src"].get<std::string>(),
                                parse_time(v["now"]), iv.data());
    ASSERT_TRUE(token.ok());
    EXPECT_EQ(*token, v["token"].get<std::string>());
    EXPECT_EQ(token->size(), fernet_token_length(v["src"].get<std::string>().size()));
  }
}

TEST(FernetVectors, Verify) {
  const auto vectors = load_vectors("verify.json");
  ASSERT_FALSE(vectors.empty());
  for (const auto& v : vectors) {
    auto plain = fernet_decrypt({key_of(v["secret"])}, v["token"].get<std::string>(),
                                v["ttl_sec"].get<uint64_t>(), parse_time(v["now"]));
    ASSERT_TRUE(plain.ok()) << plain.error().message;
    EXPECT_EQ(*plain, v["src"].get<std::string>());
  }
}

TEST(FernetVectors, Invalid) {
  const auto vectors = load_vectors("invalid.json");
  ASSERT_GE(vectors.size(), 8U);
  for (const auto& v : vectors) {
    auto plain = fernet_decrypt({key_of(v["secret"])}, v["token"].get<std::string>(),
                                v["ttl_sec"].get<uint64_t>(), parse_time(v["now"]));
    EXPECT_FALSE(plain.ok()) << v["desc"];
    if (!plain.ok()) {
      EXPECT_EQ(plain.error().code, ErrorCode::kInvalidToken) << v["desc"];
    }
  }
}

const FernetKey& test_key() {
  static const FernetKey k = key_of("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
  return k;
}

TEST(Fernet, FlippingAnyByteIsRejected) {
  const auto token = *fernet_encrypt(test_key(), "the quick brown fox jumps over the lazy dog");
  auto raw_ok = fernet_decrypt({test_key()}, token);
  ASSERT_TRUE(raw_ok.ok());
  // Flip each base64 character to another alphabet character: every decoded byte changes.
  for (size_t i = 0; i + 2 < token.size(); ++i) {  // the last chars carry '=' padding
    std::string t = token;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    if (t == token) continue;
    EXPECT_FALSE(fernet_decrypt({test_key()}, t).ok()) << "position " << i;
  }
  EXPECT_FALSE(fernet_decrypt({test_key()}, token.substr(0, token.size() - 4)).ok());
  EXPECT_FALSE(fernet_decrypt({test_key()}, "").ok());
  EXPECT_FALSE(fernet_decrypt({test_key()}, token + token).ok());
}

TEST(Fernet, StreamingAtEveryChunkBoundaryMatchesWholeBuffer) {
  std::string plain;
  for (int i = 0; i < 100; ++i) plain += static_cast<char>(i * 7);
  const uint8_t iv[16] = {};
  const auto whole = *fernet_encrypt(test_key(), plain, 1000, iv);
  for (size_t chunk = 1; chunk <= 40; ++chunk) {
    auto enc = FernetStreamEncryptor::create(test_key(), 1000, iv);
    std::string token;
    for (size_t i = 0; i < plain.size(); i += chunk) enc->update(plain.data() + i, std::min(chunk, plain.size() - i), token);
    enc->finish(token);
    ASSERT_EQ(token, whole) << "encrypt chunk " << chunk;

    std::string out;
    auto dec = FernetStreamDecryptor::create({test_key()}, [&](size_t, const char* d, size_t n) {
      out.append(d, n);
      return ok_status();
    });
    for (size_t i = 0; i < token.size(); i += chunk) ASSERT_TRUE(dec->update(token.substr(i, chunk)).ok());
    ASSERT_TRUE(dec->finish(0).ok()) << "decrypt chunk " << chunk;
    ASSERT_EQ(out, plain) << "decrypt chunk " << chunk;
  }
}

TEST(Fernet, TokenLengthFormulaHoldsForEverySize) {
  for (size_t n = 0; n < 100; ++n) {
    EXPECT_EQ(fernet_encrypt(test_key(), std::string(n, 'x'))->size(), fernet_token_length(n)) << n;
  }
}

TEST(Fernet, AcceptsWhatPythonAccepts) {
  const auto token = *fernet_encrypt(test_key(), "<a/>");
  std::string std_alphabet = token;
  for (char& c : std_alphabet) c = c == '-' ? '+' : c == '_' ? '/' : c;
  std::string spaced = " " + token.substr(0, 10) + "\n" + token.substr(10) + "\r\n";
  for (const auto& t : {std_alphabet, spaced, token + "junk after padding"}) {
    auto p = fernet_decrypt({test_key()}, t);
    ASSERT_TRUE(p.ok()) << t;
    EXPECT_EQ(*p, "<a/>");
  }
  std::string unpadded = token;
  while (unpadded.back() == '=') unpadded.pop_back();
  ASSERT_NE(unpadded, token);
  EXPECT_FALSE(fernet_decrypt({test_key()}, unpadded).ok());
}

TEST(Fernet, MultiKeyDecryptsWithWhicheverMatches) {
  const FernetKey other = key_of("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=");
  const auto token = *fernet_encrypt(other, "rotated");
  EXPECT_FALSE(fernet_decrypt({test_key()}, token).ok());
  auto p = fernet_decrypt({test_key(), other}, token);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "rotated");
}

TEST(Fernet, OptionalTtl) {
  const auto token = *fernet_encrypt(test_key(), "x", 1000);
  EXPECT_TRUE(fernet_decrypt({test_key()}, token).ok());            // no TTL: any age
  EXPECT_TRUE(fernet_decrypt({test_key()}, token, 60, 1050).ok());
  EXPECT_FALSE(fernet_decrypt({test_key()}, token, 60, 1061).ok());  // expired
  EXPECT_FALSE(fernet_decrypt({test_key()}, token, 60, 900).ok());   // from the future
}

}  // namespace
}  // namespace transfer

namespace transfer {
namespace {

// The receiver's path for several keys: authenticate while storing the ciphertext once, then
// decrypt it in place with the key that matched.
TEST(Fernet, AuthenticateThenDecryptInPlace) {
  const auto keys = *parse_key_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                                    "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=\n", "k");
  for (const size_t size : {0, 1, 15, 16, 17, 1000, 300000}) {
    for (size_t signer = 0; signer < keys.size(); ++signer) {
      std::string plaintext(size, '\0');
      for (size_t i = 0; i < size; ++i) plaintext[i] = static_cast<char>(i * 7 + 3);
      const std::string token = *fernet_encrypt(keys[signer], plaintext);
      char tmpl[] = "/tmp/fernet-in-place-XXXXXX";
      UniqueFd fd(::mkstemp(tmpl));
      ::unlink(tmpl);
      uint64_t stored = 0;
      auto dec = FernetStreamDecryptor::create_authenticator(keys, [&](const char* d, size_t n) {
        stored += n;
        return write_all(fd.get(), d, n, "tmp");
      });
      ASSERT_TRUE(dec.ok());
      for (size_t i = 0; i < token.size(); i += 777) {
        ASSERT_TRUE(dec->update(token.data() + i, std::min<size_t>(777, token.size() - i)).ok());
      }
      auto matched = dec->finish(0);
      ASSERT_TRUE(matched.ok()) << size;
      EXPECT_EQ(*matched, signer) << size;
      EXPECT_EQ(stored, (size / 16 + 1) * 16) << "the ciphertext is stored once, size " << size;
      std::string seen;
      auto out = fernet_decrypt_in_place(fd.get(), stored, keys[*matched], dec->iv(),
                                         [&](const char* d, size_t n) { seen.append(d, n); }, "tmp");
      ASSERT_TRUE(out.ok()) << size;
      EXPECT_EQ(*out, size);
      EXPECT_EQ(seen, plaintext) << size;
      std::string on_disk(size, '\0');
      ASSERT_EQ(::pread(fd.get(), on_disk.data(), size, 0), static_cast<ssize_t>(size));
      EXPECT_EQ(on_disk, plaintext) << size;
      struct stat st {};
      ::fstat(fd.get(), &st);
      EXPECT_EQ(static_cast<uint64_t>(st.st_size), size) << "truncated to the plaintext";
    }
  }
}

TEST(Fernet, AuthenticatorRefusesATamperedTokenAndBadPaddingInPlace) {
  const auto keys = *parse_key_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                                    "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=\n", "k");
  std::string token = *fernet_encrypt(keys[1], std::string(100, 'x'));
  token[60] = token[60] == 'A' ? 'B' : 'A';
  auto dec = FernetStreamDecryptor::create_authenticator(keys, [](const char*, size_t) { return ok_status(); });
  ASSERT_TRUE(dec->update(token).ok());
  EXPECT_EQ(dec->finish(0).error().code, ErrorCode::kInvalidToken);

  // Blocks that do not end in valid PKCS7 padding (a wrong key) are refused, not written out.
  char tmpl[] = "/tmp/fernet-in-place-XXXXXX";
  UniqueFd fd(::mkstemp(tmpl));
  ::unlink(tmpl);
  const std::string junk(64, '\x5a');
  ASSERT_TRUE(write_all(fd.get(), junk.data(), junk.size(), "tmp").ok());
  const std::array<uint8_t, 16> iv{};
  auto out = fernet_decrypt_in_place(fd.get(), junk.size(), keys[0], iv, {}, "tmp");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidToken);
  EXPECT_FALSE(fernet_decrypt_in_place(fd.get(), 0, keys[0], iv, {}, "tmp").ok());
}

}  // namespace
}  // namespace transfer
