#include "transfer/upload_name.hpp"

#include <gtest/gtest.h>

namespace transfer {
namespace {

TEST(UploadName, AcceptsOrdinaryNames) {
  for (const std::string n : {"books", "ok.v2", "caf\xC3\xA9", "a b", "a..b", "x-1_2", "\xE6\x9D\xB1",
                              " leading", "a.b.c", "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D",  // Hebrew, no bidi control
                              "\xF0\x9F\x93\x84", "a\xC2\xA0" "b"}) {                    // emoji; NBSP inside
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
      {"\xC2\xA0\xE3\x80\x80", "made only of spaces"},  // NBSP, ideographic space
      {"a.", "ends in a dot"},
      {"report.xml.", "ends in a dot"},
      {"a ", "ends in a space (U+0020)"},
      {"a\xC2\xA0", "ends in a space (U+00A0)"},
      {"invoice\xE2\x80\xAElmx", "format character U+202E"},  // right-to-left override
      {"\xE2\x80\xAD" "abc", "format character U+202D"},      // left-to-right override
      {"a\xE2\x81\xA6" "b", "format character U+2066"},       // left-to-right isolate
      {"zw\xE2\x80\x8Bsp", "format character U+200B"},        // zero-width space
      {"a\xE2\x80\x8D" "b", "format character U+200D"},       // zero-width joiner
      {"\xEF\xBB\xBF" "bom", "format character U+FEFF"},      // byte order mark
      {"soft\xC2\xADhyphen", "format character U+00AD"},
      {"a\xE2\x81\xA0" "b", "format character U+2060"},       // word joiner
      {"tag\xF3\xA0\x80\x81", "format character U+E0001"},    // language tag (4-byte sequence)
      {"line\xE2\x80\xA8" "sep", "separator U+2028"},
      {"para\xE2\x80\xA9" "sep", "separator U+2029"},
  };
  for (const auto& c : cases) {
    auto st = validate_upload_name(c.name);
    ASSERT_FALSE(st.ok()) << c.name;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidName) << c.name;
    EXPECT_NE(st.error().message.find(c.reason), std::string::npos)
        << c.name << ": " << st.error().message << " (expected: " << c.reason << ")";
  }
}

TEST(UploadName, InputNamesTheSenderQuarantines) {
  // The sender's upload name is the file name without ".json": these input names fail.
  for (const std::string file : {"   .json", "a..json", "a .json", "invoice\xE2\x80\xAElmx.json",
                                 "zw\xE2\x80\x8Bsp.json"}) {
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
