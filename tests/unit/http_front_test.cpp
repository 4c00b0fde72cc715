// The pure parts of the HTTP front and the receiver's routes: target decoding, the route table
// (what is refused before a byte of body is read), answers as bytes, the log throttle and the
// prefix kept of a client's value.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "receiver_routes.hpp"
#include "transfer/http/http_answer.hpp"
#include "transfer/http/request_head.hpp"
#include "transfer/http/request_target.hpp"
#include "transfer/log_throttle.hpp"
#include "transfer/logging.hpp"

namespace transfer {
namespace {

TEST(RequestTarget, PercentDecodingIsStrictAndDone) {
  struct Case {
    std::string in;
    bool plus;
    std::optional<std::string> out;
  } cases[] = {
      {"a%0Ab", false, std::string("a\nb")},
      {"a%0ab", false, std::string("a\nb")},
      {"%00", false, std::string(1, '\0')},
      {"a+b", false, std::string("a+b")},
      {"a+b", true, std::string("a b")},
      {"%2F", false, std::string("/")},
      {"%C3%A9", false, std::string("\xC3\xA9")},
      {"%", false, std::nullopt},
      {"%4", false, std::nullopt},
      {"%zz", false, std::nullopt},
      {"ab%", false, std::nullopt},
      {"%%41", false, std::nullopt},
  };
  for (const auto& c : cases) {
    auto r = http::percent_decode(c.in, c.plus);
    ASSERT_EQ(r.ok(), c.out.has_value()) << c.in;
    if (c.out) {
      EXPECT_EQ(*r, *c.out) << c.in;
    }
  }
}

TEST(RequestTarget, SplitsAtTheFirstQuestionMarkAndDecodesTheQuery) {
  auto t = http::split_target("/files?a=1?b=2&c");
  EXPECT_EQ(t.raw_path, "/files");
  EXPECT_TRUE(t.has_query);
  EXPECT_EQ(t.raw_query, "a=1?b=2&c");
  auto q = http::parse_query(t.raw_query);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 2U);
  EXPECT_EQ((*q)[0], (std::pair<std::string, std::string>("a", "1?b=2")));
  EXPECT_EQ((*q)[1], (std::pair<std::string, std::string>("c", "")));
  EXPECT_FALSE(http::parse_query("a=%G1").ok());
  EXPECT_TRUE(http::parse_query("&&").value().empty());
}

http::RequestHead head(std::string method, std::string target, std::string extra = "") {
  const std::string text = method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
  auto parsed = http::parse_request_head(text);
  EXPECT_TRUE(std::holds_alternative<http::RequestHead>(parsed)) << text;
  return std::get<http::RequestHead>(parsed);
}

TEST(ReceiverRoutes, EveryRequestIsRoutedOnceFromTheFrontsParse) {
  using receiver::Endpoint;
  struct Case {
    std::string method, target, extra;
    int status;  // 0: routed to `endpoint`
    Endpoint endpoint = Endpoint::kHealth;
    std::string name = "";
  } cases[] = {
      {"GET", "/", "", 0, Endpoint::kHealth},
      {"HEAD", "/", "", 0, Endpoint::kHealth},
      {"GET", "/readyz", "", 0, Endpoint::kReadiness},
      {"GET", "/readyz?a?b", "", 0, Endpoint::kReadiness},
      {"GET", "/metrics", "", 0, Endpoint::kMetrics},
      {"GET", "/files?limit=5", "", 0, Endpoint::kFiles},
      {"GET", "/files/books.xml", "", 0, Endpoint::kFile, "books.xml"},
      {"GET", "/files/a%20b", "", 0, Endpoint::kFile, "a b"},
      {"GET", "/files/a/b", "", 404},
      {"GET", "/files/", "", 404},
      {"GET", "/files/%zz", "", 400},
      {"POST", "/upload/ab", "Content-Length: 5\r\n", 0, Endpoint::kUpload, "ab"},
      // The name is decoded once and whatever it holds goes to the upload rules (400 there).
      {"POST", "/upload/a%0Ab", "Content-Length: 5\r\n", 0, Endpoint::kUpload, "a\nb"},
      {"POST", "/upload/a%2Fb", "Content-Length: 5\r\n", 0, Endpoint::kUpload, "a/b"},
      {"POST", "/upload/", "", 0, Endpoint::kUpload, ""},
      {"POST", "/upload/a%G0", "Content-Length: 5\r\n", 400},
      {"GET", "/upload/ab", "", 405},
      {"PUT", "/upload/ab", "Content-Length: 5\r\n", 405},
      {"FOO", "/readyz", "", 405},
      {"POST", "/readyz", "", 405},
      {"GET", "/nowhere", "", 404},
      {"GET", "/readyz", "Content-Length: 3\r\n", 413},
      {"GET", "/", "Transfer-Encoding: chunked\r\n", 413},
      {"POST", "/upload/ab", "Content-Length: 5\r\nContent-Encoding: gzip\r\n", 415},
      // No body, no Content-Encoding to refuse here (the upload rules still answer 415).
      {"POST", "/upload/ab", "Content-Encoding: gzip\r\n", 0, Endpoint::kUpload, "ab"},
  };
  for (const auto& c : cases) {
    const auto routed = receiver::route_request(head(c.method, c.target, c.extra));
    const std::string what = c.method + " " + c.target;
    if (c.status != 0) {
      ASSERT_TRUE(std::holds_alternative<receiver::RouteRefusal>(routed)) << what;
      EXPECT_EQ(std::get<receiver::RouteRefusal>(routed).status, c.status) << what;
      continue;
    }
    ASSERT_TRUE(std::holds_alternative<receiver::Route>(routed)) << what;
    const auto& r = std::get<receiver::Route>(routed);
    EXPECT_EQ(r.endpoint, c.endpoint) << what;
    EXPECT_EQ(r.name, c.name) << what;
    EXPECT_EQ(r.head_only, c.method == "HEAD") << what;
  }
}

TEST(HttpAnswer, ARenderedResponseSaysHowTheConnectionGoesOn) {
  http::HttpResponse r;
  r.status = 201;
  r.body = "{}\n";
  r.headers.emplace_back("X-Transfer-Id", "abc");
  http::ConnectionTerms keep;
  keep.keep_alive_field = "timeout=30, max=1000";
  EXPECT_EQ(http::render_response(r, keep),
            "HTTP/1.1 201 Created\r\nContent-Length: 3\r\nContent-Type: application/json\r\n"
            "Keep-Alive: timeout=30, max=1000\r\nX-Transfer-Id: abc\r\n\r\n{}\n");
  http::ConnectionTerms close = keep;
  close.close = true;
  close.head_only = true;
  EXPECT_EQ(http::render_response(r, close),
            "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 3\r\n"
            "Content-Type: application/json\r\nX-Transfer-Id: abc\r\n\r\n");
}

TEST(LogThrottle, TheFirstNOfAMinutePerReasonThenOneCount) {
  LogThrottle t(3);
  int logged = 0;
  for (int i = 0; i < 100; ++i) logged += t.admit("bad_request", 0.5 + i * 0.1).log ? 1 : 0;
  EXPECT_EQ(logged, 3);
  EXPECT_TRUE(t.admit("too_large", 10).log) << "each reason has its own allowance";
  EXPECT_TRUE(t.take_ended(59).empty()) << "the minute has not ended";
  auto ended = t.take_ended(61);
  ASSERT_EQ(ended.size(), 1U);
  EXPECT_EQ(ended[0], (std::pair<std::string, uint64_t>("bad_request", 97)));
  EXPECT_TRUE(t.take_ended(62).empty()) << "reported once";
  auto d = t.admit("bad_request", 62);
  EXPECT_TRUE(d.log) << "a new minute";
  EXPECT_TRUE(d.suppressed.empty()) << "too_large never went over its allowance";
}

TEST(Logging, AClientsValueIsCutToAShortPrefixAtAUtf8Boundary) {
  EXPECT_EQ(client_value_prefix("short"), "short");
  EXPECT_EQ(client_value_prefix(std::string(8000, 'a')), std::string(64, 'a') + "...(+7936 bytes)");
  // "é" is two bytes: a cut at 5 would split the third; it backs off to 4.
  EXPECT_EQ(client_value_prefix("\xC3\xA9\xC3\xA9\xC3\xA9", 5), "\xC3\xA9\xC3\xA9...(+2 bytes)");
  // Quoted as log_value quotes (the marker holds a space); the newline was cut off with the rest.
  EXPECT_EQ(log_client_value(std::string(100, 'x') + "\n", 10),
            "\"" + std::string(10, 'x') + "...(+91 bytes)\"");
}

}  // namespace
}  // namespace transfer
