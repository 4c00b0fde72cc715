#include "directory_sync.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <vector>

namespace transfer::receiver {
namespace {

// A directory fsync that the test holds open until it lets it finish, and that counts its calls.
class HeldSync {
 public:
  Status operator()() {
    std::unique_lock lock(mu_);
    const int call = ++calls_;
    started_.notify_all();
    released_.wait(lock, [&] { return released_through_ >= call; });
    return call == fail_call_ ? Status(make_error(ErrorCode::kIo, "fsync failed")) : ok_status();
  }
  void release_through(int call) {
    std::lock_guard lock(mu_);
    released_through_ = call;
    released_.notify_all();
  }
  bool wait_started(int call) {
    std::unique_lock lock(mu_);
    return started_.wait_for(lock, std::chrono::seconds(10), [&] { return calls_ >= call; });
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  int fail_call_ = 0;

 private:
  std::mutex mu_;
  std::condition_variable started_, released_;
  int calls_ = 0;
  int released_through_ = 0;
};

bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(DirectorySync, OneAtATimeEachChangeGetsItsOwnFsync) {
  HeldSync held;
  held.release_through(1000);
  DirectorySync sync([&] { return held(); });
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(sync.sync_after_change().ok());
  EXPECT_EQ(held.calls(), 3);
}

TEST(DirectorySync, ChangesDuringAnFsyncShareTheNextOne) {
  HeldSync held;
  DirectorySync sync([&] { return held(); });
  std::atomic<int> ok{0};
  std::thread first([&] { ok += sync.sync_after_change().ok() ? 1 : 0; });
  ASSERT_TRUE(held.wait_started(1));
  // Five changes land while fsync 1 runs: it may have begun before them, so it cannot cover them.
  std::vector<std::thread> group;
  for (int i = 0; i < 5; ++i) group.emplace_back([&] { ok += sync.sync_after_change().ok() ? 1 : 0; });
  ASSERT_TRUE(eventually([&] { return sync.waiting() == 5; }));
  EXPECT_EQ(ok.load(), 0);  // nobody is answered before an fsync that covers them ends
  held.release_through(1);
  first.join();
  ASSERT_TRUE(held.wait_started(2));  // one of the five leads fsync 2 for all of them
  EXPECT_EQ(ok.load(), 1);
  held.release_through(2);
  for (auto& t : group) t.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ(held.calls(), 2);
}

TEST(DirectorySync, AFailedFsyncFailsEveryChangeItCovered) {
  HeldSync held;
  held.fail_call_ = 2;
  DirectorySync sync([&] { return held(); });
  std::thread first([&] { EXPECT_TRUE(sync.sync_after_change().ok()); });
  ASSERT_TRUE(held.wait_started(1));
  std::atomic<int> failed{0};
  std::vector<std::thread> group;
  for (int i = 0; i < 4; ++i) {
    group.emplace_back([&] {
      auto st = sync.sync_after_change();
      if (!st && st.error().message == "fsync failed") ++failed;
    });
  }
  ASSERT_TRUE(eventually([&] { return sync.waiting() == 4; }));
  held.release_through(2);
  first.join();
  for (auto& t : group) t.join();
  EXPECT_EQ(failed.load(), 4);
  held.release_through(3);
  EXPECT_TRUE(sync.sync_after_change().ok());  // the next change gets a fresh fsync
  EXPECT_EQ(held.calls(), 3);
}

}  // namespace
}  // namespace transfer::receiver
