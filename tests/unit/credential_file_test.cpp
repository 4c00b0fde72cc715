// read_credential_file: one value per file, the editor's newline dropped, never echoed.

#include "credential_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "transfer/file_util.hpp"

namespace transfer::sender {
namespace {

class CredentialFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/credential-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string dir_;
};

TEST_F(CredentialFileTest, TheValueWithoutItsTrailingNewline) {
  EXPECT_EQ(*read_credential_file("secret_key_file", write("a", "s3cr3t/+=\n")), "s3cr3t/+=");
  EXPECT_EQ(*read_credential_file("secret_key_file", write("b", "s3cr3t\r\n")), "s3cr3t");
  EXPECT_EQ(*read_credential_file("secret_key_file", write("c", "no newline")), "no newline");
  EXPECT_EQ(*read_credential_file("password_file", write("d", " spaces kept ")), " spaces kept ");
}

TEST_F(CredentialFileTest, RefusalsNameTheFieldAndTheFileButNeverTheValue) {
  const std::string value = "the-secret-value";
  const std::string two = write("two", value + "\nsecond\n");
  auto r = read_credential_file("secret_key_file", two);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("secret_key_file " + two), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("more than one line"), std::string::npos);
  EXPECT_EQ(r.error().message.find(value), std::string::npos);

  auto empty = read_credential_file("access_key_file", write("empty", "\n"));
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("is empty"), std::string::npos);

  auto missing = read_credential_file("password_file", dir_ + "/missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot be read"), std::string::npos);

  auto nul = read_credential_file("password_file", write("nul", std::string("a\0b", 3)));
  ASSERT_FALSE(nul);

  auto big = read_credential_file("password_file", write("big", std::string(kMaxCredentialBytes + 1, 'x')));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("larger than"), std::string::npos);

  auto none = read_credential_file("password_file", "");
  ASSERT_FALSE(none);
}

}  // namespace
}  // namespace transfer::sender
