// drainmet-loadgen's bodies (services/loadgen/body.h): octet counting that drainmet's own
// reader accepts (FORMATS.md §1.3, SEMANTICS §1.1-§1.2), RFC 3339 stamps that parse
// (§1.4), restamping in place, series spread, and the tallies the record is made of.

#include "services/loadgen/body.h"

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/logplex/frame_reader.h"
#include "gtest/gtest.h"

namespace drainmet::loadgen {
namespace {

constexpr std::int64_t kSecond = 1'709'647'337;  // 2024-03-05T14:02:17Z

struct ParsedFrame {
  std::string timestamp;
  std::string app_name;
  std::string proc_id;
  std::string line;
  std::int64_t micros = 0;  // 0 when the timestamp does not parse
};

/// Every frame of `body` as drainmet's FrameReader and ParseFrame see it; fails the test
/// on a broken body.
std::vector<ParsedFrame> ReadFrames(std::string_view body) {
  std::vector<ParsedFrame> frames;
  logplex::FrameReader reader(body);
  std::string_view bytes;
  for (;;) {
    const logplex::FrameStatus status = reader.Next(&bytes);
    if (status == logplex::FrameStatus::kEnd) break;
    EXPECT_EQ(status, logplex::FrameStatus::kFrame) << "after " << frames.size() << " frames";
    if (status != logplex::FrameStatus::kFrame) break;
    const std::optional<logplex::Frame> frame = logplex::ParseFrame(bytes);
    EXPECT_TRUE(frame.has_value()) << bytes;
    if (!frame) continue;
    ParsedFrame f{std::string(frame->timestamp), std::string(frame->app_name), std::string(frame->proc_id),
                  std::string(frame->line)};
    if (std::optional<std::int64_t> nanos = logplex::ParseRfc3339Nanos(frame->timestamp))
      f.micros = *nanos / 1000;
    frames.push_back(std::move(f));
  }
  return frames;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(FormatStamp, WritesFixedWidthRfc3339Utc) {
  const struct {
    std::int64_t micros;
    const char* want;
  } cases[] = {
      {0, "1970-01-01T00:00:00.000000+00:00"},
      {-1, "1969-12-31T23:59:59.999999+00:00"},
      {951'782'400'123'456, "2000-02-29T00:00:00.123456+00:00"},  // leap day
      {1'709'647'337'116'831, "2024-03-05T14:02:17.116831+00:00"},
      {253'402'300'799'999'999, "9999-12-31T23:59:59.999999+00:00"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.micros);
    char out[kStampBytes];
    FormatStamp(c.micros, out);
    EXPECT_EQ(std::string_view(out, kStampBytes), c.want);
  }
}

// SEMANTICS §1.4: whatever FormatStamp writes, drainmet parses back to the same time.
TEST(FormatStamp, RoundTripsThroughDrainmetsParser) {
  for (std::int64_t micros = -86'400'000'000; micros < 4'102'444'800'000'000; micros += 7'777'777'777'777) {
    char out[kStampBytes];
    FormatStamp(micros, out);
    const std::optional<std::int64_t> nanos = logplex::ParseRfc3339Nanos(std::string_view(out, kStampBytes));
    ASSERT_TRUE(nanos.has_value()) << std::string_view(out, kStampBytes);
    EXPECT_EQ(*nanos, micros * 1000) << std::string_view(out, kStampBytes);
  }
}

TEST(ParseTemplate, RejectsWhatCannotBeALine) {
  for (const char* bad : {"", "count#x={foo}", "count#x={ms", "count#x=1}", "a\nb", "a\rb"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(ParseTemplate(bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// FORMATS.md §1.3, §1.5: LEN counts the bytes of the frame, trailing LF included; every
// frame is `<190>1 TS host app web.1 - MSG`; the default template makes ~100 KiB of 800
// lines (Logplex's http_drain_target_bytes, §1.7).
TEST(RenderTemplateBody, OctetCountsEveryFrameForDrainmetsReader) {
  absl::StatusOr<Template> t = ParseTemplate(kDefaultTemplate);
  ASSERT_TRUE(t.ok()) << t.status();
  const Body body = RenderTemplateBody(*t, 800, 7, 0, 1, kSecond);
  EXPECT_EQ(body.frames, 800u);
  EXPECT_GE(body.bytes.size(), 90u * 1024);
  EXPECT_LE(body.bytes.size(), 110u * 1024);

  const std::vector<ParsedFrame> frames = ReadFrames(body.bytes);
  ASSERT_EQ(frames.size(), 800u);
  std::int64_t previous = INT64_MIN;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(frames[i].app_name, "app");
    EXPECT_EQ(frames[i].proc_id, "web.1");
    EXPECT_EQ(frames[i].timestamp.size(), kStampBytes);
    // Rising through the second before the stamped one.
    EXPECT_GE(frames[i].micros, (kSecond - 1) * 1'000'000);
    EXPECT_LT(frames[i].micros, kSecond * 1'000'000);
    EXPECT_GE(frames[i].micros, previous);
    previous = frames[i].micros;
    const std::string& line = frames[i].line;
    EXPECT_EQ(line.rfind("measure#db.latency=", 0), 0u) << line;
    EXPECT_NE(line.find("ms sample#mem="), std::string::npos) << line;
    EXPECT_NE(line.find("MB count#req=1 source=web." + std::to_string(i % 7)), std::string::npos) << line;
    EXPECT_EQ(line.back(), static_cast<char>('0' + i % 7)) << line;
  }
}

TEST(RenderTemplateBody, SpreadsSourcesRoundRobinFromFirstLine) {
  absl::StatusOr<Template> t = ParseTemplate("count#hits={int} src={source}");
  ASSERT_TRUE(t.ok()) << t.status();
  const Body body = RenderTemplateBody(*t, 5, 4, 6, 1, kSecond);  // lines 6..10
  const std::vector<ParsedFrame> frames = ReadFrames(body.bytes);
  ASSERT_EQ(frames.size(), 5u);
  const char* want[] = {"web.2", "web.3", "web.0", "web.1", "web.2"};
  for (std::size_t i = 0; i < 5; ++i) {
    // {source} given: nothing is appended.
    EXPECT_EQ(frames[i].line.substr(frames[i].line.find(" src=") + 5), want[i]) << frames[i].line;
    EXPECT_EQ(frames[i].line.find("source="), std::string::npos) << frames[i].line;
  }
}

// Restamping rewrites the stamps only: same length, same messages, new second.
TEST(BodyRestamp, RewritesOnlyTheTimestamps) {
  absl::StatusOr<Template> t = ParseTemplate(kDefaultTemplate);
  ASSERT_TRUE(t.ok());
  Body body = RenderTemplateBody(*t, 50, 3, 0, 9, kSecond);
  const std::vector<ParsedFrame> before = ReadFrames(body.bytes);
  const std::size_t size = body.bytes.size();
  body.Restamp(kSecond + 3600 * 24 * 366 + 5);
  EXPECT_EQ(body.bytes.size(), size);
  const std::vector<ParsedFrame> after = ReadFrames(body.bytes);
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].line, before[i].line);
    EXPECT_EQ(after[i].micros - before[i].micros, (3600 * 24 * 366 + 5) * 1'000'000LL);
  }
  const std::string same = body.bytes;
  body.Restamp(kSecond + 3600 * 24 * 366 + 5);  // already that second: untouched
  EXPECT_EQ(body.bytes, same);
}

// The record's tallies are what drainmet's parser finds (SEMANTICS §4.1, §4.2): per source,
// lines/series points of each of the template's three kinds; count#req=1 sums to the lines.
TEST(TallyBody, CountsPointsPerSeriesAsDrainmetDoes) {
  absl::StatusOr<Template> t = ParseTemplate(kDefaultTemplate);
  ASSERT_TRUE(t.ok());
  Body body = RenderTemplateBody(*t, 800, 8, 0, 1, kSecond);
  SeriesTable table;
  TallyBody(body, kSecond, table);
  EXPECT_EQ(body.points, 2400u);
  ASSERT_EQ(body.tallies.size(), 24u);
  std::map<std::string, int> kinds;
  for (const SeriesTally& tally : body.tallies) {
    const SeriesKey& key = table.at(tally.series);
    SCOPED_TRACE(key.name + " " + key.source);
    EXPECT_EQ(tally.points, 100u);
    ++kinds[key.name + "/" + std::string(extract::KindName(key.kind))];
    if (key.name == "req") {
      EXPECT_EQ(tally.sum, 100.0);
    }
    if (key.name == "db.latency") {
      EXPECT_GE(tally.sum, 100.0);  // {ms} is 1..500
      EXPECT_LE(tally.sum, 50000.0);
    }
  }
  EXPECT_EQ(kinds,
            (std::map<std::string, int>{{"db.latency/measure", 8}, {"mem/sample", 8}, {"req/count", 8}}));
}

// A captured body (FORMATS.md §1.5 shapes, tests/fixtures/data/heroku-sample) keeps its
// frames and messages; times keep their offsets and the latest lands on the stamped second
// (as deploy/restamp.py does).
TEST(RenderCapturedBody, RestampsEveryFrameKeepingOffsets) {
  const std::string raw = ReadFile(DRAINMET_FIXTURES_DIR "/data/heroku-sample/001.logplex");
  ASSERT_FALSE(raw.empty());
  const std::vector<ParsedFrame> original = ReadFrames(raw);
  ASSERT_GT(original.size(), 10u);
  absl::StatusOr<Body> body = RenderCapturedBody(raw, kSecond);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->frames, original.size());
  const std::vector<ParsedFrame> restamped = ReadFrames(body->bytes);
  ASSERT_EQ(restamped.size(), original.size());
  std::int64_t latest = INT64_MIN;
  for (const ParsedFrame& f : original) latest = std::max(latest, f.micros);
  for (std::size_t i = 0; i < restamped.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(restamped[i].line, original[i].line);
    EXPECT_EQ(restamped[i].app_name, original[i].app_name);
    EXPECT_EQ(restamped[i].proc_id, original[i].proc_id);
    EXPECT_EQ(restamped[i].micros - kSecond * 1'000'000, original[i].micros - latest);
  }
}

// Frames without a usable timestamp and a broken tail are passed on as they are
// (SEMANTICS §1.2, §1.4: drainmet counts them, the load generator does not repair them).
TEST(RenderCapturedBody, KeepsUnstampableFramesAndBrokenTail) {
  const std::string a = "<190>1 2024-03-05T14:02:17+00:00 host app web.1 - count#a=1\n";
  const std::string b = "<190>1 - host app web.1 - count#b=1\n";
  const std::string raw = std::to_string(a.size()) + " " + a + std::to_string(b.size()) + " " + b + "99 tail";
  absl::StatusOr<Body> body = RenderCapturedBody(raw, kSecond);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->frames, 2u);
  const std::string a2 = "<190>1 2024-03-05T14:02:17.000000+00:00 host app web.1 - count#a=1\n";
  EXPECT_EQ(body->bytes,
            std::to_string(a2.size()) + " " + a2 + std::to_string(b.size()) + " " + b + "99 tail");
  EXPECT_EQ(RenderCapturedBody("", kSecond).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace drainmet::loadgen
