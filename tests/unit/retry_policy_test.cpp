#include "retry_policy.hpp"

#include <gtest/gtest.h>

#include "sender_service.hpp"

namespace transfer::sender {
namespace {

TEST(RetryPolicy, ClassifiesAnswers) {
  struct Case {
    int status;
    AttemptVerdict verdict;
  };
  for (const auto& c : std::vector<Case>{{201, AttemptVerdict::kDelivered},
                                         {0, AttemptVerdict::kTransient},
                                         {408, AttemptVerdict::kTransient},
                                         {429, AttemptVerdict::kTransient},
                                         {500, AttemptVerdict::kTransient},
                                         {503, AttemptVerdict::kTransient},
                                         {507, AttemptVerdict::kTransient},
                                         {200, AttemptVerdict::kTransient},
                                         {302, AttemptVerdict::kTransient},
                                         {400, AttemptVerdict::kPermanent},
                                         {409, AttemptVerdict::kPermanent},
                                         {413, AttemptVerdict::kPermanent},
                                         {422, AttemptVerdict::kPermanent}}) {
    EXPECT_EQ(classify_status(c.status), c.verdict) << c.status;
  }
}

TEST(RetryPolicy, BackoffIsExponentialWithFullJitterAndACap) {
  const RetrySettings s{1, 300, 0, 0};
  EXPECT_DOUBLE_EQ(backoff_delay(1, s, 0.999999, std::nullopt), 0.999999);
  EXPECT_DOUBLE_EQ(backoff_delay(4, s, 0.5, std::nullopt), 4.0);  // 0.5 * 2^3
  EXPECT_DOUBLE_EQ(backoff_delay(4, s, 0.0, std::nullopt), 0.0);  // full jitter reaches zero
  EXPECT_DOUBLE_EQ(backoff_delay(30, s, 0.5, std::nullopt), 150.0);  // capped at 300
  EXPECT_DOUBLE_EQ(backoff_delay(1000000, s, 1.0, std::nullopt), 300.0);
}

TEST(RetryPolicy, RetryAfterIsHonouredUpToTheCap) {
  const RetrySettings s{1, 300, 0, 0};
  EXPECT_DOUBLE_EQ(backoff_delay(1, s, 0.1, 30.0), 30.0);
  EXPECT_DOUBLE_EQ(backoff_delay(1, s, 0.1, 9999.0), 300.0);
  EXPECT_DOUBLE_EQ(*parse_retry_after("120", 0), 120.0);
  EXPECT_DOUBLE_EQ(*parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111767.0), 10.0);
  EXPECT_DOUBLE_EQ(*parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111787.0), 0.0);  // past
  EXPECT_FALSE(parse_retry_after("", 0).has_value());
  EXPECT_FALSE(parse_retry_after("soon", 0).has_value());
  EXPECT_FALSE(parse_retry_after("-5", 0).has_value());
}

TEST(RetryPolicy, GivesUpAfterMaxAttemptsOrMaxAge) {
  EXPECT_FALSE(should_give_up(1000, 1, 2, RetrySettings{1, 300, 0, 0}));  // no limits
  EXPECT_TRUE(should_give_up(5, 100, 101, RetrySettings{1, 300, 5, 0}));
  EXPECT_FALSE(should_give_up(4, 100, 101, RetrySettings{1, 300, 5, 0}));
  EXPECT_TRUE(should_give_up(1, 100, 160, RetrySettings{1, 300, 0, 60}));
  EXPECT_FALSE(should_give_up(1, 100, 159, RetrySettings{1, 300, 0, 60}));
}

TEST(InputNames, IgnoresPartialsDotFilesAndGlobs) {
  const std::vector<std::string> globs = {"draft-*", "*.bak.json"};
  for (const char* name : {"a.json", "x.y.json", "über.json"}) {
    EXPECT_FALSE(is_ignored_name(name, globs)) << name;
  }
  for (const char* name : {".a.json", "a.json.tmp", "a.json.part", "a.json.partial", "a.json.swp",
                           "a.xml", ".json", "a.JSON", "draft-1.json", "old.bak.json", ""}) {
    EXPECT_TRUE(is_ignored_name(name, globs)) << name;
  }
}

}  // namespace
}  // namespace transfer::sender
