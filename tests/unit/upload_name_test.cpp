#include "transfer/upload_name.hpp"

#include <gtest/gtest.h>

namespace transfer {
namespace {

TEST(UploadName, AcceptsOrdinaryNames) {
  for (const std::string n : {"books", "ok.v2", "caf\xC3\xA9", "a b", "a..b", "x-1_2", "\xE6\x9D\xB1"}) {
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
      EXPECT_EQ(st.error().code, ErrorCode::kInvalidName);
    }
  }
}

TEST(UploadName, CutsOnlyTheFinalJsonSuffix) {
  EXPECT_EQ(upload_name_for_file("a.json"), "a");
  EXPECT_EQ(upload_name_for_file("a.b.json"), "a.b");
  EXPECT_EQ(upload_name_for_file("a.json.json"), "a.json");
}

}  // namespace
}  // namespace transfer
