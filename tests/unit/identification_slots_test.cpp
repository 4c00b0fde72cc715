// Which candidates the run loop may hand to the identify workers: one worker is always left for
// small files, however many large ones are waiting to be hashed.
#include "identification_slots.hpp"

#include <gtest/gtest.h>

#include <string>

namespace transfer::sender {
namespace {

constexpr int64_t kSmall = 1536 * 1024;  // the service's small-file limit (kInMemoryInputLimit)
constexpr int64_t kLarge = int64_t{16} << 30;

TEST(IdentificationSlots, AtLeastTwoWorkersAndTwoFilesInHandEach) {
  for (const auto& [concurrency, workers] : {std::pair{0, 2}, {1, 2}, {2, 2}, {3, 3}, {8, 8}}) {
    const IdentificationSlots slots(concurrency, kSmall);
    EXPECT_EQ(slots.workers(), static_cast<size_t>(workers)) << concurrency;
    EXPECT_EQ(slots.capacity(), 2 * static_cast<size_t>(workers)) << concurrency;
  }
}

// The attack: large files arrive first (they sort first) and would take every worker.
TEST(IdentificationSlots, LargeFilesNeverTakeTheLastWorker) {
  for (const int concurrency : {1, 2, 4}) {
    IdentificationSlots slots(concurrency, kSmall);
    int large = 0;
    for (int i = 0; i < 10; ++i) {
      if (!slots.may_start(kLarge)) continue;
      slots.started("large" + std::to_string(i), kLarge);
      ++large;
    }
    EXPECT_EQ(large, static_cast<int>(slots.workers()) - 1) << concurrency;
    // Small files still go, up to the files in hand.
    EXPECT_TRUE(slots.may_start(kSmall)) << concurrency;
    EXPECT_TRUE(slots.may_start(0)) << concurrency;
    int small = 0;
    for (int i = 0; slots.may_start(100); ++i, ++small)
      slots.started("small" + std::to_string(i), 100);
    EXPECT_EQ(small, static_cast<int>(slots.capacity()) - large) << concurrency;
    EXPECT_TRUE(slots.full());
    // One large file done: another large may start once there is room.
    slots.finished("small0");
    EXPECT_FALSE(slots.may_start(kLarge)) << concurrency;  // still workers() - 1 large in hand
    slots.finished("large0");
    EXPECT_TRUE(slots.may_start(kLarge)) << concurrency;
  }
}

TEST(IdentificationSlots, TheSmallFileLimitIsInclusive) {
  IdentificationSlots slots(2, kSmall);
  slots.started("big", kSmall + 1);  // the one large slot of two workers
  EXPECT_FALSE(slots.may_start(kSmall + 1));
  EXPECT_TRUE(slots.may_start(kSmall));
}

TEST(IdentificationSlots, TracksNamesAndIgnoresUnknownOnes) {
  IdentificationSlots slots(2, kSmall);
  EXPECT_TRUE(slots.empty());
  slots.started("a.json", kLarge);
  slots.started("a.json", kLarge);  // the same name twice counts once
  EXPECT_TRUE(slots.holds("a.json"));
  EXPECT_FALSE(slots.holds("b.json"));
  slots.finished("b.json");  // not held: nothing
  EXPECT_FALSE(slots.may_start(kLarge));
  slots.finished("a.json");
  EXPECT_TRUE(slots.empty());
  EXPECT_TRUE(slots.may_start(kLarge));
}

}  // namespace
}  // namespace transfer::sender
