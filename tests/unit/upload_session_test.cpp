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
    fs::create_directory(dir_ + "/out");
    ledger_.emplace(std::move(UploadLedger::open(dir_ + "/receiver.db").value()));
    dir_ += "/out";
    settings_.output_dir = dir_;
    settings_.keys = KeyRing::fixed(*parse_key_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "k"));
    settings_.max_upload_bytes = 1 << 20;
  }
  void TearDown() override { fs::remove_all(fs::path(dir_).parent_path()); }
  OutputCommitter& committer(ConflictPolicy policy = ConflictPolicy::kOverwrite) {
    committer_.emplace(dir_, policy, true, *ledger_);
    return *committer_;
  }

  UploadRequestHead head(const std::string& name, uint64_t length) {
    UploadRequestHead h;
    h.name = name;
    h.content_type = "multipart/form-data; boundary=BB";
    h.content_length = length;
    return h;
  }
  static std::string body(const std::string& token) {
    return "--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.xml.enc\"\r\n\r\n" +
           token + "\r\n--BB--\r\n";
  }
  UploadOutcome run(const std::string& name, const std::string& b, size_t chunk = 5,
                    std::optional<std::string> claimed_sha = std::nullopt) {
    auto h = head(name, b.size());
    h.claimed_sha256 = std::move(claimed_sha);
    if (auto refusal = precheck_upload(h, settings_)) return *refusal;
    UploadSession s(h, settings_);
    for (size_t i = 0; i < b.size(); i += chunk) {
      if (!s.feed(b.data() + i, std::min(chunk, b.size() - i))) break;
    }
    if (!committer_) committer();
    return s.finish(0, *committer_, "test");
  }
  UploadOutcome send(const std::string& name, const std::string& plaintext) {
    return run(name, body(*fernet_encrypt(settings_.keys->keys()->at(0), plaintext)), 4096);
  }
  std::string read(const std::string& file) const {
    std::ifstream in(dir_ + "/" + file);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  size_t files_in_dir() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }

  std::string dir_;
  UploadSettings settings_;
  std::optional<UploadLedger> ledger_;
  std::optional<OutputCommitter> committer_;
};

TEST_F(UploadSessionTest, WritesTheDecryptedFileAtomically) {
  const auto token = *fernet_encrypt(settings_.keys->keys()->at(0), "<all/>\n");
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
  const auto token = *fernet_encrypt(settings_.keys->keys()->at(0), std::string(5000, 'x'));
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
  const auto token = *fernet_encrypt(settings_.keys->keys()->at(0), std::string(5000, 'x'));
  const std::string b = body(token);
  UploadSession s(head("big", 10), settings_);  // a lying Content-Length
  bool ok = true;
  for (size_t i = 0; i < b.size() && ok; i += 100) ok = s.feed(b.data() + i, std::min<size_t>(100, b.size() - i));
  EXPECT_FALSE(ok);
  EXPECT_EQ(s.finish(0, committer(), "test").status, 413);
  EXPECT_EQ(files_in_dir(), 0U);
}

TEST_F(UploadSessionTest, ARetryIsAnsweredFromTheLedgerAndNothingIsRewritten) {
  auto first = send("books", "<all>1</all>");
  ASSERT_EQ(first.status, 201) << first.message;
  EXPECT_FALSE(first.duplicate);
  const auto mtime = fs::last_write_time(dir_ + "/books.xml");
  auto again = send("books", "<all>1</all>");
  ASSERT_EQ(again.status, 201) << again.message;
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.message, first.message);
  EXPECT_EQ(again.sha256, first.sha256);
  EXPECT_NE(again.json_body().find("\"duplicate\":true"), std::string::npos);
  EXPECT_EQ(fs::last_write_time(dir_ + "/books.xml"), mtime);
  EXPECT_EQ((*ledger_->find("books", first.sha256))->duplicates, 1);
  EXPECT_EQ(files_in_dir(), 1U);
}

TEST_F(UploadSessionTest, ConflictPolicies) {
  committer(ConflictPolicy::kOverwrite);
  ASSERT_EQ(send("a", "v1").status, 201);
  ASSERT_EQ(send("a", "v2").status, 201);
  EXPECT_EQ(read("a.xml"), "v2");
  auto back = send("a", "v1");  // the old content again is new content for this path
  EXPECT_FALSE(back.duplicate);
  EXPECT_EQ(read("a.xml"), "v1");

  committer(ConflictPolicy::kReject);
  ASSERT_EQ(send("b", "v1").status, 201);
  auto refused = send("b", "v2");
  EXPECT_EQ(refused.status, 409) << refused.message;
  EXPECT_EQ(read("b.xml"), "v1");
  EXPECT_TRUE(send("b", "v1").duplicate);

  committer(ConflictPolicy::kVersion);
  ASSERT_EQ(send("c", "v1").status, 201);
  auto v2 = send("c", "v2");
  auto v3 = send("c", "v3");
  EXPECT_EQ(v2.output_path, dir_ + "/c.1.xml");
  EXPECT_EQ(v3.output_path, dir_ + "/c.2.xml");
  EXPECT_EQ(read("c.xml") + read("c.1.xml") + read("c.2.xml"), "v1v2v3");
  auto dup = send("c", "v2");  // any version with this content answers a retry
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.output_path, dir_ + "/c.1.xml");
  EXPECT_EQ(files_in_dir(), 5U);  // a, b, c, c.1, c.2: no temporary file left
}

TEST_F(UploadSessionTest, AFileRenamedJustBeforeACrashIsRecognisedByItsContent) {
  // As if the receiver died between the rename and the ledger insert.
  { std::ofstream(dir_ + "/d.xml") << "v1"; }
  { std::ofstream(dir_ + "/e.xml") << "v1"; }
  committer(ConflictPolicy::kReject);
  auto retry = send("d", "v1");
  EXPECT_EQ(retry.status, 201) << retry.message;
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(send("d", "v2").status, 409);
  committer(ConflictPolicy::kVersion);
  auto vretry = send("e", "v1");
  EXPECT_TRUE(vretry.duplicate);
  EXPECT_FALSE(fs::exists(dir_ + "/e.1.xml"));
}

TEST_F(UploadSessionTest, APlaintextDigestThatDoesNotMatchIsRefused) {
  const std::string b = body(*fernet_encrypt(settings_.keys->keys()->at(0), "abc"));
  auto o = run("f", b, 4096, std::string(64, '0'));
  EXPECT_EQ(o.status, 422) << o.message;
  auto bad_header = run("f", b, 4096, std::string("not-hex"));
  EXPECT_EQ(bad_header.status, 400);
  EXPECT_EQ(files_in_dir(), 0U);
  auto good = run("f", b, 4096, std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_EQ(good.status, 201) << good.message;
}

}  // namespace
}  // namespace transfer::receiver

namespace transfer::receiver {
namespace {

// Several keys loaded: one temporary file per upload (ciphertext, then decrypted in place), not
// one per key; the key that signed the request (only_key) is the only one tried.
TEST_F(UploadSessionTest, SeveralKeysShareOneTemporaryFile) {
  settings_.keys = KeyRing::fixed(*parse_key_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                                                  "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=\n"
                                                  "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n", "k"));
  const std::string plaintext = "<all>" + std::string(200000, 'y') + "</all>";
  const std::string b = body(*fernet_encrypt(settings_.keys->keys()->at(2), plaintext));
  committer();
  UploadSession s(head("rotated", b.size()), settings_);
  size_t most_files = 0;
  for (size_t i = 0; i < b.size(); i += 4096) {
    ASSERT_TRUE(s.feed(b.data() + i, std::min<size_t>(4096, b.size() - i)));
    most_files = std::max(most_files, files_in_dir());
  }
  EXPECT_EQ(most_files, 1u) << "one temporary file, whatever the number of keys";
  const auto outcome = s.finish(0, *committer_, "test");
  ASSERT_EQ(outcome.status, 201) << outcome.message;
  EXPECT_EQ(outcome.key_index, 2u);
  EXPECT_EQ(read("rotated.xml"), plaintext);
  EXPECT_EQ(outcome.bytes, plaintext.size());

  // The request was signed with key 1, but the token is for key 2: refused.
  UploadSession only(head("signed", b.size()), settings_, 1);
  for (size_t i = 0; i < b.size(); i += 4096) only.feed(b.data() + i, std::min<size_t>(4096, b.size() - i));
  EXPECT_EQ(only.finish(0, *committer_, "test").status, 422);
  UploadSession right(head("signed", b.size()), settings_, 2);
  for (size_t i = 0; i < b.size(); i += 4096) right.feed(b.data() + i, std::min<size_t>(4096, b.size() - i));
  EXPECT_EQ(right.finish(0, *committer_, "test").status, 201);
  EXPECT_EQ(read("signed.xml"), plaintext);
}

}  // namespace
}  // namespace transfer::receiver
