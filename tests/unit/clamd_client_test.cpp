// The clamd client against a real clamd started per test (clamd_fixture.hpp: one custom EICAR
// signature, ~0.03 s to start), plus the pure parsers. clamd missing is a failure, not a skip.

#include "clamd_client.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "clamd_fixture.hpp"

namespace transfer::receiver {
namespace {

using test::ClamdOptions;
using test::ClamdProcess;
using test::eicar;
using test::kEicarSignatureName;
using Kind = ScanReply::Kind;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ClamdAddress address_of(const std::string& text) {
  auto parsed = parse_clamd_address(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << (parsed.ok() ? "" : parsed.error().message);
  return parsed.ok() ? parsed.value() : ClamdAddress{};
}

// Streams `pieces` in one zINSTREAM session, one send() per piece.
Result<ScanReply> scan(const ClamdAddress& address, const std::vector<std::string>& pieces,
                       const ClamdTimeouts& timeouts = {}) {
  auto session = ClamdScan::open(address, timeouts);
  if (!session.ok()) return session.error();
  for (const auto& piece : pieces) {
    auto sent = session->send(piece.data(), piece.size());
    if (!sent.ok()) return sent.error();
  }
  return session->finish();
}

std::string xml_with(const std::string& text) {
  return "<all><x type=\"str\">" + text + "</x></all>";
}

// Splits `text` into pieces of `size` bytes.
std::vector<std::string> pieces_of(const std::string& text, size_t size) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size(); i += size) out.push_back(text.substr(i, size));
  return out;
}

TEST(ParseScanReply, Table) {
  struct Case {
    std::string reply;
    Kind kind;
    std::string signature;
    std::string text;
  };
  const std::vector<Case> cases = {
      {std::string("stream: OK\0", 11), Kind::kClean, "", "OK"},
      {"stream: OK", Kind::kClean, "", "OK"},
      {"stream: OK\n", Kind::kClean, "", "OK"},
      {std::string("stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0", 46), Kind::kFound,
       "Eicar-Test-Signature.UNOFFICIAL", "Eicar-Test-Signature.UNOFFICIAL FOUND"},
      {"stream: Win.Test.EICAR_HDB-1 FOUND", Kind::kFound, "Win.Test.EICAR_HDB-1",
       "Win.Test.EICAR_HDB-1 FOUND"},
      {"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND", Kind::kFound,
       "Heuristics.Limits.Exceeded.MaxFileSize", "Heuristics.Limits.Exceeded.MaxFileSize FOUND"},
      {std::string("INSTREAM size limit exceeded. ERROR\0", 36), Kind::kError, "",
       "INSTREAM size limit exceeded. ERROR"},
      {"stream: Can't allocate memory ERROR", Kind::kError, "", "Can't allocate memory ERROR"},
      {"stream:  FOUND", Kind::kError, "", " FOUND"},
      {"FOUND", Kind::kError, "", "FOUND"},
      {"stream: OKAY", Kind::kError, "", "OKAY"},
      {"PONG", Kind::kError, "", "PONG"},
      {"", Kind::kError, "", ""},
  };
  for (const auto& c : cases) {
    const ScanReply r = parse_scan_reply(c.reply);
    EXPECT_EQ(r.kind, c.kind) << c.reply;
    EXPECT_EQ(r.signature, c.signature) << c.reply;
    EXPECT_EQ(r.text, c.text) << c.reply;
  }
}

TEST(ParseClamdAddress, Good) {
  struct Case {
    std::string text;
    std::string unix_path;
    std::string host;
    int port;
  };
  const std::vector<Case> cases = {
      {"unix:/run/clamav/clamd.ctl", "/run/clamav/clamd.ctl", "", 0},
      {"unix:/x", "/x", "", 0},
      {"127.0.0.1:3310", "", "127.0.0.1", 3310},
      {"clamav:3310", "", "clamav", 3310},
      {"localhost:1", "", "localhost", 1},
      {"[::1]:3310", "", "::1", 3310},
      {"[fe80::1%eth0]:65535", "", "fe80::1%eth0", 65535},
  };
  for (const auto& c : cases) {
    auto a = parse_clamd_address(c.text);
    ASSERT_TRUE(a.ok()) << c.text << ": " << a.error().message;
    EXPECT_EQ(a->unix_path, c.unix_path) << c.text;
    EXPECT_EQ(a->host, c.host) << c.text;
    EXPECT_EQ(a->port, c.port) << c.text;
    EXPECT_EQ(a->text, c.text) << c.text;
  }
}

TEST(ParseClamdAddress, Bad) {
  const std::vector<std::string> cases = {
      "",
      "unix:",
      "unix:relative/clamd.sock",
      "unix:/" + std::string(200, 'a'),
      "/run/clamav/clamd.ctl",
      "clamav",
      "clamav:",
      ":3310",
      "clamav:0",
      "clamav:65536",
      "clamav:33a",
      "clamav:-1",
      "clamav:+3310",
      "clamav:123456",
      "::1:3310",
      "[::1]3310",
      "[::1]:",
      "[]:3310",
      "[::1:3310",
      "clam av:3310",
      "clamav:3310\n",
      std::string("clamav\0:3310", 12),
  };
  for (const auto& text : cases) {
    auto a = parse_clamd_address(text);
    ASSERT_FALSE(a.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(a.error().code, ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(a.error().message.find("CLAMD_ADDRESS"), std::string::npos) << a.error().message;
  }
}

TEST(ClamdClient, CleanDocumentIsClean) {
  ClamdProcess clamd;
  ASSERT_TRUE(clamd.start());
  const ClamdAddress address = address_of(clamd.address());
  auto small = scan(address, {xml_with("hello")});
  ASSERT_TRUE(small.ok()) << small.error().message;
  EXPECT_EQ(small->kind, Kind::kClean) << small->text;
  EXPECT_EQ(small->text, "OK");

  // 2.5 MiB in one send(): split into chunks of at most 1 MiB.
  auto session = ClamdScan::open(address, {});
  ASSERT_TRUE(session.ok()) << session.error().message;
  const std::string big = xml_with(std::string(5 << 19, 'a'));
  ASSERT_TRUE(session->send(big.data(), big.size()).ok());
  EXPECT_EQ(session->bytes_sent(), big.size());
  auto reply = session->finish();
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->kind, Kind::kClean) << reply->text;
}

TEST(ClamdClient, EicarSplitOverSendsIsFound) {
  ClamdProcess clamd;
  ASSERT_TRUE(clamd.start());
  // 7-byte sends: the signature spans ten chunks.
  auto reply = scan(address_of(clamd.address()), pieces_of(xml_with(eicar()), 7));
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->kind, Kind::kFound) << reply->text;
  EXPECT_EQ(reply->signature, kEicarSignatureName);
  EXPECT_EQ(reply->text, std::string(kEicarSignatureName) + " FOUND");
}

TEST(ClamdClient, PingAndVersion) {
  ClamdProcess clamd;
  ASSERT_TRUE(clamd.start());
  const ClamdAddress address = address_of(clamd.address());
  auto pong = clamd_ping(address, {});
  ASSERT_TRUE(pong.ok()) << pong.error().message;
  EXPECT_EQ(*pong, "PONG");
  auto version = clamd_version(address, {});
  ASSERT_TRUE(version.ok()) << version.error().message;
  EXPECT_NE(version->find("ClamAV"), std::string::npos) << *version;
}

TEST(ClamdClient, TcpAddress) {
  ClamdProcess clamd;
  ASSERT_TRUE(clamd.start());
  // "localhost" goes through getaddrinfo (and past ::1 where it is listed first).
  for (const std::string& text :
       {clamd.tcp_address(), "localhost:" + std::to_string(clamd.tcp_port())}) {
    const ClamdAddress address = address_of(text);
    auto pong = clamd_ping(address, {});
    ASSERT_TRUE(pong.ok()) << text << ": " << pong.error().message;
    EXPECT_EQ(*pong, "PONG") << text;
    auto found = scan(address, pieces_of(xml_with(eicar()), 20));
    ASSERT_TRUE(found.ok()) << text << ": " << found.error().message;
    EXPECT_EQ(found->kind, Kind::kFound) << text << ": " << found->text;
    EXPECT_EQ(found->signature, kEicarSignatureName) << text;
    auto clean = scan(address, {xml_with("hello")});
    ASSERT_TRUE(clean.ok()) << text << ": " << clean.error().message;
    EXPECT_EQ(clean->kind, Kind::kClean) << text << ": " << clean->text;
  }
}

// clamd answers "INSTREAM size limit exceeded. ERROR" on the chunk that passes StreamMaxLength and
// closes the connection at once. 3 MB cannot sit in the socket buffers (~200 KiB), so our send()
// is still writing the second 1 MiB chunk when clamd closes: send() fails, with clamd's message.
TEST(ClamdClient, StreamMaxLengthOverflowFailsTheSendWithClamdsMessage) {
  ClamdProcess clamd(ClamdOptions{.stream_max_length = "1M"});
  ASSERT_TRUE(clamd.start());
  auto session = ClamdScan::open(address_of(clamd.address()), {});
  ASSERT_TRUE(session.ok()) << session.error().message;
  const std::string data(3'000'000, 'a');
  auto sent = session->send(data.data(), data.size());
  ASSERT_FALSE(sent.ok()) << "3 MB accepted with StreamMaxLength 1M";
  EXPECT_EQ(sent.error().code, ErrorCode::kBusy);
  EXPECT_NE(sent.error().message.find("INSTREAM size limit exceeded"), std::string::npos)
      << sent.error().message;
  // The session is spent: finish() repeats the error.
  auto reply = session->finish();
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().message, sent.error().message);
}

// A stream that passes the limit by its last chunk: clamd's error comes back with its message
// either way. Usually that send() completes (the bytes fit in the socket buffer) and the error is
// the verdict finish() returns, whether clamd closed before or after our end-of-stream marker; on
// a slow run (ThreadSanitizer) clamd may have answered and closed before the last chunk is sent,
// and then that send() fails with clamd's message, as in the test above.
TEST(ClamdClient, StreamMaxLengthOverflowByTheLastChunkIsAnErrorReply) {
  ClamdProcess clamd(ClamdOptions{.stream_max_length = "1M"});
  ASSERT_TRUE(clamd.start());
  auto session = ClamdScan::open(address_of(clamd.address()), {});
  ASSERT_TRUE(session.ok()) << session.error().message;
  const std::string mib(1 << 20, 'a');
  ASSERT_TRUE(session->send(mib.data(), mib.size()).ok());  // exactly StreamMaxLength
  auto last = session->send("b", 1);
  if (!last.ok()) {
    EXPECT_EQ(last.error().code, ErrorCode::kBusy);
    EXPECT_NE(last.error().message.find("INSTREAM size limit exceeded"), std::string::npos)
        << last.error().message;
    EXPECT_FALSE(session->finish().ok());
    return;
  }
  auto reply = session->finish();
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->kind, Kind::kError);
  EXPECT_EQ(reply->text, "INSTREAM size limit exceeded. ERROR");
}

TEST(ClamdClient, StoppedClamdFailsFastWithBusy) {
  struct Case {
    const char* name;
    int signal;  // SIGTERM: clamd removes its socket (ENOENT); SIGKILL: a stale one (refused)
    bool tcp;
  };
  for (const Case c : {Case{"SIGTERM unix", SIGTERM, false}, Case{"SIGKILL unix", SIGKILL, false},
                       Case{"SIGTERM tcp", SIGTERM, true}}) {
    ClamdProcess clamd;
    ASSERT_TRUE(clamd.start()) << c.name;
    const ClamdAddress address = address_of(c.tcp ? clamd.tcp_address() : clamd.address());
    clamd.stop(c.signal);
    const ClamdTimeouts timeouts{.connect_s = 5, .io_s = 5};
    const auto start = std::chrono::steady_clock::now();
    auto session = ClamdScan::open(address, timeouts);
    // Refused is immediate: well under the 5 s connect timeout even on a loaded machine.
    EXPECT_LT(seconds_since(start), 3.0) << c.name;
    ASSERT_FALSE(session.ok()) << c.name;
    EXPECT_EQ(session.error().code, ErrorCode::kBusy) << c.name;
    EXPECT_NE(session.error().message.find(address.text), std::string::npos)
        << c.name << ": " << session.error().message;
    auto pong = clamd_ping(address, timeouts);
    ASSERT_FALSE(pong.ok()) << c.name;
    EXPECT_EQ(pong.error().code, ErrorCode::kBusy) << c.name;
  }
}

// A listener that never accepts: the kernel completes the connection into its backlog, so
// connect and the first sends succeed, and nothing ever answers.
UniqueFd silent_unix_listener(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0)
      << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), 4), 0) << std::strerror(errno);
  return fd;
}

UniqueFd silent_tcp_listener(int& port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  EXPECT_EQ(::listen(fd.get(), 4), 0);
  EXPECT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len), 0);
  port = ntohs(sin.sin_port);
  return fd;
}

TEST(ClamdClient, SilentPeerTimesOutWithBusy) {
  test::TempDir dir;
  const std::string path = dir.path("silent.sock");
  const UniqueFd unix_listener = silent_unix_listener(path);
  int port = 0;
  const UniqueFd tcp_listener = silent_tcp_listener(port);
  const ClamdTimeouts timeouts{.connect_s = 2, .io_s = 0.5};
  for (const std::string& text : {"unix:" + path, "127.0.0.1:" + std::to_string(port)}) {
    const ClamdAddress address = address_of(text);
    auto session = ClamdScan::open(address, timeouts);
    ASSERT_TRUE(session.ok()) << text << ": " << session.error().message;
    const std::string doc = xml_with("hello");
    ASSERT_TRUE(session->send(doc.data(), doc.size()).ok()) << text;
    const auto start = std::chrono::steady_clock::now();
    auto reply = session->finish();
    const double waited = seconds_since(start);
    ASSERT_FALSE(reply.ok()) << text << ": got a reply " << reply->text;
    EXPECT_EQ(reply.error().code, ErrorCode::kBusy) << text;
    EXPECT_NE(reply.error().message.find("no reply within 0.5s"), std::string::npos)
        << reply.error().message;
    EXPECT_GE(waited, 0.45) << text;
    EXPECT_LT(waited, 10.0) << text;

    auto pong = clamd_ping(address, timeouts);
    ASSERT_FALSE(pong.ok()) << text;
    EXPECT_EQ(pong.error().code, ErrorCode::kBusy) << text << ": " << pong.error().message;
  }
}

// A peer that never reads: the socket buffers fill and send() gives up after io_s of no progress
// instead of blocking forever.
TEST(ClamdClient, PeerThatStopsReadingTimesOutTheSend) {
  test::TempDir dir;
  const std::string path = dir.path("silent.sock");
  const UniqueFd listener = silent_unix_listener(path);
  auto session = ClamdScan::open(address_of("unix:" + path), {.connect_s = 2, .io_s = 0.5});
  ASSERT_TRUE(session.ok()) << session.error().message;
  const std::string data(8 << 20, 'a');
  const auto start = std::chrono::steady_clock::now();
  auto sent = session->send(data.data(), data.size());
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code, ErrorCode::kBusy);
  EXPECT_NE(sent.error().message.find("took no data for 0.5s"), std::string::npos)
      << sent.error().message;
  EXPECT_LT(seconds_since(start), 10.0);
}

}  // namespace
}  // namespace transfer::receiver
