#include "common/telemetry/counters.h"
#include "common/telemetry/log.h"
#include "common/telemetry/metrics.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace drainmet::telemetry {
namespace {

TEST(CountersTest, AddAndJsonCarryEveryField) {
  Counters a;
  a.frames = 3;
  a.bad_value = 1;
  Counters b;
  b.frames = 2;
  b.retried = 4;
  a += b;
  const nlohmann::json j = nlohmann::json::parse(a.ToJson());
  EXPECT_EQ(j["frames"], 5);
  EXPECT_EQ(j["bad_value"], 1);
  EXPECT_EQ(j["retried"], 4);
  // SEMANTICS §8's names, all present.
  for (const char* key :
       {"frames", "bad_frame", "bad_timestamp", "bad_value", "bad_name", "name_conflict", "points", "late",
        "future", "duplicate_request", "posted", "rejected", "expired", "retried"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST(MetricsTest, SnapshotAndTextReflectCounters) {
  Metrics m;
  Counters c;
  c.frames = 7;
  c.late = 2;
  c.posted = 5;
  m.Add(c);
  m.Add(c);
  m.CountHttpResponse(204);
  m.CountOutputRequest("librato", "429");
  const Counters s = m.Snapshot();
  EXPECT_EQ(s.frames, 14u);
  EXPECT_EQ(s.late, 4u);
  EXPECT_EQ(s.posted, 10u);
  const std::string text = m.RenderText();
  EXPECT_NE(text.find("drainmet_frames_total 14"), std::string::npos) << text;
  EXPECT_NE(text.find("drainmet_points_dropped_total{reason=\"late\"} 4"), std::string::npos);
  EXPECT_NE(text.find("drainmet_http_requests_total{code=\"204\"} 1"), std::string::npos);
  EXPECT_NE(text.find("drainmet_output_requests_total{output=\"librato\",result=\"429\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("drainmet_emission_delay_seconds_bucket"), std::string::npos);
}

TEST(LogTest, LogfmtValueQuotesOnlyWhenNeeded) {
  EXPECT_EQ(LogfmtValue("web.1"), "web.1");
  EXPECT_EQ(LogfmtValue(""), "\"\"");
  EXPECT_EQ(LogfmtValue("a b"), "\"a b\"");
  EXPECT_EQ(LogfmtValue("a=b"), "\"a=b\"");
  EXPECT_EQ(LogfmtValue("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
  EXPECT_EQ(LogfmtValue(std::string_view("\x01", 1)), "\"\\x01\"");
}

TEST(LogTest, ParseLogLevel) {
  Level l;
  EXPECT_TRUE(ParseLogLevel("debug", &l));
  EXPECT_EQ(l, Level::kDebug);
  EXPECT_TRUE(ParseLogLevel("error", &l));
  EXPECT_EQ(l, Level::kError);
  EXPECT_FALSE(ParseLogLevel("loud", &l));
}

}  // namespace
}  // namespace drainmet::telemetry
