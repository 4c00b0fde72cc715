// The SFTP client against a real OpenSSH server (tests/support/servers/sshd.sh: Debian's sshd and
// sftp-server on a free loopback port, key-only root login). A missing sshd fails the tests
// rather than skipping them. SftpClientTest uses the server TRANSFER_SFTP_SERVER_DIR names when
// set (shared with concurrent test processes), else starts its own; the suites that stop, kill
// or restart their server, or need it set up otherwise, always start their own. Every test
// delivers into a directory of its own (test::TestArea) in the server's upload directory.

#include "sftp_client.hpp"

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

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One server for the suite; each test delivers into an empty directory of its own.
class SftpServerTest : public ::testing::Test {
 protected:
  static void start_own_server(const std::vector<std::string>& args) {
    server_ = std::make_unique<ScriptedServer>("sshd.sh", "transfer-sshd-");
    started_ = server_->start(args);
  }
  static void SetUpTestSuite() { start_own_server({}); }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    ASSERT_TRUE(started_);
    if (!server_->running()) {
      ASSERT_TRUE(server_->start());  // a test that killed it
    }
    area_ = std::make_unique<test::TestArea>(server_->path("upload"), "");
  }
  void TearDown() override { area_.reset(); }

  std::string upload_dir() const { return area_->path(); }
  SftpSettings settings() const {
    SftpSettings s;
    s.host = "127.0.0.1";
    s.port = server_->port();
    s.user = "root";
    s.private_key_file = server_->path("client_key");
    s.known_hosts_file = server_->path("known_hosts");
    s.remote_dir = upload_dir();
    s.connect_timeout_s = 5;
    s.io_timeout_s = 20;
    return s;
  }
  static std::string fingerprint() {
    std::string fp = server_->read("host_key_sha256");
    while (!fp.empty() && (fp.back() == '\n' || fp.back() == '\r')) fp.pop_back();
    return fp;
  }

  static std::unique_ptr<ScriptedServer> server_;
  static ::testing::AssertionResult started_;
  std::unique_ptr<test::TestArea> area_;
  std::atomic<bool> cancel_{false};
};

std::unique_ptr<ScriptedServer> SftpServerTest::server_;
::testing::AssertionResult SftpServerTest::started_ = ::testing::AssertionFailure();

// The tests that leave the server as they found it: the run's shared server, if there is one.
class SftpClientTest : public SftpServerTest {
 protected:
  static void SetUpTestSuite() {
    server_ = ScriptedServer::shared_or_own("sshd.sh", "transfer-sshd-", "TRANSFER_SFTP_SERVER_DIR",
                                            started_);
  }
};

// The tests that stop, kill or restart the server: always their own.
class SftpClientOwnServerTest : public SftpServerTest {};

TEST_F(SftpClientTest, StoresBytesIdenticalUnderTheFinalNameOnly) {
  SftpClient client(settings(), cancel_);
  const std::vector<size_t> sizes = {0, 1, 32767, 32768, 65536, 65537, (1u << 20) + 13};
  for (const size_t size : sizes) {
    const std::string name = "file-" + std::to_string(size) + ".xml";
    const std::string content = random_bytes(size, static_cast<unsigned>(size));
    MemoryBytes bytes(content);
    const SendOutcome out = client.put(name, bytes);
    ASSERT_EQ(out.fault, SendFault::kNone) << size << ": " << out.error;
    EXPECT_EQ(out.bytes_sent, size);
    EXPECT_EQ(out.location, "sftp://root@127.0.0.1:" + std::to_string(server_->port()) +
                                upload_dir() + "/" + name);
    EXPECT_TRUE(test::read_file(upload_dir() + "/" + name) == content) << size;
    EXPECT_EQ(temporaries_in(upload_dir()), std::vector<std::string>{}) << size;
  }
  const SftpStats stats = client.stats();
  EXPECT_EQ(stats.connects, 1u);  // one session for every put
  EXPECT_EQ(stats.puts, sizes.size());
  EXPECT_EQ(stats.fsyncs, sizes.size());
  EXPECT_EQ(stats.fsync_unavailable, 0u);
  // The server's own log: each file was flushed, then renamed from its temporary name.
  const std::string log = server_->read("sftp-server.log");
  EXPECT_GE(count_of(log, ": fsync"), sizes.size()) << log.substr(0, 4000);
  EXPECT_GE(count_of(log, ".part\" new \"" + upload_dir() + "/file-"), sizes.size());
}

TEST_F(SftpClientTest, OverwriteReplacesAnExistingFile) {
  auto s = settings();
  s.on_conflict = OnConflict::kOverwrite;
  SftpClient client(s, cancel_);
  test::write_file(upload_dir() + "/same.xml", "the old content");
  MemoryBytes bytes("the new content, longer than the old");
  const SendOutcome out = client.put("same.xml", bytes);
  ASSERT_EQ(out.fault, SendFault::kNone) << out.error;
  EXPECT_EQ(test::read_file(upload_dir() + "/same.xml"), "the new content, longer than the old");
  EXPECT_EQ(client.stats().replaced, 1u);  // SFTP rename refused; removed, renamed again
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"same.xml"});
}

TEST_F(SftpClientTest, FailLeavesAnExistingFileAndGivesUpOnTheFile) {
  SftpClient client(settings(), cancel_);  // on_conflict: fail (the default)
  test::write_file(upload_dir() + "/same.xml", "the old content");
  MemoryBytes bytes("the new content");
  const SendOutcome out = client.put("same.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kPermanent) << out.error;
  EXPECT_NE(out.error.find(upload_dir() + "/same.xml exists"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("on_conflict is fail"), std::string::npos) << out.error;
  EXPECT_EQ(out.bytes_sent, 0u);  // refused before anything was sent
  EXPECT_EQ(test::read_file(upload_dir() + "/same.xml"), "the old content");
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"same.xml"});
}

TEST_F(SftpClientTest, RefusesAnUnknownOrChangedHostKeyNamingHostAndFingerprint) {
  struct Case {
    std::string known_hosts;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"known_hosts_unknown", "host key unknown, refused"},  // no entry for the host
      {"known_hosts_changed", "host key CHANGED, refused"},  // another key for the host
  };
  const std::string host = "[127.0.0.1]:" + std::to_string(server_->port());
  for (const auto& c : cases) {
    auto s = settings();
    s.known_hosts_file = server_->path(c.known_hosts);
    SftpClient client(s, cancel_);
    MemoryBytes bytes("<a/>");
    const SendOutcome out = client.put("a.xml", bytes);
    EXPECT_EQ(out.fault, SendFault::kDestination) << c.known_hosts << ": " << out.error;
    EXPECT_NE(out.error.find(c.says), std::string::npos) << out.error;
    EXPECT_NE(out.error.find(host), std::string::npos) << out.error;
    EXPECT_NE(out.error.find(fingerprint()), std::string::npos) << out.error;
    EXPECT_NE(out.error.find("ssh-ed25519"), std::string::npos) << out.error;
    const ProbeOutcome probe = client.probe();
    EXPECT_EQ(probe.fault, SendFault::kDestination) << c.known_hosts;
    EXPECT_NE(probe.error.find(fingerprint()), std::string::npos) << probe.error;
    EXPECT_EQ(client.stats().connects, 0u);
  }
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{});
}

TEST_F(SftpClientTest, RefusedLoginSettingsAndDirectoryAreDestinationFaults) {
  struct Case {
    std::string what;
    SftpSettings settings;
    std::string says;
  };
  std::vector<Case> cases;
  {
    auto s = settings();
    s.private_key_file = server_->path("wrong_client_key");
    cases.push_back({"a key the server does not accept", s, "refused"});
  }
  {
    auto s = settings();
    s.private_key_file = server_->path("no_such_key");
    cases.push_back({"a key file that is missing", s, "no_such_key cannot be read"});
  }
  {
    auto s = settings();
    s.known_hosts_file = server_->path("no_such_known_hosts");
    cases.push_back(
        {"a known_hosts file that is missing", s, "no_such_known_hosts cannot be read"});
  }
  {
    auto s = settings();
    s.remote_dir = server_->path("missing");
    cases.push_back(
        {"a remote_dir that is missing", s, server_->path("missing") + ": no such file"});
  }
  {
    auto s = settings();
    s.remote_dir = server_->path("known_hosts");
    cases.push_back({"a remote_dir that is a file", s, "is not a directory"});
  }
  for (const auto& c : cases) {
    SftpClient client(c.settings, cancel_);
    MemoryBytes bytes("<a/>");
    const SendOutcome out = client.put("a.xml", bytes);
    EXPECT_EQ(out.fault, SendFault::kDestination) << c.what << ": " << out.error;
    EXPECT_NE(out.error.find(c.says), std::string::npos) << c.what << ": " << out.error;
    const ProbeOutcome probe = client.probe();
    EXPECT_EQ(probe.fault, SendFault::kDestination) << c.what << ": " << probe.error;
    EXPECT_NE(probe.error.find(c.says), std::string::npos) << c.what << ": " << probe.error;
  }
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{});
}

TEST_F(SftpClientTest, ProbeLogsInAndChecksTheDirectory) {
  SftpClient client(settings(), cancel_);
  const ProbeOutcome probe = client.probe();
  EXPECT_EQ(probe.fault, SendFault::kNone) << probe.error;
  MemoryBytes bytes("<a/>");
  EXPECT_EQ(client.put("a.xml", bytes).fault, SendFault::kNone);
  EXPECT_EQ(client.probe().fault, SendFault::kNone);
  EXPECT_EQ(client.stats().connects, 1u);  // the probe's session served the put
}

TEST_F(SftpClientTest, NothingListeningIsUnreachable) {
  auto s = settings();
  s.port = test::closed_tcp_port();
  SftpClient client(s, cancel_);
  MemoryBytes bytes("<a/>");
  const SendOutcome out = client.put("a.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kUnreachable) << out.error;
  EXPECT_NE(out.error.find("Connection refused"), std::string::npos) << out.error;
  EXPECT_EQ(client.probe().fault, SendFault::kUnreachable);
}

TEST_F(SftpClientTest, AServerThatSaysNothingTimesOut) {
  test::SilentListener silent;
  auto s = settings();
  s.port = silent.port();
  s.io_timeout_s = 0.5;
  SftpClient client(s, cancel_);
  MemoryBytes bytes("<a/>");
  const auto began = std::chrono::steady_clock::now();
  const SendOutcome out = client.put("a.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kTransient) << out.error;
  EXPECT_NE(out.error.find("no progress for 0.5 s"), std::string::npos) << out.error;
  EXPECT_LT(seconds_since(began), 5.0);
}

TEST_F(SftpClientTest, NamesThatCannotBeStoredArePermanent) {
  SftpClient client(settings(), cancel_);
  for (const std::string name : {"", "a/b.xml", "..", "a\r\nb.xml"}) {
    MemoryBytes bytes("<a/>");
    const SendOutcome out = client.put(name, bytes);
    EXPECT_EQ(out.fault, SendFault::kPermanent) << name << ": " << out.error;
  }
  EXPECT_EQ(client.stats().connects, 0u);
}

TEST_F(SftpClientOwnServerTest, ServerKilledMidTransferLeavesNoFinalFileAndTheNextPutCleansUp) {
  SftpClient client(settings(), cancel_);
  GeneratedBytes big(256ull << 20, 4ull << 20);  // 256 MiB, pausing after 4 MiB
  std::thread killer([&] {
    if (poll_until([&] { return big.reached(); }, 60)) server_->kill();
    big.release();
  });
  const SendOutcome out = client.put("big.xml", big);
  killer.join();
  EXPECT_TRUE(out.fault == SendFault::kTransient || out.fault == SendFault::kUnreachable)
      << send_fault_name(out.fault) << ": " << out.error;
  EXPECT_GE(out.bytes_sent, 4ull << 20);
  EXPECT_LT(out.bytes_sent, 256ull << 20);
  // The partial file is there under its temporary name only.
  EXPECT_EQ(temporaries_in(upload_dir()).size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(upload_dir() + "/big.xml"));

  const SendOutcome down = client.put("big.xml", big);
  EXPECT_EQ(down.fault, SendFault::kUnreachable) << down.error;

  ASSERT_TRUE(server_->start());
  GeneratedBytes small(100000);
  const SendOutcome again = client.put("big.xml", small);
  ASSERT_EQ(again.fault, SendFault::kNone) << again.error;
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"big.xml"});
  EXPECT_EQ(std::filesystem::file_size(upload_dir() + "/big.xml"), 100000u);
  EXPECT_EQ(client.stats().temporaries_removed, 1u);
}

TEST_F(SftpClientTest, AbortEndsAPutInProgress) {
  SftpClient client(settings(), cancel_);
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
  // The next put opens a new session and removes the aborted attempt's temporary file.
  MemoryBytes bytes("<a/>");
  const SendOutcome next = client.put("a.xml", bytes);
  ASSERT_EQ(next.fault, SendFault::kNone) << next.error;
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{"a.xml"});
  EXPECT_EQ(client.stats().connects, 2u);
}

TEST_F(SftpClientTest, CancelledBeforeAPutSendsNothing) {
  SftpClient client(settings(), cancel_);
  cancel_.store(true);
  MemoryBytes bytes("<a/>");
  const SendOutcome out = client.put("a.xml", bytes);
  EXPECT_EQ(out.fault, SendFault::kTransient) << out.error;
  EXPECT_NE(out.error.find("cancelled"), std::string::npos) << out.error;
  EXPECT_EQ(list_dir(upload_dir()), std::vector<std::string>{});
}

TEST_F(SftpClientOwnServerTest, ASessionTheServerClosedIsReopenedAtOnce) {
  SftpClient client(settings(), cancel_);
  MemoryBytes bytes("<a/>");
  ASSERT_EQ(client.put("a.xml", bytes).fault, SendFault::kNone);
  server_->stop();  // ends the kept session too
  ASSERT_TRUE(server_->start());
  const SendOutcome out = client.put("b.xml", bytes);
  ASSERT_EQ(out.fault, SendFault::kNone) << out.error;
  EXPECT_EQ(client.stats().connects, 2u);
  EXPECT_EQ(list_dir(upload_dir()), (std::vector<std::string>{"a.xml", "b.xml"}));
}

// A server whose sftp-server refuses fsync (-P fsync): OpenSSH 9.2 then does not offer
// fsync@openssh.com either, and the client does not ask.
class SftpServerRefusingFsyncTest : public SftpServerTest {
 protected:
  static void SetUpTestSuite() { start_own_server({"-P", "fsync"}); }
};

TEST_F(SftpServerRefusingFsyncTest, StoresWithoutFsync) {
  SftpClient client(settings(), cancel_);
  MemoryBytes bytes("<a/>");
  const SendOutcome out = client.put("a.xml", bytes);
  ASSERT_EQ(out.fault, SendFault::kNone) << out.error;
  EXPECT_EQ(test::read_file(upload_dir() + "/a.xml"), "<a/>");
  EXPECT_EQ(client.stats().fsyncs, 0u);
  EXPECT_EQ(client.stats().fsync_unavailable, 1u);
  const std::string log = server_->read("sftp-server.log");
  EXPECT_NE(log.find("refusing to advertise disallowed extension fsync@openssh.com"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find(": fsync"), std::string::npos) << log;
}

}  // namespace
}  // namespace transfer::sender
