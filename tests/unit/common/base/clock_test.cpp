#include "common/base/clock.h"

#include "absl/status/statusor.h"
#include "common/base/status_macros.h"
#include "gtest/gtest.h"

namespace drainmet::base {
namespace {

TEST(FloorDivTest, RoundsTowardNegativeInfinity) {
  EXPECT_EQ(FloorDiv(7, 5), 1);
  EXPECT_EQ(FloorDiv(5, 5), 1);
  EXPECT_EQ(FloorDiv(0, 5), 0);
  EXPECT_EQ(FloorDiv(-1, 5), -1);
  EXPECT_EQ(FloorDiv(-5, 5), -1);
  EXPECT_EQ(FloorDiv(-6, 5), -2);
}

TEST(FakeClockTest, MovesOnlyWhenTold) {
  FakeClock clock(1'500'000'000);
  EXPECT_EQ(clock.NowUnixNanos(), 1'500'000'000);
  EXPECT_EQ(clock.NowUnixSeconds(), 1);
  clock.AdvanceNanos(600'000'000);
  EXPECT_EQ(clock.NowUnixSeconds(), 2);
  clock.SetUnixNanos(-1);
  EXPECT_EQ(clock.NowUnixSeconds(), -1);
}

TEST(SystemClockTest, IsAfter2024) { EXPECT_GT(SystemClock::Get().NowUnixSeconds(), 1704067200); }

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}
absl::StatusOr<int> Quarter(int x) {
  DRAINMET_ASSIGN_OR_RETURN(int h, Half(x));
  DRAINMET_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}
absl::Status CheckEven(int x) {
  DRAINMET_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_TRUE(CheckEven(2).ok());
  EXPECT_FALSE(CheckEven(3).ok());
}

}  // namespace
}  // namespace drainmet::base
