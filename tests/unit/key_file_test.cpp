#include "transfer/key_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace transfer {
namespace {

TEST(KeyFile, AcceptsWhatTheOldPairWrote) {
  const std::vector<std::string> good = {
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",        // standard alphabet
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",      // openssl base64 output
      "  cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\r\n",  // URL-safe, CRLF, spaces
      "++//AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
  };
  for (const auto& text : good) {
    auto keys = parse_key_text(text, "k");
    ASSERT_TRUE(keys.ok()) << text << ": " << keys.error().message;
    EXPECT_EQ(keys->size(), 1U);
  }
}

TEST(KeyFile, StandardAndUrlSafeSpellingsAreTheSameKey) {
  auto a = parse_key_text("+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8=", "a");
  auto b = parse_key_text("-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8=", "b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->front().signing_key, b->front().signing_key);
  EXPECT_EQ(a->front().encryption_key, b->front().encryption_key);
}

TEST(KeyFile, RefusesWhatIsNotAKeyWithoutPrintingIt) {
  const std::vector<std::string> bad = {
      "", "\n\n", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",   // no padding
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",                 // 31 bytes
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",  // hex
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx*dHh8=",
  };
  for (const auto& text : bad) {
    auto keys = parse_key_text(text, "/run/secrets/k");
    ASSERT_FALSE(keys.ok()) << text;
    EXPECT_EQ(keys.error().code, ErrorCode::kInvalidKey);
    EXPECT_NE(keys.error().message.find("/run/secrets/k"), std::string::npos);
    EXPECT_NE(keys.error().message.find("openssl base64"), std::string::npos);
    if (text.size() > 8) {
      EXPECT_EQ(keys.error().message.find(text.substr(0, 8)), std::string::npos);
    }
  }
}

TEST(KeyFile, SeveralKeysOnePerLine) {
  auto keys = parse_key_text("# new key first\ncw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n"
                             "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", "k");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 2U);
}

TEST(KeyFile, MissingFileNamesThePathAndTheFix) {
  auto keys = load_key_file("/nonexistent/key");
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.error().message.find("/nonexistent/key"), std::string::npos);
  EXPECT_NE(keys.error().message.find("dd if=/dev/urandom"), std::string::npos);
}

TEST(KeyFile, GeneratedKeysParse) {
  auto text = generate_key_text();
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->size(), 44U);
  EXPECT_TRUE(parse_key_text(*text, "gen").ok());
}

}  // namespace
}  // namespace transfer
