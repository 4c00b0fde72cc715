#include "upload_session.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace transfer::receiver {
namespace {

namespace fs = std::filesystem;

class UploadSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/upload-session-XXXXXX";
    dir_ = mkdtemp(tmpl);
    settings_.output_dir = dir_;
    settings_.keys = *parse_key_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "k");
    settings_.max_upload_bytes = 1 << 20;
  }
  void TearDown() override { fs::remove_all(dir_); }

  UploadRequestHead head(const std::string& name, uint64_t length) {
    return {name, "multipart/form-data; boundary=BB", length, false, false};
  }
  static std::string body(const std::string& token) {
    return "--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.xml.enc\"\r\n\r\n" +
           token + "\r\n--BB--\r\n";
  }
  UploadOutcome run(const std::string& name, const std::string& b, size_t chunk = 5) {
    auto h = head(name, b.size());
    if (auto refusal = precheck_upload(h, settings_)) return *refusal;
    UploadSession s(h, settings_);
    for (size_t i = 0; i < b.size(); i += chunk) {
      if (!s.feed(b.data() + i, std::min(chunk, b.size() - i))) break;
    }
    return s.finish(0);
  }
  size_t files_in_dir() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }

  std::string dir_;
  UploadSettings settings_;
};

TEST_F(UploadSessionTest, WritesTheDecryptedFileAtomically) {
  const auto token = *fernet_encrypt(settings_.keys[0], "<all/>\n");
  auto o = run("books", body(token));
  ASSERT_EQ(o.status, 201) << o.message;
  EXPECT_EQ(o.message, "File is decrypted and saved to " + dir_ + "/books.xml");
  EXPECT_EQ(o.bytes, 7U);
  std::ifstream in(dir_ + "/books.xml");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "<all/>\n");
  EXPECT_EQ(files_in_dir(), 1U);  // no temporary file left
  EXPECT_NE(o.json_body().find("\"status_code\":201"), std::string::npos);
}

TEST_F(UploadSessionTest, EveryFailureLeavesNothingBehind) {
  const auto token = *fernet_encrypt(settings_.keys[0], std::string(5000, 'x'));
  std::string tampered = token;
  tampered[token.size() / 2] = tampered[token.size() / 2] == 'A' ? 'B' : 'A';
  const FernetKey wrong = *parse_key_text("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=", "w")->begin();
  struct Case {
    std::string name, body;
    int status;
  };
  const std::vector<Case> cases = {
      {"t", body(tampered), 422},
      {"w", body(*fernet_encrypt(wrong, "x")), 422},
      {"e", body(""), 422},
      {"trunc", body(token).substr(0, 3000), 400},
      {"nofile", "--BB\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--BB--\r\n", 400},
      {"two", "--BB\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--BB\r\n"
              "Content-Disposition: form-data; name=\"file\"\r\n\r\ny\r\n--BB--\r\n", 400},
      {"../x", body(token), 400},
      {".hidden", body(token), 400},
  };
  for (const auto& c : cases) {
    auto o = run(c.name, c.body);
    EXPECT_EQ(o.status, c.status) << c.name << ": " << o.message;
    EXPECT_EQ(files_in_dir(), 0U) << c.name;
  }
}

TEST_F(UploadSessionTest, PrecheckRefusesBeforeTheBody) {
  auto h = head("big", 2 << 20);
  EXPECT_EQ(precheck_upload(h, settings_)->status, 413);
  h = head("ok", 10);
  h.content_type = "application/octet-stream";
  EXPECT_EQ(precheck_upload(h, settings_)->status, 415);
  h = head("ok", 10);
  h.chunked = true;
  EXPECT_EQ(precheck_upload(h, settings_)->status, 411);
  h = head("ok", 10);
  h.has_content_encoding = true;
  EXPECT_EQ(precheck_upload(h, settings_)->status, 415);
  EXPECT_FALSE(precheck_upload(head("ok", 10), settings_).has_value());
}

TEST_F(UploadSessionTest, BodyOverTheLimitIsRefusedWhileStreaming) {
  settings_.max_upload_bytes = 1000;
  const auto token = *fernet_encrypt(settings_.keys[0], std::string(5000, 'x'));
  const std::string b = body(token);
  UploadSession s(head("big", 10), settings_);  // a lying Content-Length
  bool ok = true;
  for (size_t i = 0; i < b.size() && ok; i += 100) ok = s.feed(b.data() + i, std::min<size_t>(100, b.size() - i));
  EXPECT_FALSE(ok);
  EXPECT_EQ(s.finish(0).status, 413);
  EXPECT_EQ(files_in_dir(), 0U);
}

}  // namespace
}  // namespace transfer::receiver
