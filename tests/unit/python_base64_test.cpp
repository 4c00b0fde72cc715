#include "transfer/python_base64.hpp"

#include <gtest/gtest.h>

#include <optional>

#include "transfer/sha256.hpp"

namespace transfer {
namespace {

// Expected values printed by Python 3.11: base64.urlsafe_b64decode(input).hex(), or an error.
TEST(PythonBase64, MatchesPythonUrlsafeB64decode) {
  const std::vector<std::pair<std::string, std::optional<std::string>>> cases = {
      {"", ""}, {"QQ==", "41"}, {"QQ=", std::nullopt}, {"QQ", std::nullopt}, {"QUI=", "4142"},
      {"QUI", std::nullopt}, {"QUJD", "414243"}, {"Q", std::nullopt}, {"QQ==QUJD", "41"},
      {"Q=Q==", "41"}, {"QQ=x=", "410c"}, {"Q Q = =", "41"}, {"QQ\n==", "41"},
      {"++//", "fbefff"}, {"--__", "fbefff"}, {"-_+/", "fbffbf"}, {"QUJD=", "414243"},
      {"=QUJD", "414243"}, {"QQ===", "41"}, {"QU=JD", "414243"}, {"QUJDRA", std::nullopt},
      {"QUJDRA=", std::nullopt}, {"QUJDRA==junk", "41424344"}, {"%%QUJD%%", "414243"},
      {std::string("QQ=\0=", 5), "41"}, {"\xc3\xa9QUJD", "414243"},
  };
  for (const auto& [in, want] : cases) {
    PythonBase64Decoder dec;
    std::string out;
    dec.update(in.data(), in.size(), out);
    if (!want) {
      EXPECT_FALSE(dec.finish_ok()) << in;
      continue;
    }
    EXPECT_TRUE(dec.finish_ok()) << in;
    EXPECT_EQ(to_hex(reinterpret_cast<const uint8_t*>(out.data()), out.size()), *want) << in;
  }
}

}  // namespace
}  // namespace transfer
