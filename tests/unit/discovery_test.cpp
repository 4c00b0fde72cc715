// Discovery's bookkeeping for the incremental run loop (issue 22) over a real temporary
// directory: which candidates are untaken (to identify), which names changed since the loop last
// looked (what a tracked version is checked against), and the oldest waiting time, all kept as
// files come, change and go, without the loop walking every candidate.
#include "discovery.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace transfer::sender {
namespace {

namespace fs = std::filesystem;

class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("discovery-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_.input_dir = dir_.string();
    config_.use_inotify = false;
    config_.min_file_age_s = 0;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
  }
  // A distinct mtime, so a rewrite of the same size is a new stamp whatever the clock's grain.
  void set_mtime(const std::string& name, long seconds) {
    const timeval times[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(::utimes((dir_ / name).c_str(), times), 0);
  }
  static std::vector<std::string> untaken(const Discovery& d) {
    return {d.untaken().begin(), d.untaken().end()};
  }
  static std::vector<std::string> changed(Discovery& d) {
    auto names = d.take_changed();
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
  SenderConfig config_;
  std::ostringstream log_;
  Logger logger_ = make_stream_logger("discovery-test", log_, LogFormat::kText);
};

TEST_F(DiscoveryTest, NewFilesAreUntakenInNameOrderAndChangedOnce) {
  Discovery d(config_, logger_);
  for (const char* n : {"c.json", "a.json", "b.json", "ignored.tmp"}) write(n, "{}");
  d.rescan();
  EXPECT_EQ(untaken(d), (std::vector<std::string>{"a.json", "b.json", "c.json"}));
  EXPECT_EQ(changed(d), (std::vector<std::string>{"a.json", "b.json", "c.json"}));
  d.rescan();  // nothing new: nothing changed, nothing untaken twice
  EXPECT_TRUE(changed(d).empty());
  EXPECT_EQ(d.untaken().size(), 3u);
}

TEST_F(DiscoveryTest, ATakenCandidateStaysTakenUntilItChangesOrIsPutBack) {
  Discovery d(config_, logger_);
  write("a.json", "{}");
  write("b.json", "{}");
  d.rescan();
  d.take_changed();
  d.take("a.json");
  d.rescan();  // the same version: still taken
  EXPECT_EQ(untaken(d), (std::vector<std::string>{"b.json"}));
  EXPECT_TRUE(changed(d).empty());
  d.put_back("a.json");
  EXPECT_EQ(untaken(d), (std::vector<std::string>{"a.json", "b.json"}));
  d.take("a.json");
  write("a.json", "{\"x\": 1}");  // a new version: untaken again, and named as changed
  set_mtime("a.json", 1000);
  d.observe("a.json");
  EXPECT_EQ(untaken(d), (std::vector<std::string>{"a.json", "b.json"}));
  EXPECT_EQ(changed(d), (std::vector<std::string>{"a.json"}));
  d.put_back("gone.json");  // not a candidate: nothing to put back
  EXPECT_EQ(d.untaken().size(), 2u);
}

TEST_F(DiscoveryTest, GoneOrSettledFilesLeaveEveryIndex) {
  Discovery d(config_, logger_);
  write("a.json", "{}");
  write("b.json", "{}");
  set_mtime("a.json", 2000);
  set_mtime("b.json", 3000);
  d.rescan();
  d.take_changed();
  ASSERT_NE(d.find("a.json"), nullptr);
  const double first = d.oldest_waiting_since();
  EXPECT_GT(first, 0);
  EXPECT_LE(first, d.find("b.json")->waiting_since_unix);
  fs::remove(dir_ / "a.json");
  d.rescan();
  EXPECT_EQ(d.find("a.json"), nullptr);
  EXPECT_EQ(untaken(d), (std::vector<std::string>{"b.json"}));
  EXPECT_EQ(changed(d), (std::vector<std::string>{"a.json"}));
  EXPECT_EQ(d.oldest_waiting_since(), d.find("b.json")->waiting_since_unix);
  // Settled with this very version (delivered and kept): no longer a candidate.
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "b.json").c_str(), &st), 0);
  d.settled()["b.json"] = stamp_of(st);
  d.take("b.json");
  d.observe("b.json");
  EXPECT_TRUE(d.candidates().empty());
  EXPECT_TRUE(d.untaken().empty());
  EXPECT_EQ(changed(d), (std::vector<std::string>{"b.json"}));
  EXPECT_EQ(d.oldest_waiting_since(), 0);
  d.erase("b.json");  // already gone: nothing happens
  EXPECT_TRUE(changed(d).empty());
}

// With --once, a candidate that failed and was marked tried is not put back: the pass ends.
TEST_F(DiscoveryTest, OnceModeDoesNotPutBackATriedCandidate) {
  config_.once = true;
  Discovery d(config_, logger_);
  write("a.json", "{}");
  d.rescan();
  d.take("a.json");
  d.find("a.json")->tried_in_once_mode = true;
  d.put_back("a.json");
  EXPECT_TRUE(d.untaken().empty());
  write("a.json", "{\"changed\": true}");  // a new version is a new candidate, untried
  set_mtime("a.json", 4000);
  d.observe("a.json");
  EXPECT_EQ(untaken(d), (std::vector<std::string>{"a.json"}));
  EXPECT_FALSE(d.find("a.json")->tried_in_once_mode);
}

// The burst the issue names, scaled down: every index stays in step over many files, and a
// rescan of an unchanged directory reports nothing changed (the loop then checks no tracked file).
TEST_F(DiscoveryTest, ABurstOfFilesIsIndexedOnceAndARescanOfNothingNewChangesNothing) {
  Discovery d(config_, logger_);
  constexpr int kFiles = 2000;
  for (int i = 0; i < kFiles; ++i) write("f" + std::to_string(100000 + i) + ".json", "{}");
  d.rescan();
  EXPECT_EQ(d.candidates().size(), static_cast<size_t>(kFiles));
  EXPECT_EQ(d.untaken().size(), static_cast<size_t>(kFiles));
  EXPECT_EQ(d.take_changed().size(), static_cast<size_t>(kFiles));
  for (int i = 0; i < kFiles; i += 2) d.take("f" + std::to_string(100000 + i) + ".json");
  d.rescan();
  EXPECT_TRUE(d.take_changed().empty());
  EXPECT_EQ(d.untaken().size(), static_cast<size_t>(kFiles / 2));
  EXPECT_EQ(*d.untaken().begin(), "f100001.json");
}

TEST(RescanInterval, StretchedToFiftyTimesTheListingOnlyWhileInotifyWorks) {
  using namespace std::chrono_literals;
  EXPECT_EQ(rescan_interval(5s, 4ms, true), 5s);           // a small directory: SCAN_INTERVAL
  EXPECT_EQ(rescan_interval(5s, 400ms, true), 20s);        // 100,000 files: 50 x 0.4 s
  EXPECT_EQ(rescan_interval(5s, 400ms, false), 5s);        // no inotify: the listing is all there is
  EXPECT_EQ(rescan_interval(600s, 400ms, true), 600s);     // never shorter than asked
}

}  // namespace
}  // namespace transfer::sender
