// The S3 client against a real S3 server: radosgw over a one-node in-memory Ceph
// (tests/support/radosgw_fixture.hpp). What landed is checked with the curl program, not with the
// client under test. Missing radosgw fails the tests rather than skipping them.
#include "s3_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "radosgw_fixture.hpp"
#include "transfer/sha256.hpp"

namespace transfer::sender {
namespace {

using test::RadosgwServer;

constexpr uint64_t kMiB = 1024 * 1024;

std::string sha256_hex(std::string_view data) {
  Sha256 sha;
  sha.update(data);
  return sha.hex_digest();
}

// Deterministic bytes that do not compress and differ per seed.
std::string pseudo_random_bytes(size_t size, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 4) {
    const uint32_t v = gen();
    for (size_t j = 0; j < 4 && i + j < size; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

// As the server writes text in its XML listings.
std::string xml_escaped(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A unique key part per test and call, so that tests sharing one server never meet.
std::string unique_name(const std::string& stem) {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->name()) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++) + "-" + stem;
}

// StoredBytes that calls `hook` once, when reading passes `at` bytes in read pass `pass` (pass 1
// follows the first rewind: a single PUT reads once for its digests, then again as the body).
class HookedBytes : public StoredBytes {
 public:
  HookedBytes(std::string bytes, int pass, uint64_t at, std::function<void()> hook)
      : inner_(std::move(bytes)), pass_(pass), at_(at), hook_(std::move(hook)) {}
  uint64_t size() const override { return inner_.size(); }
  Result<size_t> read(char* buf, size_t cap) override {
    auto n = inner_.read(buf, cap);
    if (n) pos_ += *n;
    if (!fired_ && rewinds_ == pass_ && pos_ >= at_) {
      fired_ = true;
      hook_();
    }
    return n;
  }
  Status rewind() override {
    pos_ = 0;
    ++rewinds_;
    return inner_.rewind();
  }

 private:
  MemoryBytes inner_;
  int pass_;
  uint64_t at_;
  std::function<void()> hook_;
  uint64_t pos_ = 0;
  int rewinds_ = 0;
  bool fired_ = false;
};

class S3ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new RadosgwServer();  // NOLINT(cppcoreguidelines-owning-memory): per suite
    const auto started = server_->start_or_attach();
    if (!started) {
      delete server_;
      server_ = nullptr;
      FAIL() << started.message();
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "no S3 server"; }

  static S3Settings settings(const std::string& prefix = "it") {
    S3Settings s;
    s.endpoint = server_->endpoint();
    s.region = server_->region();
    s.bucket = server_->bucket();
    s.prefix = prefix;
    s.path_style = true;
    s.access_key = server_->access_key();
    s.secret_key = server_->secret_key();
    s.part_size = 5 * kMiB;
    s.connect_timeout_s = 5;
    s.io_timeout_s = 20;
    return s;
  }

  // The object as the curl program GETs it.
  static test::CurlAnswer get(const S3Client& client, const std::string& key) {
    return server_->curl("GET", "/" + client.settings().bucket + "/" + s3_encode_key(key));
  }

  static RadosgwServer* server_;
  std::atomic<bool> cancel_{false};
};

RadosgwServer* S3ClientTest::server_ = nullptr;

TEST_F(S3ClientTest, SinglePutStoresTheBytesAndTheirDigest) {
  const std::string dir = ::testing::TempDir();
  struct Case {
    std::string what;
    size_t size;
    bool from_file;
  };
  for (const auto& c : std::vector<Case>{{"empty", 0, false},
                                         {"small xml in memory", 2000, false},
                                         {"3 MiB spooled (Expect: 100-continue)", 3 * kMiB, true},
                                         {"at the threshold", 16 * kMiB, true}}) {
    SCOPED_TRACE(c.what);
    const std::string bytes = pseudo_random_bytes(c.size, static_cast<uint32_t>(c.size));
    const std::string sha = sha256_hex(bytes);
    S3Client client(settings(), cancel_);
    const std::string name = unique_name("a.xml");
    SendOutcome outcome;
    if (c.from_file) {
      const std::string path = dir + "/" + name;
      std::ofstream(path, std::ios::binary) << bytes;
      auto file = FileBytes::open(path, bytes.size());
      ASSERT_TRUE(file) << file.error().message;
      outcome = client.put(name, *file, {{"sha256", sha}});
      std::remove(path.c_str());
    } else {
      MemoryBytes memory(bytes);
      outcome = client.put(name, memory, {{"sha256", sha}});
    }
    ASSERT_EQ(outcome.fault, SendFault::kNone) << outcome.error;
    EXPECT_EQ(outcome.parts, 0);
    EXPECT_EQ(outcome.bytes_sent, c.size);
    EXPECT_EQ(outcome.location, "s3://" + server_->bucket() + "/it/" + name);

    const test::CurlAnswer got = get(client, "it/" + name);
    EXPECT_EQ(got.status, 200);
    EXPECT_TRUE(got.body == bytes) << "the object differs from what was put";
    auto head = client.head_object("it/" + name);
    ASSERT_TRUE(head) << head.error().message;
    EXPECT_EQ(head->size, c.size);
    EXPECT_EQ(head->metadata["sha256"], sha);
    EXPECT_EQ(head->etag.find('-'), std::string::npos) << head->etag;  // a plain MD5
  }
}

TEST_F(S3ClientTest, KeysAreEncodedAsTheServerStoresThem) {
  for (const std::string stem :
       {"a b+c=d.xml", "caf\xc3\xa9 \xe2\x82\xac.xml", "sub/dir/x~y.xml", "odd!$'()*,;:@.xml"}) {
    SCOPED_TRACE(stem);
    S3Client client(settings("it/keys/"), cancel_);
    const std::string name = unique_name(stem);
    MemoryBytes bytes("<x>" + stem + "</x>");
    const SendOutcome outcome = client.put(name, bytes, {});
    ASSERT_EQ(outcome.fault, SendFault::kNone) << outcome.error;
    // The server's own listing holds the key as we meant it.
    const test::CurlAnswer listed = server_->curl(
        "GET", "/" + server_->bucket() + "?prefix=" + s3_encode_query_component("it/keys/" + name));
    EXPECT_EQ(listed.status, 200);
    EXPECT_NE(listed.body.find("<Key>" + xml_escaped("it/keys/" + name) + "</Key>"),
              std::string::npos)
        << listed.body;
  }
}

TEST_F(S3ClientTest, MultipartUploadAboveTheThreshold) {
  const std::string bytes = pseudo_random_bytes(40 * kMiB, 40);
  const std::string path = ::testing::TempDir() + "/" + unique_name("big");
  std::ofstream(path, std::ios::binary) << bytes;
  auto file = FileBytes::open(path, bytes.size());
  ASSERT_TRUE(file) << file.error().message;
  S3Client client(settings(), cancel_);
  const std::string name = unique_name("big.xml");
  const SendOutcome outcome = client.put(name, *file, {{"sha256", sha256_hex(bytes)}});
  std::remove(path.c_str());
  ASSERT_EQ(outcome.fault, SendFault::kNone) << outcome.error;
  EXPECT_EQ(outcome.parts, 8);
  EXPECT_EQ(outcome.bytes_sent, bytes.size());

  auto head = client.head_object("it/" + name);
  ASSERT_TRUE(head) << head.error().message;
  EXPECT_EQ(head->size, bytes.size());
  EXPECT_EQ(head->etag.substr(head->etag.size() - 2), "-8") << head->etag;
  EXPECT_EQ(head->metadata["sha256"], sha256_hex(bytes));
  const test::CurlAnswer got = get(client, "it/" + name);
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(sha256_hex(got.body), sha256_hex(bytes));
  auto left = client.list_multipart_uploads("it/" + name);
  ASSERT_TRUE(left) << left.error().message;
  EXPECT_TRUE(left->empty());
}

TEST_F(S3ClientTest, RefusedCredentialsAndMissingBucketAreDestinationFaults) {
  struct Case {
    std::string what;
    std::function<void(S3Settings&)> change;
    size_t size;
    std::string code;
  };
  for (const auto& c : std::vector<Case>{
           {"wrong secret, single PUT", [](S3Settings& s) { s.secret_key += "x"; }, 1000,
            "SignatureDoesNotMatch"},
           {"wrong secret, multipart", [](S3Settings& s) { s.secret_key += "x"; }, 17 * kMiB,
            "SignatureDoesNotMatch"},
           {"unknown access key", [](S3Settings& s) { s.access_key = "NOSUCHKEY0000"; }, 1000,
            "InvalidAccessKeyId"},
           {"missing bucket", [](S3Settings& s) { s.bucket = "no-such-bucket"; }, 1000,
            "NoSuchBucket"},
       }) {
    SCOPED_TRACE(c.what);
    S3Settings s = settings();
    c.change(s);
    S3Client client(s, cancel_);
    const std::string name = unique_name("refused.xml");
    MemoryBytes bytes(pseudo_random_bytes(c.size, 7));
    const SendOutcome outcome = client.put(name, bytes, {{"sha256", "00"}});
    EXPECT_EQ(outcome.fault, SendFault::kDestination) << outcome.error;
    EXPECT_NE(outcome.error.find(c.code), std::string::npos) << outcome.error;
    EXPECT_EQ(outcome.error.find(settings().secret_key), std::string::npos) << outcome.error;
    // Nothing was stored.
    EXPECT_EQ(server_->curl("HEAD", "/" + server_->bucket() + "/it/" + s3_encode_key(name)).status,
              404);
  }
}

TEST_F(S3ClientTest, ProbeHeadsTheBucket) {
  struct Case {
    std::string what;
    std::function<void(S3Settings&)> change;
    SendFault fault;
    std::string code;
  };
  for (const auto& c : std::vector<Case>{
           {"ok", [](S3Settings&) {}, SendFault::kNone, ""},
           {"wrong secret", [](S3Settings& s) { s.secret_key += "x"; }, SendFault::kDestination,
            "SignatureDoesNotMatch"},
           {"missing bucket", [](S3Settings& s) { s.bucket = "no-such-bucket"; },
            SendFault::kDestination, "NoSuchBucket"},
           {"nothing listens", [](S3Settings& s) { s.endpoint = "http://127.0.0.1:9"; },
            SendFault::kUnreachable, "connect"},
       }) {
    SCOPED_TRACE(c.what);
    S3Settings s = settings();
    c.change(s);
    S3Client client(s, cancel_);
    const ProbeOutcome outcome = client.probe();
    EXPECT_EQ(outcome.fault, c.fault) << outcome.error;
    EXPECT_NE(outcome.error.find(c.code), std::string::npos) << outcome.error;
  }
}

TEST_F(S3ClientTest, IncompleteUploadsUnderThePrefixAreAborted) {
  const std::string mine = "it/" + unique_name("orphans") + "/";
  const std::string other = "it/" + unique_name("others") + "/";
  for (const std::string& key : {mine + "a.xml", mine + "b.xml", other + "c.xml"}) {
    const test::CurlAnswer made =
        server_->curl("POST", "/" + server_->bucket() + "/" + s3_encode_key(key) + "?uploads=");
    ASSERT_EQ(made.status, 200) << made.body;
  }
  S3Client client(settings(), cancel_);
  auto listed = client.list_multipart_uploads(mine);
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_EQ(listed->size(), 2U);
  auto aborted = client.abort_incomplete_uploads(mine);
  ASSERT_TRUE(aborted) << aborted.error().message;
  EXPECT_EQ(*aborted, 2U);
  listed = client.list_multipart_uploads(mine);
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_TRUE(listed->empty());
  listed = client.list_multipart_uploads(other);  // another prefix: left alone
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_EQ(listed->size(), 1U);
  EXPECT_EQ(*client.abort_incomplete_uploads(other), 1U);
}

TEST_F(S3ClientTest, CancelledUploadsEndAndAreAbortedOnTheServer) {
  struct Case {
    std::string what;
    bool from_another_thread;  // abort() while the upload waits in a read; else the cancel flag
    size_t size;               // above 16 MiB: multipart
    int pass;
    uint64_t at;
  };
  for (const auto& c : std::vector<Case>{
           {"cancel flag, multipart, while reading part 2", false, 20 * kMiB, 1, 6 * kMiB},
           {"abort(), multipart, while reading part 2", true, 20 * kMiB, 1, 6 * kMiB},
           {"abort(), single PUT, mid-body", true, 12 * kMiB, 2, 6 * kMiB},
       }) {
    SCOPED_TRACE(c.what);
    const std::string prefix = "it/" + unique_name("cancel") + "/";
    std::atomic<bool> cancel{false};
    S3Client client(settings(prefix), cancel);
    std::promise<void> reached;
    std::promise<void> go_on;
    HookedBytes bytes(pseudo_random_bytes(c.size, 3), c.pass, c.at, [&] {
      if (c.from_another_thread) {
        reached.set_value();
        go_on.get_future().wait();  // the upload goes on once abort() was called
      } else {
        cancel = true;
      }
    });
    SendOutcome outcome;
    if (c.from_another_thread) {
      std::thread uploader([&] { outcome = client.put("c.xml", bytes, {}); });
      const bool under_way =
          reached.get_future().wait_for(std::chrono::seconds(60)) == std::future_status::ready;
      client.abort();
      go_on.set_value();
      uploader.join();
      ASSERT_TRUE(under_way);
    } else {
      outcome = client.put("c.xml", bytes, {});
    }
    EXPECT_EQ(outcome.fault, SendFault::kTransient) << outcome.error;
    EXPECT_EQ(outcome.error.rfind("cancelled", 0), 0U) << outcome.error;
    if (c.size > 16 * kMiB) {
      EXPECT_NE(outcome.error.find("the upload was aborted"), std::string::npos) << outcome.error;
    }
    cancel = false;
    auto left = client.list_multipart_uploads(prefix);
    ASSERT_TRUE(left) << left.error().message;
    EXPECT_TRUE(left->empty());
    EXPECT_EQ(server_->curl("HEAD", "/" + server_->bucket() + "/" + prefix + "c.xml").status, 404);
    // The client works again after an abort().
    MemoryBytes small("<x/>");
    const SendOutcome after = client.put("after.xml", small, {});
    EXPECT_EQ(after.fault, SendFault::kNone) << after.error;
  }
}

// Kills radosgw, so it has a server of its own (a shared one would fail the other tests).
TEST(S3ClientServerGone, KilledMidUploadThenOrphansAreAbortedAtRestart) {
  RadosgwServer server;
  ASSERT_TRUE(server.start());
  std::cout << "radosgw started in " << server.start_seconds() << " s\n";
  struct Case {
    std::string what;
    size_t size;
    int pass;  // see HookedBytes
    uint64_t kill_at;
    bool leaves_orphan;
  };
  for (const auto& c : std::vector<Case>{
           {"single PUT, mid-body", 12 * kMiB, 2, 6 * kMiB, false},
           {"multipart, before part 3", 20 * kMiB, 1, 10 * kMiB + 1, true},
       }) {
    SCOPED_TRACE(c.what);
    std::atomic<bool> cancel{false};
    S3Settings s;
    s.endpoint = server.endpoint();
    s.region = server.region();
    s.bucket = server.bucket();
    s.prefix = "gone/";
    s.path_style = true;
    s.access_key = server.access_key();
    s.secret_key = server.secret_key();
    s.part_size = 5 * kMiB;
    s.connect_timeout_s = 5;
    s.io_timeout_s = 20;
    S3Client client(s, cancel);
    HookedBytes bytes(pseudo_random_bytes(c.size, 9), c.pass, c.kill_at,
                      [&] { ASSERT_TRUE(server.kill_rgw()); });
    const SendOutcome outcome = client.put("k.xml", bytes, {});
    EXPECT_TRUE(outcome.fault == SendFault::kUnreachable || outcome.fault == SendFault::kTransient)
        << send_fault_name(outcome.fault) << ": " << outcome.error;
    if (c.leaves_orphan) {
      EXPECT_NE(outcome.error.find("aborting the upload failed too"), std::string::npos)
          << outcome.error;
    }
    ASSERT_TRUE(server.restart_rgw());
    auto listed = client.list_multipart_uploads("gone/");
    ASSERT_TRUE(listed) << listed.error().message;
    EXPECT_EQ(listed->size(), c.leaves_orphan ? 1U : 0U);
    auto aborted = client.abort_incomplete_uploads("gone/");
    ASSERT_TRUE(aborted) << aborted.error().message;
    EXPECT_EQ(*aborted, c.leaves_orphan ? 1U : 0U);
    const test::CurlAnswer left = server.curl("GET", "/" + server.bucket() + "?uploads=");
    EXPECT_EQ(left.status, 200);
    EXPECT_EQ(left.body.find("<Upload>"), std::string::npos) << left.body;
    // Nothing half-stored either.
    EXPECT_EQ(server.curl("HEAD", "/" + server.bucket() + "/gone/k.xml").status, 404);
  }
}

}  // namespace
}  // namespace transfer::sender
