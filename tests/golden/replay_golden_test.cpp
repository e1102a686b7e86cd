// Golden tests of `drainmet replay` (SEMANTICS §1-§8 end to end): the shared data sets
// (tests/fixtures/data, expected.jsonl and expected-stats.json from an independent model)
// and every small case of tests/fixtures/cases whose case.json says `replay: true`.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/extract/extract.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/standalone/replay.h"
#include "tests/golden/gauge_compare.h"

namespace drainmet::standalone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kFixtures = DRAINMET_FIXTURES_DIR;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ReplayOutput {
  std::vector<std::string> lines;  // request bodies, one per line
  std::vector<json> gauges;
  telemetry::Counters counters;
};

ReplayOutput RunReplay(const std::vector<std::string>& files, const ReplayOptions& options) {
  ReplayOutput out;
  std::FILE* tmp = std::tmpfile();
  EXPECT_NE(tmp, nullptr);
  absl::Status status = Replay(files, options, tmp, out.counters);
  EXPECT_TRUE(status.ok()) << status;
  std::rewind(tmp);
  std::string text;
  char buffer[1 << 16];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, tmp)) > 0) text.append(buffer, n);
  std::fclose(tmp);
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    out.lines.push_back(line);
    json body = json::parse(line);  // throws (fails the test) on invalid JSON
    EXPECT_EQ(body.size(), 1u) << "a request body holds only \"gauges\" (SEMANTICS 7.2)";
    EXPECT_LE(body.at("gauges").size(), 300u) << "at most 300 gauges per request (SEMANTICS 7.4)";
    for (auto& g : body.at("gauges")) out.gauges.push_back(g);
  }
  return out;
}

void ExpectStats(const json& want, const telemetry::Counters& got) {
  const json got_json = json::parse(got.ToJson());
  for (const auto& [key, value] : want.items()) {
    ASSERT_TRUE(got_json.contains(key)) << key;
    EXPECT_EQ(got_json[key], value) << "counter " << key;
  }
}

std::vector<std::string> BodiesOf(const fs::path& set) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(set)) {
    if (entry.path().extension() == ".logplex") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class DataSetTest : public ::testing::TestWithParam<std::string> {};

// SEMANTICS §1-§8 on realistic drains: exactly the gauges and counters of the model.
TEST_P(DataSetTest, ReplayGivesExpectedGaugesAndStats) {
  const fs::path set = kFixtures / "data" / GetParam();
  const json drain = json::parse(ReadAll(set / "drain.json"));
  absl::StatusOr<extract::DrainOptions> options =
      extract::ParseDrainQuery(drain.at("query").get<std::string>(), 60);
  ASSERT_TRUE(options.ok()) << options.status();
  ReplayOptions replay;
  replay.drain = *options;
  const std::vector<std::string> files = BodiesOf(set);
  ASSERT_EQ(files.size(), drain.at("files").get<std::size_t>());

  const ReplayOutput out = RunReplay(files, replay);
  std::vector<json> want;
  std::istringstream expected(ReadAll(set / "expected.jsonl"));
  for (std::string line; std::getline(expected, line);) {
    if (!line.empty()) want.push_back(json::parse(line));
  }
  ASSERT_GT(want.size(), 1000u);
  const std::vector<std::string> diffs = testing::DiffGauges(want, out.gauges);
  for (std::size_t i = 0; i < std::min<std::size_t>(diffs.size(), 40); ++i) ADD_FAILURE() << diffs[i];
  EXPECT_EQ(diffs.size(), 0u);
  EXPECT_EQ(out.gauges.size(), want.size());
  ExpectStats(json::parse(ReadAll(set / "expected-stats.json")), out.counters);
}

// SEMANTICS §7.4: the order of gauges across requests is the order of expected.jsonl
// (name, source, measure_time), so replays diff cleanly against it.
TEST(DataSetOrderTest, RequestsFollowNameSourceTimeOrder) {
  ReplayOptions replay;
  const ReplayOutput out = RunReplay(BodiesOf(kFixtures / "data" / "heroku-sample"), replay);
  ASSERT_FALSE(out.gauges.empty());
  for (std::size_t i = 1; i < out.gauges.size(); ++i) {
    ASSERT_LT(testing::IdOf(out.gauges[i - 1]), testing::IdOf(out.gauges[i])) << i;
  }
  // 2,649 gauges: 8 full requests of 300 and one of 249.
  ASSERT_EQ(out.lines.size(), 9u);
}

INSTANTIATE_TEST_SUITE_P(SharedData, DataSetTest, ::testing::Values("heroku-sample", "legacy-runtime"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Every case of tests/fixtures/cases with `replay: true`, through the replay path.
class CaseReplayTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CaseReplayTest, GivesExpectedGaugesAndStats) {
  const fs::path dir = kFixtures / "cases" / GetParam();
  const json c = json::parse(ReadAll(dir / "case.json"));
  if (!c.value("replay", false)) GTEST_SKIP() << GetParam() << " is not a replay case";
  SCOPED_TRACE(GetParam() + ": " + c.at("title").get<std::string>());
  absl::StatusOr<extract::DrainOptions> options =
      extract::ParseDrainQuery(c.at("query").get<std::string>(), 60);
  ASSERT_TRUE(options.ok()) << options.status();
  ReplayOptions replay;
  replay.drain = *options;
  absl::StatusOr<std::int64_t> clock = ParseReceivedAt(c.at("clock").get<std::string>());
  ASSERT_TRUE(clock.ok());
  replay.received_at_nanos = *clock;
  const ReplayOutput out = RunReplay({(dir / "body.logplex").string()}, replay);
  const json& expect = c.at("expect");
  const std::vector<json> want = expect.at("gauges").get<std::vector<json>>();
  const std::vector<std::string> diffs = testing::DiffGauges(want, out.gauges);
  for (const std::string& d : diffs) ADD_FAILURE() << d;
  ExpectStats(expect.at("stats"), out.counters);
  for (const json& g : out.gauges) {
    for (const auto& name : expect.value("absent_names", json::array())) EXPECT_NE(g.at("name"), name);
    for (const auto& source : expect.value("absent_sources", json::array())) {
      EXPECT_NE(g.value("source", std::string()), source.get<std::string>());
    }
    for (const auto& part : expect.value("absent_names_containing", json::array())) {
      EXPECT_EQ(g.at("name").get<std::string>().find(part.get<std::string>()), std::string::npos);
    }
    for (const auto& part : expect.value("absent_sources_containing", json::array())) {
      EXPECT_EQ(g.value("source", std::string()).find(part.get<std::string>()), std::string::npos);
    }
  }
}

std::vector<std::string> CaseIds() {
  std::vector<std::string> ids;
  for (const auto& entry : fs::directory_iterator(kFixtures / "cases")) {
    if (entry.is_directory()) ids.push_back(entry.path().filename().string());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// C01 C03 C04 C05 C06 C07 C09 C10 C11 C13 C15 C16 C17 C19 (the cases in tests/fixtures/cases).
INSTANTIATE_TEST_SUITE_P(Cases, CaseReplayTest, ::testing::ValuesIn(CaseIds()),
                         [](const auto& info) { return info.param; });

// `--received-at`: without it a frame with a bad timestamp yields no points (SEMANTICS 1.4).
TEST(ReplayReceivedAtTest, WithoutItBadTimestampFramesYieldNothing) {
  const std::string path = ::testing::TempDir() + "/bad_ts.logplex";
  const std::string msg = "<190>1 - host app web.1 - count#x=1\n";
  std::ofstream(path) << msg.size() << ' ' << msg;
  ReplayOptions replay;
  ReplayOutput out = RunReplay({path}, replay);
  EXPECT_TRUE(out.gauges.empty());
  EXPECT_EQ(out.counters.bad_timestamp, 1u);
  EXPECT_EQ(out.counters.points, 0u);
  replay.received_at_nanos = 1709633730LL * 1'000'000'000;
  out = RunReplay({path}, replay);
  ASSERT_EQ(out.gauges.size(), 1u);
  EXPECT_EQ(out.gauges[0].at("measure_time"), 1709633700);
  EXPECT_EQ(out.counters.points, 1u);
}

TEST(ReplayReceivedAtTest, ParsesRfc3339AndUnixSeconds) {
  EXPECT_EQ(*ParseReceivedAt("2024-03-05T10:16:00Z"), 1709633760LL * 1'000'000'000);
  EXPECT_EQ(*ParseReceivedAt("1709633760"), 1709633760LL * 1'000'000'000);
  EXPECT_EQ(*ParseReceivedAt("1709633760.5"), 1709633760LL * 1'000'000'000 + 500'000'000);
  EXPECT_FALSE(ParseReceivedAt("yesterday").ok());
  EXPECT_FALSE(ParseReceivedAt("").ok());
}

TEST(ReplayFilesTest, MissingFileIsNotFound) {
  ReplayOptions replay;
  telemetry::Counters counters;
  EXPECT_TRUE(absl::IsNotFound(Replay({"/nonexistent/x.logplex"}, replay, stdout, counters)));
}

}  // namespace
}  // namespace drainmet::standalone
