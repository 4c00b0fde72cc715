#include "transfer/upload_name.hpp"

#include <gtest/gtest.h>

namespace transfer {
namespace {

// Ordinary string literals are UTF-8 here (GCC's and Clang's execution character set), so
// "\u202E" is the three bytes E2 80 AE a client would percent-encode.
TEST(UploadName, AcceptsOrdinaryNames) {
  for (const std::string n :
       {"books", "ok.v2", "caf\u00E9", "a b", "a..b", "x-1_2", "\u6771", " leading", "a.b.c",
        "\u05E9\u05DC\u05D5\u05DD",          // Hebrew, no control
        "\U0001F4C4", "a\u00A0b",            // emoji; NBSP inside
        "\uAC00", "\u0915\u093C", "\u09CB",  // NFC: a Hangul syllable, a nukta,
        "\u00E1\u0316"}) {                   // a Bengali vowel, marks composed
    EXPECT_TRUE(validate_upload_name(n).ok()) << n;
  }
  EXPECT_TRUE(validate_upload_name(std::string(200, 'a')).ok());
}

TEST(UploadName, RefusesDangerousNames) {
  const std::vector<std::string> bad = {
      "", ".", "..", ".hidden", "...", "a/b", "../x", "a\\b", std::string("a\0b", 3), "a\nb",
      "a\x7f", "a\xC2\x85", "\xff\xfe", "\xC0\xAF", "\xED\xA0\x80", std::string(201, 'a'),
  };
  for (const auto& n : bad) {
    auto st = validate_upload_name(n);
    EXPECT_FALSE(st.ok()) << n;
    if (!st.ok()) {
      EXPECT_EQ(st.error().code, ErrorCode::kInvalidName) << n;
    }
  }
}

// Names that lie about themselves: each is refused with its own reason, which names the
// character when one is to blame.
TEST(UploadName, RefusesNamesThatLieAboutThemselves) {
  struct Case {
    std::string name;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {" ", "made only of spaces"},
      {"   ", "made only of spaces"},
      {"\u00A0\u3000", "made only of spaces"},  // no-break space, ideographic space
      {"a.", "ends in a dot"},
      {"report.xml.", "ends in a dot"},
      {"a ", "ends in a space (U+0020)"},
      {"a\u00A0", "ends in a space (U+00A0)"},
      {"invoice\u202Elmx", "format character U+202E"},  // right-to-left override
      {"\u202Dabc", "format character U+202D"},         // left-to-right override
      {"a\u2066b", "format character U+2066"},          // left-to-right isolate
      {"zw\u200Bsp", "format character U+200B"},        // zero-width space
      {"a\u200Db", "format character U+200D"},          // zero-width joiner
      {"\uFEFFbom", "format character U+FEFF"},         // byte order mark
      {"soft\u00ADhyphen", "format character U+00AD"},  // soft hyphen
      {"a\u2060b", "format character U+2060"},          // word joiner
      {"tag\U000E0001", "format character U+E0001"},    // language tag (a 4-byte sequence)
      {"line\u2028sep", "separator U+2028"},
      {"para\u2029sep", "separator U+2029"},
      // Invisible fillers: letters or symbols to Unicode (not Cf), drawing nothing.
      {"\u115F", "invisible filler U+115F"},  // Hangul choseong filler: a whole "name"
      {"a\u1160b", "invisible filler U+1160"},
      {"\u3164\u3164", "invisible filler U+3164"},
      {"x\uFFA0", "invisible filler U+FFA0"},
      {"\u2800", "invisible filler U+2800"},  // Braille pattern blank
      // Not NFC: the run to blame and its composed form, never the whole name.
      {"cafe\u0301", "NFC (U+0065 U+0301: use the composed form U+00E9)"},
      {"e\u0301" + std::string(150, 'x'), "(U+0065 U+0301: use the composed form U+00E9)"},
      {std::string(150, 'x') + "A\u030A", "(U+0041 U+030A: use the composed form U+00C5)"},
      {"\u212B", "(U+212B: use the composed form U+00C5)"},  // angstrom sign: a singleton
      {"\u1100\u1161", "(U+1100 U+1161: use the composed form U+AC00)"},  // Hangul jamo
      {"\u0958", "(U+0958: use the composed form U+0915 U+093C)"},        // composition exclusion
      {"\u09C7\u09BE", "(U+09C7 U+09BE: use the composed form U+09CB)"},  // two starters
      {"a\u0301\u0316", "(U+0061 U+0301 U+0316: use the composed form U+00E1 U+0316)"},  // order
      {"o\u0302\u0301\u0323\u0307x", "U+0323 ...: use the composed form U+1ED9 U+0301 U+0307)"},
  };
  for (const auto& c : cases) {
    auto st = validate_upload_name(c.name);
    ASSERT_FALSE(st.ok()) << c.name;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidName) << c.name;
    EXPECT_NE(st.error().message.find(c.reason), std::string::npos)
        << c.name << ": " << st.error().message << " (expected: " << c.reason << ")";
  }
}

TEST(UploadName, NfcMessagesStayShort) {
  // The longest name, all of it decomposed: the message shows four code points, not the name.
  std::string name;
  while (name.size() + 3 <= kMaxUploadNameBytes) name += "e\u0301";
  auto st = validate_upload_name(name);
  ASSERT_FALSE(st.ok());
  EXPECT_LT(st.error().message.size(), 120U) << st.error().message;
}

TEST(UploadName, InputNamesTheSenderQuarantines) {
  // The sender's upload name is the file name without ".json": these input names fail.
  for (const std::string file : {"   .json", "a..json", "a .json", "invoice\u202Elmx.json",
                                 "zw\u200Bsp.json", "cafe\u0301.json", "\u115F.json"}) {
    EXPECT_FALSE(validate_upload_name(upload_name_for_file(file)).ok()) << file;
  }
}

TEST(UploadName, CutsOnlyTheFinalJsonSuffix) {
  EXPECT_EQ(upload_name_for_file("a.json"), "a");
  EXPECT_EQ(upload_name_for_file("a.b.json"), "a.b");
  EXPECT_EQ(upload_name_for_file("a.json.json"), "a.json");
}

}  // namespace
}  // namespace transfer
