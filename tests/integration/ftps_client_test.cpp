// The FTPS client against a real vsftpd (tests/support/servers/vsftpd.sh: explicit TLS required,
// a virtual user chrooted to DIR/root, files in /upload); and the plain-FTP mode against a vsftpd
// without TLS. A missing vsftpd fails the tests. FtpsClientTest uses the server
// TRANSFER_FTPS_SERVER_DIR names when set (shared with concurrent test processes), else starts
// its own; the suites that stop or restart their server, or need it set up otherwise, always
// start their own. Every test delivers into a directory of its own (test::TestArea) in /upload.

#include "ftps_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "file_server_fixture.hpp"

namespace transfer::sender {
namespace {

using test::GeneratedBytes;
using test::list_dir;
using test::poll_until;
using test::ScriptedServer;

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen());
  return out;
}

std::vector<std::string> temporaries_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& name : list_dir(dir)) {
    if (is_temporary_name(name)) out.push_back(name);
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class FtpsServerTest : public ::testing::Test {
 protected:
  static void start_own_server(const std::vector<std::string>& args) {
    server_ = std::make_unique<ScriptedServer>("vsftpd.sh", "transfer-vsftpd-");
    started_ = server_->start(args);
  }
  static void SetUpTestSuite() { start_own_server({}); }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    ASSERT_TRUE(started_);
    if (!server_->running()) {
      ASSERT_TRUE(server_->start());
    }
    // The login writes as Debian's "ftp" user (vsftpd.sh: guest_username).
    area_ = std::make_unique<test::TestArea>(server_->path("root/upload"), "ftp");
  }
  void TearDown() override { area_.reset(); }

  // The server's disk, where remote_dir() of the chrooted login lands.
  std::string upload_dir() const { return area_->path(); }
  std::string remote_dir() const { return "/upload/" + area_->name(); }
  FtpsSettings settings() const {
    FtpsSettings s;
    s.host = "127.0.0.1";
    s.port = server_->port();
    s.user = "transfer";
    s.password = server_->read("password");
    while (!s.password.empty() && s.password.back() == '\n') s.password.pop_back();
    s.remote_dir = remote_dir();
    s.ca_file = server_->path("ca.pem");
    s.connect_timeout_s = 5;
    s.io_timeout_s = 20;
    return s;
  }

  static std::unique_ptr<ScriptedServer> server_;
  static ::testing::AssertionResult started_;
  std::unique_ptr<test::TestArea> area_;
  std::atomic<bool> cancel_{false};
};

std::unique_ptr<ScriptedServer> FtpsServerTest::server_;
::testing::AssertionResult FtpsServerTest::started_ = ::testing::AssertionFailure();

// The tests that leave the server as they found it: the run's shared server, if there is one.
class FtpsClientTest : public FtpsServerTest {
 protected:
  static void SetUpTestSuite() {
    server_ = ScriptedServer::shared_or_own("vsftpd.sh", "transfer-vsftpd-",
                                            "TRANSFER_FTPS_SERVER_DIR", started_);
  }
};

// The tests that stop, kill or restart the server: always their own.
class FtpsClientOwnServerTest : public FtpsServerTest {};

TEST_F(FtpsClientTest, StoresBytesIdenticalUnderTheFinalNameOnly) {
  FtpsClient client(settings(), cancel_);
  const std::vector<size_t> sizes = {0, 1, 65535, 65536, 65537, (3u << 20) + 13};
  for (const size_t size : sizes) {
    const std::string name = "file " + std::to_string(size) + ".xml";  // a space: URL-encoded
    const std::string content = random_bytes(size, static_cast<unsigned>(size));
    MemoryBytes bytes(content);
    const SendOutcome out = client.put(name, bytes);
    ASSERT_EQ(out.fault, SendFault::kNone) << size << ": " << out.error;
    EXPECT_EQ(out.bytes_sent, size);
    EXPECT_EQ(out.location, "ftps://transfer@127.0.0.1:" + std::to_string(server_->port()) +
                                remote_dir() + "/" + name);
    EXPECT_TRUE(test::read_file(upload_dir() + "/" + name) == content) << size;
    EXPECT_EQ(temporaries_in(upload_dir()), std::vector<std::string>{}) << size;
  }
  const FtpsStats stats = client.stats();
  EXPECT_EQ(stats.connects, 1u);  // one control connection for every request of every put
  EXPECT_EQ(stats.puts, sizes.size());
  // vsftpd's log: TLS before the login, each upload under a temporary name, then renamed.
  const std::string log = server_->read("vsftpd.log");
  EXPECT_NE(log.find("\"AUTH TLS\""), std::string::npos);
  EXPECT_NE(log.find("\"PROT P\""), std::string::npos);
  for (const size_t size : sizes) {
    const std::string name = "file " + std::to_string(size) + ".xml";
    EXPECT_NE(log.find(".part " + remote_dir() + "/" + name + "\"\n"), std::string::npos)
        << "no OK RENAME of a temporary file to " << name;
  }
  EXPECT_EQ(log.find("OK UPLOAD: Client \"127.0.0.1\", \"" + remote_dir() + "/file"),
            std::string::npos)
      << "an upload went to a final name directly";
}

TEST_F(FtpsClientTest, OverwriteReplacesAnExistingFileWithOneRename) {
  auto s = settings();
  s.on_conflict = OnConflict::kOverwrite;
  FtpsClient client(s, cancel_);
  test::write_file(upload_dir() + "/same.xml", "the old content");
  MemoryBytes bytes("the new content, longer than the old");
  const SendOutcome out = client.put("same.xml", bytes);
  ASSERT_EQ(out.fault, SendFault::kNone) << out.error;
  EXPECT_EQ(test::read_file(upload_dir() + "/same.xml"), "the new content, longer than the old");
  EXPECT_EQ(client.stats().replaced, 0u);  // vsftpd's RNTO replaced it (rename(2)): no DELE
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"same.xml"});
}

TEST_F(FtpsClientTest, FailLeavesAnExistingFileAndGivesUpOnTheFile) {
  FtpsClient client(settings(), cancel_);
  test::write_file(upload_dir() + "/same.xml", "the old content");
  MemoryBytes bytes("the new content");
  const SendOutcome out = client.put("same.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kPermanent) << out.error;
  EXPECT_NE(out.error.find(remote_dir() + "/same.xml exists"), std::string::npos) << out.error;
  EXPECT_EQ(out.bytes_sent, 0u);
  EXPECT_EQ(test::read_file(upload_dir() + "/same.xml"), "the old content");
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"same.xml"});
}

TEST_F(FtpsClientTest, RefusalsOfTheDestinationAreDestinationFaults) {
  struct Case {
    std::string what;
    FtpsSettings settings;
    std::string says;
  };
  std::vector<Case> cases;
  {
    auto s = settings();
    s.ca_file = server_->path("untrusted-ca.pem");
    cases.push_back({"a certificate ca_file did not sign", s, "certificate"});
  }
  {
    auto s = settings();
    s.ca_file = server_->path("no-such-ca.pem");
    cases.push_back({"a ca_file that is missing", s, "no-such-ca.pem"});
  }
  {
    auto s = settings();
    s.password = "wrong";
    cases.push_back({"a wrong password", s, "530 Login incorrect."});
  }
  {
    auto s = settings();
    s.remote_dir = "/missing";
    cases.push_back({"a remote_dir that is missing", s, "550 Failed to change directory."});
  }
  {
    auto s = settings();
    s.tls = false;
    cases.push_back({"plain FTP to a server that requires TLS", s,
                     "530 Non-anonymous sessions must use encryption."});
  }
  for (const auto& c : cases) {
    FtpsClient client(c.settings, cancel_);
    MemoryBytes bytes("<a/>");
    const SendOutcome out = client.put("a.xml", bytes);
    EXPECT_EQ(out.fault, SendFault::kDestination) << c.what << ": " << out.error;
    EXPECT_NE(out.error.find(c.says), std::string::npos) << c.what << ": " << out.error;
    EXPECT_EQ(out.error.find(settings().password), std::string::npos) << c.what;
    const ProbeOutcome probe = client.probe();
    EXPECT_EQ(probe.fault, SendFault::kDestination) << c.what << ": " << probe.error;
    EXPECT_NE(probe.error.find(c.says), std::string::npos) << c.what << ": " << probe.error;
  }
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{});
}

TEST_F(FtpsClientTest, TheCertificateNamesTheHost) {
  auto s = settings();
  s.host = "localhost";  // in the certificate as a DNS name, as 127.0.0.1 is as an address
  FtpsClient client(s, cancel_);
  EXPECT_EQ(client.probe().fault, SendFault::kNone);
}

TEST_F(FtpsClientTest, ProbeLogsInAndChangesToTheDirectory) {
  FtpsClient client(settings(), cancel_);
  const ProbeOutcome probe = client.probe();
  EXPECT_EQ(probe.fault, SendFault::kNone) << probe.error;
  MemoryBytes bytes("<a/>");
  EXPECT_EQ(client.put("a.xml", bytes).fault, SendFault::kNone);
  EXPECT_EQ(client.stats().connects, 1u);
}

TEST_F(FtpsClientTest, NothingListeningIsUnreachable) {
  auto s = settings();
  s.port = test::closed_tcp_port();
  FtpsClient client(s, cancel_);
  MemoryBytes bytes("<a/>");
  const SendOutcome out = client.put("a.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kUnreachable) << out.error;
  EXPECT_EQ(client.probe().fault, SendFault::kUnreachable);
}

TEST_F(FtpsClientTest, AServerThatSaysNothingTimesOut) {
  test::SilentListener silent;
  auto s = settings();
  s.port = silent.port();
  s.io_timeout_s = 1;
  FtpsClient client(s, cancel_);
  const auto began = std::chrono::steady_clock::now();
  const ProbeOutcome probe = client.probe();
  EXPECT_EQ(probe.fault, SendFault::kUnreachable) << probe.error;  // not one reply
  EXPECT_LT(seconds_since(began), 10.0);
}

TEST_F(FtpsClientTest, NamesThatCannotBeStoredArePermanent) {
  FtpsClient client(settings(), cancel_);
  for (const std::string name : {"", "a/b.xml", "..", "a\r\nDELE b.xml"}) {
    MemoryBytes bytes("<a/>");
    const SendOutcome out = client.put(name, bytes);
    EXPECT_EQ(out.fault, SendFault::kPermanent) << name << ": " << out.error;
  }
  EXPECT_EQ(client.stats().connects, 0u);
}

TEST_F(FtpsClientOwnServerTest, ServerKilledMidTransferLeavesNoFinalFileAndTheNextPutCleansUp) {
  FtpsClient client(settings(), cancel_);
  GeneratedBytes big(256ull << 20, 4ull << 20);
  std::thread killer([&] {
    if (poll_until([&] { return big.reached(); }, 60)) server_->kill();
    big.release();
  });
  const SendOutcome out = client.put("big.xml", big);
  killer.join();
  EXPECT_TRUE(out.fault == SendFault::kTransient || out.fault == SendFault::kUnreachable)
      << send_fault_name(out.fault) << ": " << out.error;
  EXPECT_LT(out.bytes_sent, 256ull << 20);
  EXPECT_EQ(temporaries_in(upload_dir()).size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(upload_dir() + "/big.xml"));

  ASSERT_TRUE(server_->start());
  GeneratedBytes small(100000);
  const SendOutcome again = client.put("big.xml", small);
  ASSERT_EQ(again.fault, SendFault::kNone) << again.error;
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"big.xml"});
  EXPECT_EQ(std::filesystem::file_size(upload_dir() + "/big.xml"), 100000u);
  EXPECT_EQ(client.stats().temporaries_removed, 1u);
}

TEST_F(FtpsClientTest, AbortEndsAPutInProgress) {
  FtpsClient client(settings(), cancel_);
  GeneratedBytes big(256ull << 20, 1ull << 20);
  std::thread aborter([&] {
    if (poll_until([&] { return big.reached(); }, 60)) client.abort();
    big.release();
  });
  const auto began = std::chrono::steady_clock::now();
  const SendOutcome out = client.put("big.xml", big);
  aborter.join();
  EXPECT_EQ(out.fault, SendFault::kTransient) << out.error;
  EXPECT_NE(out.error.find("aborted"), std::string::npos) << out.error;
  EXPECT_LT(seconds_since(began), 30.0);
  EXPECT_FALSE(std::filesystem::exists(upload_dir() + "/big.xml"));
  MemoryBytes bytes("<a/>");
  const SendOutcome next = client.put("a.xml", bytes);
  ASSERT_EQ(next.fault, SendFault::kNone) << next.error;
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"a.xml"});
}

TEST_F(FtpsClientTest, CancelledBeforeAPutSendsNothing) {
  FtpsClient client(settings(), cancel_);
  cancel_.store(true);
  MemoryBytes bytes("<a/>");
  const SendOutcome out = client.put("a.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kTransient) << out.error;
  EXPECT_NE(out.error.find("cancelled"), std::string::npos) << out.error;
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{});
}

TEST_F(FtpsClientOwnServerTest, AConnectionTheServerClosedIsReplaced) {
  FtpsClient client(settings(), cancel_);
  MemoryBytes bytes("<a/>");
  ASSERT_EQ(client.put("a.xml", bytes).fault, SendFault::kNone);
  server_->stop();
  ASSERT_TRUE(server_->start());
  const SendOutcome out = client.put("b.xml", bytes);
  ASSERT_EQ(out.fault, SendFault::kNone) << out.error;
  EXPECT_EQ(list_dir(upload_dir()), (std::vector<std::string>{"a.xml", "b.xml"}));
}

// vsftpd without TLS: plain FTP only when the destination says "tls": false.
class PlainFtpServerTest : public FtpsServerTest {
 protected:
  static void SetUpTestSuite() { start_own_server({"--plain"}); }
};

TEST_F(PlainFtpServerTest, StoresWithTlsOff) {
  auto s = settings();
  s.tls = false;
  FtpsClient client(s, cancel_);
  MemoryBytes bytes("<a/>");
  const SendOutcome out = client.put("a.xml", bytes);
  ASSERT_EQ(out.fault, SendFault::kNone) << out.error;
  EXPECT_EQ(out.location, "ftp://transfer@127.0.0.1:" + std::to_string(server_->port()) +
                              remote_dir() + "/a.xml");
  EXPECT_EQ(test::read_file(upload_dir() + "/a.xml"), "<a/>");
}

TEST_F(PlainFtpServerTest, RefusesAServerWithoutTlsWhenTlsIsOn) {
  FtpsClient client(settings(), cancel_);
  MemoryBytes bytes("<a/>");
  const SendOutcome out = client.put("a.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kDestination) << out.error;
  EXPECT_NE(out.error.find("AUTH"), std::string::npos) << out.error;
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{});
}

}  // namespace
}  // namespace transfer::sender
