// DeliveryScheduler with a fake clock: per-destination backoff, caps, maximum age, ordering and
// the "all destinations" rule, without sleeping.
#include "delivery_scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace transfer::sender {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  // uniform01 = 0.999...: each backoff is its full ceiling, so the due times are exact.
  DeliveryScheduler make(std::vector<DestinationLimits> d) {
    return DeliveryScheduler(
        std::move(d), [this] { return now_; }, [] { return 0.999999; });
  }
  static DestinationLimits dest(std::string name, int cap = 1,
                                RetrySettings retry = {1, 60, 0, 0}) {
    return DestinationLimits{std::move(name), cap, retry, true};
  }
  static FileVersion file(const std::string& name) { return FileVersion{name, "sha-" + name}; }
  double now_ = 1000;
};

TEST_F(SchedulerTest, EveryEnabledDestinationGetsEveryFileInNameOrder) {
  auto disabled = dest("off");
  disabled.enabled = false;
  auto s = make({dest("a", 10), dest("b", 10), disabled});
  for (const char* n : {"c.json", "a.json", "b.json"}) s.add(file(n));
  for (const char* d : {"a", "b"}) {
    EXPECT_EQ(s.take(d)->name, "a.json") << d;
    EXPECT_EQ(s.take(d)->name, "b.json") << d;
    EXPECT_EQ(s.take(d)->name, "c.json") << d;
    EXPECT_FALSE(s.take(d)) << d;
  }
  EXPECT_FALSE(s.take("off"));
  EXPECT_EQ(s.outcomes(file("a.json")).size(), 2u);  // the disabled destination takes no part
}

TEST_F(SchedulerTest, EachDestinationHasItsOwnCap) {
  auto s = make({dest("slow", 1), dest("fast", 3)});
  for (const char* n : {"1", "2", "3", "4"}) s.add(file(n));
  EXPECT_EQ(s.take("slow")->name, "1");
  EXPECT_FALSE(s.take("slow"));  // at its cap of one
  EXPECT_EQ(s.take("fast")->name, "1");
  EXPECT_EQ(s.take("fast")->name, "2");
  EXPECT_EQ(s.take("fast")->name, "3");
  EXPECT_FALSE(s.take("fast"));
  EXPECT_EQ(s.in_flight("slow"), 1);
  EXPECT_EQ(s.in_flight("fast"), 3);
  // The slow one's attempt never ends; the fast one goes on as its attempts finish.
  s.finished(file("1"), "fast", AttemptVerdict::kDelivered, "");
  EXPECT_EQ(s.take("fast")->name, "4");
  EXPECT_EQ(s.backlog("slow"), 4);
  EXPECT_EQ(s.backlog("fast"), 3);
}

TEST_F(SchedulerTest, BackoffIsPerDestinationAndRespectsRetryAfter) {
  auto s = make({dest("down", 1, {1, 60, 0, 0}), dest("up", 1)});
  s.add(file("f"));
  ASSERT_TRUE(s.take("down"));
  ASSERT_TRUE(s.take("up"));
  auto d1 = s.finished(file("f"), "down", AttemptVerdict::kTransient, "connection refused");
  EXPECT_EQ(d1.state, PairState::kWaiting);
  EXPECT_EQ(d1.attempts, 1);
  EXPECT_NEAR(d1.next_attempt_unix, 1001, 0.01);  // ceiling 1 s
  s.finished(file("f"), "up", AttemptVerdict::kDelivered, "");
  EXPECT_EQ(s.outcome(file("f")), FileOutcome::kPending);
  EXPECT_FALSE(s.take("down"));  // not yet due
  ASSERT_TRUE(s.next_due());
  EXPECT_NEAR(*s.next_due(), 1001, 0.01);
  now_ = 1001.5;
  ASSERT_TRUE(s.take("down"));
  auto d2 = s.finished(file("f"), "down", AttemptVerdict::kTransient, "refused");
  EXPECT_NEAR(d2.next_attempt_unix - now_, 2, 0.01);  // doubled
  now_ += 2.1;
  ASSERT_TRUE(s.take("down"));
  auto d3 = s.finished(file("f"), "down", AttemptVerdict::kTransient, "503", 30.0);
  EXPECT_GE(d3.next_attempt_unix - now_, 30 - 1e-6);  // never sooner than Retry-After
  EXPECT_EQ(d3.first_failure_unix, 1000);
}

TEST_F(SchedulerTest, MaxAttemptsAndMaxAgeGiveUpForThatDestinationOnly) {
  auto s = make({dest("few", 1, {1, 1, 2, 0}), dest("old", 1, {1, 1, 0, 10}), dest("ok", 1)});
  s.add(file("f"));
  ASSERT_TRUE(s.take("few"));
  EXPECT_EQ(s.finished(file("f"), "few", AttemptVerdict::kTransient, "e1").state,
            PairState::kWaiting);
  now_ += 2;
  ASSERT_TRUE(s.take("few"));
  auto gave_up = s.finished(file("f"), "few", AttemptVerdict::kTransient, "e2");
  EXPECT_EQ(gave_up.state, PairState::kGaveUp);
  EXPECT_NE(gave_up.reason.find("gave up after 2 attempts"), std::string::npos) << gave_up.reason;
  EXPECT_NE(gave_up.reason.find("e2"), std::string::npos);

  ASSERT_TRUE(s.take("old"));
  s.finished(file("f"), "old", AttemptVerdict::kTransient, "first");
  now_ += 11;  // past max_age since the first failure
  ASSERT_TRUE(s.take("old"));
  EXPECT_EQ(s.finished(file("f"), "old", AttemptVerdict::kTransient, "later").state,
            PairState::kGaveUp);

  EXPECT_EQ(s.outcome(file("f")), FileOutcome::kPending);  // "ok" has not settled
  ASSERT_TRUE(s.take("ok"));
  s.finished(file("f"), "ok", AttemptVerdict::kDelivered, "");
  EXPECT_EQ(s.outcome(file("f")), FileOutcome::kGaveUpSomewhere);
  const auto all = s.outcomes(file("f"));
  ASSERT_EQ(all.size(), 3u);  // by destination name
  EXPECT_EQ(all[0].destination, "few");
  EXPECT_EQ(all[0].state, PairState::kGaveUp);
  EXPECT_EQ(all[0].attempts, 2);
  EXPECT_EQ(all[1].destination, "ok");
  EXPECT_EQ(all[1].state, PairState::kDelivered);
  EXPECT_EQ(all[2].destination, "old");
  EXPECT_EQ(all[2].state, PairState::kGaveUp);
}

TEST_F(SchedulerTest, APermanentRefusalGivesUpAtOnceAndTheOthersGoOn) {
  auto s = make({dest("rejects", 1), dest("takes", 1)});
  s.add(file("f"));
  s.take("rejects");
  auto d = s.finished(file("f"), "rejects", AttemptVerdict::kPermanent, "receiver answered 409");
  EXPECT_EQ(d.state, PairState::kGaveUp);
  EXPECT_EQ(s.outcome(file("f")), FileOutcome::kPending);
  s.take("takes");
  s.finished(file("f"), "takes", AttemptVerdict::kDelivered, "");
  EXPECT_EQ(s.outcome(file("f")), FileOutcome::kGaveUpSomewhere);
}

TEST_F(SchedulerTest, DeleteOrMoveOnlyOnceEveryEnabledDestinationHasTheFile) {
  auto s = make({dest("a"), dest("b"), dest("c")});
  s.add(file("f"));
  for (const char* d : {"a", "b"}) {
    s.take(d);
    s.finished(file("f"), d, AttemptVerdict::kDelivered, "");
    EXPECT_EQ(s.outcome(file("f")), FileOutcome::kPending) << d;
  }
  s.take("c");
  s.finished(file("f"), "c", AttemptVerdict::kDelivered, "");
  EXPECT_EQ(s.outcome(file("f")), FileOutcome::kDeliveredEverywhere);
}

TEST_F(SchedulerTest, HistoryContinuesAfterARestartAndANewDestinationGetsOldFiles) {
  auto s = make({dest("old"), dest("new")});
  PairHistory delivered;
  delivered.state = PairState::kDelivered;
  s.add(file("f"), {{"old", delivered}});
  EXPECT_FALSE(s.take("old"));          // delivered before the restart: nothing resent
  EXPECT_EQ(s.take("new")->name, "f");  // added since: due at once

  PairHistory failed;
  failed.state = PairState::kWaiting;
  failed.attempts = 3;
  failed.first_failure_unix = 900;
  failed.next_attempt_unix = 1050;
  s.add(file("g"), {{"old", failed}, {"new", delivered}});
  EXPECT_FALSE(s.take("old"));  // its backoff survives the restart
  now_ = 1050;
  ASSERT_TRUE(s.take("old"));
  auto d = s.finished(file("g"), "old", AttemptVerdict::kTransient, "again");
  EXPECT_EQ(d.attempts, 4);
  EXPECT_EQ(d.first_failure_unix, 900);
}

TEST_F(SchedulerTest, ARemovedFileFreesItsSlotsAndLateVerdictsAreIgnored) {
  auto s = make({dest("a")});
  s.add(file("f"));
  s.add(file("g"));
  ASSERT_EQ(s.take("a")->name, "f");
  s.remove(file("f"));  // changed while in flight
  EXPECT_EQ(s.in_flight("a"), 0);
  EXPECT_EQ(s.finished(file("f"), "a", AttemptVerdict::kDelivered, "").state, PairState::kWaiting);
  EXPECT_EQ(s.take("a")->name, "g");
  s.released(file("g"), "a");  // shutting down: due again
  EXPECT_EQ(s.take("a")->name, "g");
}

TEST_F(SchedulerTest, ADestinationAtItsCapHasNothingDueAndKeepsItsFilesActive) {
  auto s = make({dest("dead", 1), dest("live", 1)});
  s.add(file("1"));
  s.add(file("2"));
  EXPECT_EQ(*s.next_due("dead"), now_);
  ASSERT_EQ(s.take("dead")->name, "1");   // never finishes
  EXPECT_FALSE(s.next_due("dead"));       // at its cap: nothing it could take, nothing to wake for
  EXPECT_EQ(*s.next_due("live"), now_);
  EXPECT_TRUE(s.activity(file("1")).in_flight);
  ASSERT_EQ(s.take("live")->name, "1");
  s.finished(file("1"), "live", AttemptVerdict::kTransient, "503");
  EXPECT_EQ(*s.next_due("live"), now_);   // "2" is due now, "1" only after its backoff
  ASSERT_EQ(s.take("live")->name, "2");
  s.finished(file("2"), "live", AttemptVerdict::kDelivered, "");
  EXPECT_NEAR(*s.next_due("live"), now_ + 1, 1e-3);  // "1" after its backoff
  // "2": delivered to live, due for dead (which is busy): worth keeping its payload for now.
  const auto a = s.activity(file("2"));
  EXPECT_FALSE(a.in_flight);
  EXPECT_TRUE(a.due_now);
  EXPECT_FALSE(s.activity(file("unknown")).due_now);
}

TEST_F(SchedulerTest, ADestinationThatDoesNotAnswerYieldsUntilItsRetryTheOthersDoNot) {
  auto s = make({dest("down", 4, {1, 60, 0, 0}), dest("up", 4)});
  for (const char* n : {"1", "2", "3"}) s.add(file(n));
  ASSERT_EQ(s.take("down")->name, "1");
  s.finished(file("1"), "down", AttemptVerdict::kTransient, "connection refused", std::nullopt,
             /*unreachable=*/true);
  EXPECT_FALSE(s.take("down"));  // "2" and "3" are due, but it yields: no failure per file
  EXPECT_NEAR(*s.next_due("down"), now_ + 1, 1e-3);
  for (const char* n : {"1", "2", "3"}) EXPECT_EQ(s.take("up")->name, n);  // not held back
  now_ += 1;
  ASSERT_EQ(s.take("down")->name, "1");  // its retry probes the destination
  s.finished(file("1"), "down", AttemptVerdict::kDelivered, "");
  EXPECT_EQ(s.take("down")->name, "2");  // answering again: the others go
  EXPECT_EQ(s.take("down")->name, "3");
  // A probe's answer ends a yield before the retry falls due.
  s.add(file("4"));
  s.add(file("5"));
  ASSERT_EQ(s.take("down")->name, "4");
  s.finished(file("4"), "down", AttemptVerdict::kTransient, "reset", std::nullopt, true);
  EXPECT_FALSE(s.take("down"));
  s.resume("down");
  EXPECT_EQ(s.take("down")->name, "5");
  // An answer that is an error (a 503 for one file) does not make it yield.
  auto t = make({dest("busy", 4)});
  t.add(file("a"));
  t.add(file("b"));
  ASSERT_EQ(t.take("busy")->name, "a");
  t.finished(file("a"), "busy", AttemptVerdict::kTransient, "503");
  EXPECT_EQ(t.take("busy")->name, "b");
}

// Issue 22: the waiting pairs are indexed by due time and by name. With pairs backing off for
// different times among others due now, take() still hands out exactly the due ones in name
// order, each backed-off one once its time has come, and next_due() names the earliest.
TEST_F(SchedulerTest, BackedOffAndDuePairsComeOutInNameOrderOnceDue) {
  auto s = make({dest("a", 1000, {8, 8, 0, 0})});
  for (int i = 0; i < 200; ++i) s.add(file("f" + std::to_string(1000 + i)));
  // Every third one fails once: backoff ceilings of 8 s (uniform01 ~1: due 8 s later).
  std::vector<FileVersion> taken;
  while (auto f = s.take("a")) taken.push_back(*f);
  ASSERT_EQ(taken.size(), 200u);
  std::vector<std::string> failed;
  for (size_t i = 0; i < taken.size(); ++i) {
    const auto* f = &taken[i];
    ASSERT_EQ(f->name, "f" + std::to_string(1000 + i));
    if (i % 3 == 0) {
      now_ += 0.01;  // failures at slightly different times: different due times
      s.finished(*f, "a", AttemptVerdict::kTransient, "503");
      failed.push_back(f->name);
    } else {
      s.released(*f, "a");  // due again at once
    }
  }
  EXPECT_EQ(s.backlog("a"), 200);
  // Now: the released ones (not the failed ones) are due, in name order.
  std::vector<std::string> order;
  while (auto f = s.take("a")) order.push_back(f->name);
  ASSERT_EQ(order.size(), 200u - failed.size());
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  for (const auto& name : failed) EXPECT_FALSE(std::binary_search(order.begin(), order.end(), name)) << name;
  for (const auto& name : order) s.finished(file(name), "a", AttemptVerdict::kDelivered, "");
  // The first failure is due 8 s after its time (now_ was 1000.01 then).
  ASSERT_TRUE(s.next_due("a"));
  EXPECT_NEAR(*s.next_due("a"), 1008.01, 1e-3);
  now_ = 1008.015;  // only the first failed one is due
  auto first = s.take("a");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->name, failed.front());
  EXPECT_FALSE(s.take("a"));
  now_ = 2000;  // all due: the rest in name order
  std::vector<std::string> rest;
  while (auto f = s.take("a")) rest.push_back(f->name);
  EXPECT_EQ(rest, std::vector<std::string>(failed.begin() + 1, failed.end()));
  EXPECT_EQ(s.backlog("a"), static_cast<int64_t>(failed.size()));  // all in flight
  EXPECT_FALSE(s.next_due("a"));
  s.remove(*first);
  EXPECT_EQ(s.backlog("a"), static_cast<int64_t>(failed.size()) - 1);
}

// Issue 22: files are identified ahead of the uploads only while some destination could use them
// soon; a destination that yields (no answer) does not hold the others' files back, and when all
// yield files are still added as they come (the state knows them).
TEST_F(SchedulerTest, MoreFilesAreWantedWhileADestinationThatAnswersHasFewDue) {
  auto s = make({dest("a", 2), dest("b", 2)});
  EXPECT_TRUE(s.wants_more(3));  // nothing due anywhere
  for (const char* n : {"1", "2", "3"}) s.add(file(n));
  EXPECT_FALSE(s.wants_more(3));  // each has 3 due
  ASSERT_TRUE(s.take("a"));
  EXPECT_TRUE(s.wants_more(3));  // a has 2 due
  s.add(file("4"));
  EXPECT_FALSE(s.wants_more(3));  // a: 2, 3, 4; b: 1 to 4
  // b stops answering: it yields, and a alone decides.
  ASSERT_EQ(s.take("b")->name, "1");
  s.finished(file("1"), "b", AttemptVerdict::kTransient, "refused", std::nullopt, /*unreachable=*/true);
  EXPECT_FALSE(s.wants_more(3));  // a still has 3 due
  ASSERT_TRUE(s.take("a"));
  EXPECT_TRUE(s.wants_more(3));   // a has 2 due; b's 3 due do not count while it yields
  // a stops answering too: every destination yields, files are wanted as they come.
  s.finished(file("1"), "a", AttemptVerdict::kTransient, "refused", std::nullopt, /*unreachable=*/true);
  ASSERT_TRUE(s.take("a") == std::nullopt);
  for (int i = 5; i < 20; ++i) s.add(file(std::to_string(i)));
  EXPECT_TRUE(s.wants_more(3));
  // A backed-off pair counts once its time has come.
  now_ += 3600;
  s.resume("a");
  s.resume("b");
  EXPECT_FALSE(s.wants_more(3));
}

}  // namespace
}  // namespace transfer::sender
