// The strict request-head reader: what it accepts, each framing it refuses
// (with the status the adapter maps it to), and the scanner's early refusals as
// bytes arrive one at a time.
#include "transfer/http/request_head.hpp"

#include <gtest/gtest.h>

#include <string>

namespace transfer::http {
namespace {

std::string crlf(std::string s) {  // "\n" in the test text stands for CRLF
  std::string out;
  for (const char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

// Scans `bytes` one byte at a time, then parses the head found. Returns the
// status a client would see (0 when the head is accepted, -1 when more bytes
// are needed).
int status_of(const std::string& bytes, RequestHead* out = nullptr, RequestHeadLimits limits = {}) {
  HeadScanner scanner(limits);
  for (size_t n = 1; n <= bytes.size(); ++n) {
    auto outcome = scanner.scan(std::string_view(bytes).substr(0, n));
    if (auto* err = std::get_if<HeadError>(&outcome)) return status_for_refusal(err->kind);
    if (auto* done = std::get_if<HeadScanner::Complete>(&outcome)) {
      auto parsed = parse_request_head(
          std::string_view(bytes).substr(done->start, done->end - done->start), limits);
      if (auto* err = std::get_if<HeadError>(&parsed)) return status_for_refusal(err->kind);
      if (out) *out = std::get<RequestHead>(parsed);
      return 0;
    }
  }
  return -1;
}

TEST(RequestHead, AcceptsOrdinaryRequests) {
  RequestHead h;
  ASSERT_EQ(status_of(crlf("GET /readyz?x=1 HTTP/1.1\nHost: a\nAccept: */*\n\n"), &h), 0);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/readyz?x=1");
  EXPECT_EQ(h.path(), "/readyz");
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.has_body());
  ASSERT_NE(h.field("accept"), nullptr);
  EXPECT_EQ(*h.field("ACCEPT"), "*/*");

  ASSERT_EQ(status_of(crlf("POST /upload/a%20b HTTP/1.1\nHost: a\nContent-Length: 12\n"
                           "Content-Type: multipart/form-data; boundary=x\nConnection: "
                           "close\n\n"),
                      &h),
            0);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_TRUE(h.has_body());
  EXPECT_FALSE(h.keep_alive);

  ASSERT_EQ(status_of(crlf("GET / HTTP/1.0\n\n"), &h),
            0);  // 1.0 needs no Host; closes by default
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(status_of(crlf("GET / HTTP/1.0\nConnection: Keep-Alive\n\n"), &h), 0);
  EXPECT_TRUE(h.keep_alive);

  // Empty lines before the request line are skipped; values lose surrounding
  // whitespace only.
  ASSERT_EQ(status_of(crlf("\n\nGET / HTTP/1.1\nHost:   a b \t\nX-Empty:\n\n"), &h), 0);
  EXPECT_EQ(*h.field("host"), "a b");
  EXPECT_EQ(*h.field("x-empty"), "");
  ASSERT_EQ(status_of(crlf("POST /upload/x HTTP/1.1\nHost: "
                           "a\nTransfer-Encoding: Chunked\n\n"),
                      &h),
            0);
  EXPECT_TRUE(h.chunked);
  ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xe9\r\n\r\n", &h),
            0);  // obs-text
}

TEST(RequestHead, RefusesAmbiguousFraming) {
  using namespace std::string_literals;
  struct Case {
    const char* what;
    std::string head;
    int status;
  };
  const Case cases[] = {
      {"two different lengths",
       crlf("POST /upload/x HTTP/1.1\nHost: a\nContent-Length: "
            "5\nContent-Length: 6\n\n"),
       400},
      {"two equal lengths",
       crlf("POST /upload/x HTTP/1.1\nHost: a\nContent-Length: "
            "5\ncontent-length: 5\n\n"),
       400},
      {"a length list", crlf("POST /upload/x HTTP/1.1\nHost: a\nContent-Length: 5, 5\n\n"), 400},
      {"a signed length", crlf("POST /upload/x HTTP/1.1\nHost: a\nContent-Length: +5\n\n"), 400},
      {"an empty length", crlf("POST /upload/x HTTP/1.1\nHost: a\nContent-Length:\n\n"), 400},
      {"a 20-digit length",
       crlf("POST /upload/x HTTP/1.1\nHost: a\nContent-Length: "
            "99999999999999999999\n\n"),
       400},
      {"length and chunked",
       crlf("GET / HTTP/1.1\nHost: a\nContent-Length: 3\nTransfer-Encoding: "
            "chunked\n\n"),
       400},
      {"chunked twice",
       crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: "
            "chunked\nTransfer-Encoding: chunked\n\n"),
       400},
      {"chunked in 1.0", crlf("POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n"), 400},
      {"gzip, chunked", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip, chunked\n\n"),
       501},
      {"obs-fold", crlf("GET / HTTP/1.1\nHost: a\nX-A: b\n c\n\n"), 400},
      {"obs-fold with a tab", crlf("GET / HTTP/1.1\nHost: a\nX-A: b\n\tc\n\n"), 400},
      {"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"s, 400},
      {"DEL in a value", crlf("GET / HTTP/1.1\nHost: a\nX-A: b\x7f\n\n"), 400},
      {"ESC in a value", crlf("GET / HTTP/1.1\nHost: a\nX-A: \x1b[31m\n\n"), 400},
      {"control in a name", crlf("GET / HTTP/1.1\nHost: a\nX\x01A: b\n\n"), 400},
      {"no colon", crlf("GET / HTTP/1.1\nHost: a\nJust-A-Name\n\n"), 400},
      {"space before the colon", crlf("GET / HTTP/1.1\nHost: a\nContent-Length : 0\n\n"), 400},
      {"tab before the colon", crlf("GET / HTTP/1.1\nHost: a\nX-A\t: 0\n\n"), 400},
      {"space inside a name", crlf("GET / HTTP/1.1\nHost: a\nX A: 0\n\n"), 400},
      {"empty name", crlf("GET / HTTP/1.1\nHost: a\n: 0\n\n"), 400},
      {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"bare LF after a field", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
      {"bare CR", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
      {"no Host in 1.1", crlf("GET / HTTP/1.1\n\n"), 400},
      {"two Hosts", crlf("GET / HTTP/1.1\nHost: a\nHost: b\n\n"), 400},
      {"two Content-Types",
       crlf("POST /upload/x HTTP/1.1\nHost: a\nContent-Type: a\nContent-Type: "
            "b\n\n"),
       400},
      {"two signatures",
       crlf("GET / HTTP/1.1\nHost: a\nX-Transfer-Signature: "
            "a\nX-Transfer-Signature: b\n\n"),
       400},
      {"HTTP/2.0", crlf("GET / HTTP/2.0\nHost: a\n\n"), 505},
      {"lowercase version", crlf("GET / http/1.1\nHost: a\n\n"), 400},
      {"two spaces", crlf("GET  / HTTP/1.1\nHost: a\n\n"), 400},
      {"no version", crlf("GET /\nHost: a\n\n"), 400},
      {"absolute target", crlf("GET http://a/ HTTP/1.1\nHost: a\n\n"), 400},
      {"asterisk target", crlf("OPTIONS * HTTP/1.1\nHost: a\n\n"), 400},
      {"raw UTF-8 in the target", crlf("GET /\xc3\xa9 HTTP/1.1\nHost: a\n\n"), 400},
      {"garbage first byte", "\x16\x03\x01\x02\x00\x01\x00", 400},
      {"odd Expect", crlf("POST /upload/x HTTP/1.1\nHost: a\nExpect: 200-ok\n\n"), 417},
  };
  for (const auto& c : cases) EXPECT_EQ(status_of(c.head), c.status) << c.what;
}

TEST(RequestHead, EnforcesLimitsAsBytesArrive) {
  RequestHeadLimits limits;
  limits.max_head_bytes = 1024;
  limits.max_headers = 5;
  limits.max_line_bytes = 200;
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 5; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(status_of(many + "\r\n", nullptr, limits), 431) << "six fields";
  std::string five = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 4; ++i) five += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(status_of(five + "\r\n", nullptr, limits), 0) << "five fields";

  const std::string long_field = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(197, 'v');
  EXPECT_EQ(status_of(long_field + "\r\n\r\n", nullptr, limits), 0)
      << "a field of exactly 200 bytes";
  EXPECT_EQ(status_of(long_field + "v\r\n\r\n", nullptr, limits), 431) << "201 bytes";
  EXPECT_EQ(status_of("GET /" + std::string(300, 'a'), nullptr, limits), 414)
      << "long target, never ended";

  // Under every per-line limit, but over the head's total: refused before its
  // end arrives.
  limits.max_headers = 50;
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 5; ++i) big += "X: " + std::string(190, 'v') + "\r\n";
  big += "Y: " + std::string(190, 'v');
  HeadScanner scanner(limits);
  auto outcome = scanner.scan(big);
  ASSERT_TRUE(std::holds_alternative<HeadError>(outcome));
  EXPECT_EQ(status_for_refusal(std::get<HeadError>(outcome).kind), 431);

  // Default limits: 64 KiB, 100 fields.
  std::string hundred_and_one = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; ++i) hundred_and_one += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(status_of(hundred_and_one + "\r\n"), 431);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(70000, 'a') + "\r\n\r\n"),
            431);
}

TEST(RequestHead, IncompleteHeadsWaitAndScanningResumes) {
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\n"), -1);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\n\r"), -1);
  // Given in two calls that split the CRLF: the same result as in one.
  HeadScanner scanner;
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
  EXPECT_TRUE(std::holds_alternative<HeadScanner::NeedMore>(
      scanner.scan(std::string_view(head).substr(0, 15))));
  auto done = scanner.scan(head);
  ASSERT_TRUE(std::holds_alternative<HeadScanner::Complete>(done));
  EXPECT_EQ(std::get<HeadScanner::Complete>(done).end, head.size() - 4);
  scanner.reset();
  EXPECT_TRUE(std::holds_alternative<HeadScanner::NeedMore>(scanner.scan("GE")));
}

}  // namespace
}  // namespace transfer::http
