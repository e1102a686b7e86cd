// ProcessBody: framing + header + timestamps + extraction + pre-aggregation, with every
// problem counted (SEMANTICS §1, §6.5, §8).

#include "common/drain/processor.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/support/drain_text.h"

namespace drainmet::drain {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kT0 = 1709633700;  // 2024-03-05T10:15:00Z

using support::Framed;

std::uint64_t Points(const bucket::BucketMap& map) {
  std::uint64_t n = 0;
  for (const auto& [k, b] : map.map()) n += b.count;
  return n;
}

TEST(ProcessBodyTest, CountsFramesAndBuildsPartials) {
  const std::string body = Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=2 count#a=3\n") +
                           Framed("<190>1 2024-03-05T10:15:02+00:00 host app web.1 - hello world\n");
  bucket::BucketMap partials;
  telemetry::Counters counters;
  ProcessBody("t", {}, body, {}, partials, counters);
  EXPECT_EQ(counters.frames, 2u);
  EXPECT_EQ(counters.bad_frame, 0u);
  ASSERT_EQ(partials.size(), 1u);
  EXPECT_EQ(partials.map().begin()->second.sum, 5);
  EXPECT_EQ(Points(partials), 2u);
  EXPECT_EQ(counters.points, 0u) << "points are counted when partials reach a store";
}

// §1.2: a broken LEN ends framing; frames before it are used; one bad_frame.
TEST(ProcessBodyTest, BrokenLengthKeepsEarlierFrames) {
  const std::string body = Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=1\n") +
                           "999 <190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=5\n";
  bucket::BucketMap partials;
  telemetry::Counters counters;
  ProcessBody("t", {}, body, {}, partials, counters);
  EXPECT_EQ(counters.frames, 1u);
  EXPECT_EQ(counters.bad_frame, 1u);
  EXPECT_EQ(Points(partials), 1u);
}

// §1.5: a malformed header is one bad_frame; framing continues.
TEST(ProcessBodyTest, MalformedHeaderIsSkipped) {
  const std::string body = Framed("not a syslog header count#a=1") +
                           Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=1");
  bucket::BucketMap partials;
  telemetry::Counters counters;
  ProcessBody("t", {}, body, {}, partials, counters);
  EXPECT_EQ(counters.frames, 2u);
  EXPECT_EQ(counters.bad_frame, 1u);
  EXPECT_EQ(Points(partials), 1u);
}

// §1.2: LEN 0 is an empty frame: counted in frames and bad_frame (docs/semantics-choices.md 1).
TEST(ProcessBodyTest, ZeroLengthFrameIsBadButFramingGoesOn) {
  const std::string body = "0 " + Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=1");
  bucket::BucketMap partials;
  telemetry::Counters counters;
  ProcessBody("t", {}, body, {}, partials, counters);
  EXPECT_EQ(counters.frames, 2u);
  EXPECT_EQ(counters.bad_frame, 1u);
  EXPECT_EQ(Points(partials), 1u);
}

// §1.4: "-" or an unparsable timestamp means the receive time, counted bad_timestamp.
TEST(ProcessBodyTest, BadTimestampUsesReceiveTime) {
  const std::string body =
      Framed("<190>1 - host app web.1 - count#a=1") + Framed("<190>1 yesterday host app web.1 - count#a=1");
  bucket::BucketMap partials;
  telemetry::Counters counters;
  BodyTimes times;
  times.received_at_nanos = (kT0 + 7200 + 3) * kSec;
  ProcessBody("t", {}, body, times, partials, counters);
  EXPECT_EQ(counters.bad_timestamp, 2u);
  ASSERT_EQ(partials.size(), 1u);
  bucket::BucketKey key;
  ASSERT_TRUE(bucket::DecodeBucketKey(partials.map().begin()->first, &key));
  EXPECT_EQ(key.window_unix_seconds, kT0 + 7200);
}

TEST(ProcessBodyTest, BadTimestampWithoutReceiveTimeYieldsNothing) {
  bucket::BucketMap partials;
  telemetry::Counters counters;
  ProcessBody("t", {}, Framed("<190>1 - host app web.1 - count#a=1"), {}, partials, counters);
  EXPECT_EQ(counters.bad_timestamp, 1u);
  EXPECT_TRUE(partials.empty());
}

// §6.5: more than 60 s ahead of the receiver's clock is future, per point.
TEST(ProcessBodyTest, FuturePointsAreCountedAndDropped) {
  const std::string body = Framed("<190>1 2024-03-05T10:16:01+00:00 host app web.1 - count#a=1 count#b=1") +
                           Framed("<190>1 2024-03-05T10:16:00+00:00 host app web.1 - count#c=1");
  bucket::BucketMap partials;
  telemetry::Counters counters;
  BodyTimes times;
  times.now_nanos = (kT0)*kSec;  // 10:15:00; 10:16:00 is exactly 60 s ahead: allowed
  ProcessBody("t", {}, body, times, partials, counters);
  EXPECT_EQ(counters.future, 2u);
  EXPECT_EQ(Points(partials), 1u);
}

TEST(ProcessBodyTest, OptionsApplyResolutionAndPrefixes) {
  extract::DrainOptions options;
  options.resolution_seconds = 30;
  options.prefix = "eu";
  bucket::BucketMap partials;
  telemetry::Counters counters;
  ProcessBody("t", options, Framed("<190>1 2024-03-05T10:15:45+00:00 host app web.1 - count#a=1"), {},
              partials, counters);
  ASSERT_EQ(partials.size(), 1u);
  bucket::BucketKey key;
  ASSERT_TRUE(bucket::DecodeBucketKey(partials.map().begin()->first, &key));
  EXPECT_EQ(key.name, "eu.a");
  EXPECT_EQ(key.resolution_seconds, 30);
  EXPECT_EQ(key.window_unix_seconds, kT0 + 30);
  EXPECT_EQ(key.tenant, "t");
}

TEST(ProcessBodyTest, GarbageBodiesNeverCrash) {
  const std::string bodies[] = {"",
                                "\n\r \n",
                                "abc",
                                "12",
                                "12 ",
                                "1 x",
                                "000000 ",
                                "9999999 x",
                                std::string(1000, '9'),
                                std::string("5 <1>1 \0\0", 10)};
  for (const std::string& body : bodies) {
    bucket::BucketMap partials;
    telemetry::Counters counters;
    ProcessBody("t", {}, body, {}, partials, counters);
    EXPECT_TRUE(partials.empty()) << body;
  }
}

}  // namespace
}  // namespace drainmet::drain
