#include "transfer/python_base64.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "transfer/sha256.hpp"

namespace transfer {
namespace {

// Expected values printed by Python 3.11: base64.urlsafe_b64decode(input).hex(), or an error.
TEST(PythonBase64, MatchesPythonUrlsafeB64decode) {
  std::vector<std::pair<std::string, std::optional<std::string>>> cases = {
      {"", ""}, {"QQ==", "41"}, {"QQ=", std::nullopt}, {"QQ", std::nullopt}, {"QUI=", "4142"},
      {"QUI", std::nullopt}, {"QUJD", "414243"}, {"Q", std::nullopt}, {"QQ==QUJD", "41"},
      {"Q=Q==", "41"}, {"QQ=x=", "410c"}, {"Q Q = =", "41"}, {"QQ\n==", "41"},
      {"++//", "fbefff"}, {"--__", "fbefff"}, {"-_+/", "fbffbf"}, {"QUJD=", "414243"},
      {"=QUJD", "414243"}, {"QQ===", "41"}, {"QU=JD", "414243"}, {"QUJDRA", std::nullopt},
      {"QUJDRA=", std::nullopt}, {"QUJDRA==junk", "41424344"}, {"%%QUJD%%", "414243"},
      {std::string("QQ=\0=", 5), "41"}, {"\xc3\xa9QUJD", "414243"},
  };
  std::string long_in, long_want;  // the fast path for whole quanta, broken up by junk and padding
  for (int i = 0; i < 40; ++i) {
    long_in += i % 7 == 3 ? "QU\nJD" : "QUJD";
    long_want += "414243";
  }
  cases.emplace_back(long_in + "QQ=x=QUJD", long_want + "410c");
  cases.emplace_back(long_in + "QQ==" + long_in, long_want + "41");
  for (const auto& [in, want] : cases) {
    for (size_t chunk = 1; chunk <= in.size() + 1; chunk = chunk < 9 ? chunk + 1 : chunk * 3) {
      PythonBase64Decoder dec;
      std::string out;
      for (size_t at = 0; at < in.size(); at += chunk) dec.update(in.data() + at, std::min(chunk, in.size() - at), out);
      if (!want) {
        EXPECT_FALSE(dec.finish_ok()) << in << " chunk " << chunk;
        continue;
      }
      EXPECT_TRUE(dec.finish_ok()) << in << " chunk " << chunk;
      EXPECT_EQ(to_hex(reinterpret_cast<const uint8_t*>(out.data()), out.size()), *want) << in << " chunk " << chunk;
    }
  }
}

TEST(PythonBase64, UrlSafeAlphabetChangesOnlyPlusAndSlash) {
  std::string all;
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  }
  for (size_t offset = 0; offset < 9; ++offset) {
    std::string text = all.substr(offset);
    to_url_safe_alphabet(text.data(), text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = all[offset + i];
      EXPECT_EQ(text[i], c == '+' ? '-' : c == '/' ? '_' : c) << i;
    }
  }
}

}  // namespace
}  // namespace transfer
