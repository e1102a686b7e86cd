// Property (issue 5, "Bad input"): a drain body split into two requests gives the same
// gauges as the whole body, over the fixture data sets (tests/fixtures/data) and the
// replayable failure cases (tests/fixtures/cases), where SEMANTICS §1 defines the split:
//  - at a frame boundary, or anywhere in a run of CR/LF/SP between frames (§1.1: such a
//    run is skipped and a body that ends inside one is complete): identical gauges
//    (§6.3: bit-identical but sum/sum_squares to 1e-12) and the same counters;
//  - inside a frame (§1.2: the frame runs past the end of the first request, which keeps
//    the frames before it and counts one bad_frame): the first request gives exactly the
//    gauges of its whole frames.
// Each request is processed as drainmet replay and the receiver do (drain::ProcessBody),
// its partial buckets merged (§6.3), closed and turned into gauges (§7). Deterministic.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/bucket/partial_bucket.h"
#include "common/drain/processor.h"
#include "common/extract/extract.h"
#include "common/librato/gauge.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/property/property_util.h"

namespace drainmet::property {
namespace {

namespace fs = std::filesystem;

struct Body {
  std::string label;
  std::string tenant;
  extract::DrainOptions options;
  drain::BodyTimes times;
  std::string bytes;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::optional<std::int64_t> ParseClock(const nlohmann::json& meta) {
  if (!meta.contains("clock") || !meta["clock"].is_string()) return std::nullopt;
  return logplex::ParseRfc3339Nanos(meta["clock"].get<std::string>());
}

// Every data file (one POST each) and every case marked `replay` (cases/README.md), with
// its drain options and, for a case, its clock as the receive time of frames without one.
std::vector<Body> FixtureBodies() {
  const fs::path root = DRAINMET_FIXTURES_DIR;
  std::vector<Body> bodies;
  for (const char* set : {"heroku-sample", "legacy-runtime"}) {
    const nlohmann::json drain = nlohmann::json::parse(ReadFile(root / "data" / set / "drain.json"));
    absl::StatusOr<extract::DrainOptions> options =
        extract::ParseDrainQuery(drain.value("query", std::string()), 60);
    EXPECT_TRUE(options.ok()) << set;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(root / "data" / set)) {
      if (entry.path().extension() == ".logplex") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      bodies.push_back({std::string(set) + "/" + file.filename().string(),
                        drain.value("tenant", std::string("t")),
                        options.value_or(extract::DrainOptions{}),
                        {},
                        ReadFile(file)});
    }
  }
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(root / "cases")) {
    if (entry.is_directory()) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  for (const fs::path& dir : cases) {
    const nlohmann::json meta = nlohmann::json::parse(ReadFile(dir / "case.json"));
    if (!meta.value("replay", false)) continue;
    absl::StatusOr<extract::DrainOptions> options =
        extract::ParseDrainQuery(meta.value("query", std::string()), 60);
    if (!options.ok()) continue;  // A case about a rejected query has no gauges to compare.
    drain::BodyTimes times;
    times.received_at_nanos = ParseClock(meta);
    bodies.push_back(
        {"cases/" + dir.filename().string(), "t", *options, times, ReadFile(dir / "body.logplex")});
  }
  return bodies;
}

struct Outcome {
  std::vector<librato::Gauge> gauges;
  telemetry::Counters counters;
};

// The requests `pieces` of one drain, each processed on its own, their partial buckets
// merged, closed (as replay does at the end of its input) and turned into gauges.
Outcome Replay(const Body& body, const std::vector<std::string_view>& pieces) {
  Outcome outcome;
  bucket::BucketMap merged;
  for (const std::string_view piece : pieces) {
    bucket::BucketMap request;
    drain::ProcessBody(body.tenant, body.options, piece, body.times, request, outcome.counters);
    merged.Merge(std::move(request));
  }
  std::vector<bucket::ClosedBucket> closed = merged.TakeAll();
  outcome.gauges = librato::BuildGauges(closed, outcome.counters);
  return outcome;
}

// Offsets where SEMANTICS §1.1 lets a body be cut without changing it: each frame's start
// (LEN's first digit), its end, and every byte of the CR/LF/SP run between (inclusive),
// up to where framing ends. `inside` gets offsets strictly inside frames, each paired with
// the start of its frame.
void SplitPoints(std::string_view body, std::vector<std::size_t>& between,
                 std::vector<std::pair<std::size_t, std::size_t>>& inside) {
  logplex::FrameReader reader(body);
  std::string_view frame;
  std::size_t end = 0;  // End of the previous frame.
  for (;;) {
    const logplex::FrameStatus status = reader.Next(&frame);
    if (status != logplex::FrameStatus::kFrame && status != logplex::FrameStatus::kEmpty) break;
    if (status == logplex::FrameStatus::kEmpty) continue;  // Rare; its bytes are "0 ".
    const std::size_t frame_end = static_cast<std::size_t>(frame.data() - body.data()) + frame.size();
    // The frame starts at its LEN: after the whitespace run that follows `end`.
    std::size_t start = end;
    while (start < body.size() && (body[start] == '\r' || body[start] == '\n' || body[start] == ' ')) ++start;
    for (std::size_t at = end; at <= start; ++at) between.push_back(at);
    for (std::size_t at = start + 1; at < frame_end; ++at) inside.emplace_back(at, start);
    end = frame_end;
  }
  std::size_t tail = end;
  while (tail < body.size() && (body[tail] == '\r' || body[tail] == '\n' || body[tail] == ' ')) ++tail;
  for (std::size_t at = end; at <= tail; ++at) between.push_back(at);
}

// Counters that must not change when a body is split between frames.
void ExpectSameCounters(const telemetry::Counters& want, const telemetry::Counters& got,
                        const std::string& where) {
  EXPECT_EQ(want.frames, got.frames) << where;
  EXPECT_EQ(want.bad_frame, got.bad_frame) << where;
  EXPECT_EQ(want.bad_timestamp, got.bad_timestamp) << where;
  EXPECT_EQ(want.bad_value, got.bad_value) << where;
  EXPECT_EQ(want.bad_name, got.bad_name) << where;
  EXPECT_EQ(want.name_conflict, got.name_conflict) << where;
}

// §1.1, §6.3: a split between frames changes nothing. Every split point of the cases and
// of the first data files, and 12 seeded random ones per other data file.
TEST(ReplaySplitProperty, SplitBetweenFramesGivesTheWholeBodysGauges_Semantics1_1) {
  const std::vector<Body> bodies = FixtureBodies();
  ASSERT_GT(bodies.size(), 150u);
  std::mt19937_64 rng(20240305);
  std::size_t checked = 0;
  for (const Body& body : bodies) {
    const Outcome whole = Replay(body, {body.bytes});
    std::vector<std::size_t> between;
    std::vector<std::pair<std::size_t, std::size_t>> inside;
    SplitPoints(body.bytes, between, inside);
    ASSERT_FALSE(between.empty()) << body.label;
    const bool all = body.label.starts_with("cases/") || body.label.ends_with("/001.logplex");
    std::vector<std::size_t> chosen = between;
    if (!all) {
      std::shuffle(chosen.begin(), chosen.end(), rng);
      chosen.resize(std::min<std::size_t>(chosen.size(), 12));
    }
    for (const std::size_t at : chosen) {
      const std::string_view bytes = body.bytes;
      const Outcome split = Replay(body, {bytes.substr(0, at), bytes.substr(at)});
      const std::string where = body.label + " split at byte " + std::to_string(at);
      ExpectSameGauges(whole.gauges, split.gauges, where);
      ExpectSameCounters(whole.counters, split.counters, where);
      ++checked;
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(checked, 2000u);
}

// §1.2: a cut inside a frame leaves the first request with the frames before it and one
// bad_frame: exactly the gauges of the body up to that frame's start. 6 seeded random cuts
// per body.
TEST(ReplaySplitProperty, SplitInsideAFrameKeepsTheFramesBefore_Semantics1_2) {
  const std::vector<Body> bodies = FixtureBodies();
  std::mt19937_64 rng(5);
  std::size_t checked = 0;
  for (const Body& body : bodies) {
    std::vector<std::size_t> between;
    std::vector<std::pair<std::size_t, std::size_t>> inside;
    SplitPoints(body.bytes, between, inside);
    std::shuffle(inside.begin(), inside.end(), rng);
    inside.resize(std::min<std::size_t>(inside.size(), 6));
    for (const auto& [at, frame_start] : inside) {
      const std::string_view bytes = body.bytes;
      const Outcome prefix = Replay(body, {bytes.substr(0, frame_start)});
      const Outcome first = Replay(body, {bytes.substr(0, at)});
      const std::string where = body.label + " cut at byte " + std::to_string(at);
      ExpectSameGauges(prefix.gauges, first.gauges, where);
      EXPECT_EQ(first.counters.bad_frame, prefix.counters.bad_frame + 1) << where;
      EXPECT_EQ(first.counters.frames, prefix.counters.frames) << where;
      ++checked;
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(checked, 1000u);
}

}  // namespace
}  // namespace drainmet::property
