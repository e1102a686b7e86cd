// Hostile names, sources and values through the whole path, drain body -> points ->
// buckets -> gauges -> the Librato request body (drain::ProcessBody, librato::BuildGauges,
// RenderRequestBody): nothing the API would refuse reaches it (SEMANTICS §3.3, §5.1;
// FORMATS.md §5.1 "Float limits", §5.2 name and source rules).

#include <cmath>
#include <cstdint>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/bucket/partial_bucket.h"
#include "common/drain/processor.h"
#include "common/extract/extract.h"
#include "common/librato/gauge.h"
#include "common/telemetry/counters.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/drain_text.h"

namespace drainmet::librato {
namespace {

using support::Framed;

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kT0 = 1709633700;  // 2024-03-05T10:15:00Z

struct Sent {
  std::vector<Gauge> gauges;
  std::vector<nlohmann::json> posted;  // Every gauge object of every request body.
  telemetry::Counters counters;
};

// `lines` as the MSG of frames from `app`/`proc` at kT0 + 1 s (and one frame with a "-"
// timestamp, received at kT0 + 2 s), through a drain with `query`, to request bodies of
// at most 300 gauges, each parsed back as JSON.
Sent Drive(std::string_view query, const std::vector<std::string>& lines, std::string_view app = "app",
           std::string_view proc = "web.1") {
  absl::StatusOr<extract::DrainOptions> options = extract::ParseDrainQuery(query, 60);
  EXPECT_TRUE(options.ok()) << options.status();
  std::string body;
  for (const std::string& line : lines) {
    body += Framed("<190>1 2024-03-05T10:15:01+00:00 host " + std::string(app) + " " + std::string(proc) +
                   " - " + line + "\n");
  }
  drain::BodyTimes times;
  times.received_at_nanos = (kT0 + 2) * kSec;
  Sent sent;
  bucket::BucketMap partials;
  drain::ProcessBody("acme", options.value_or(extract::DrainOptions{}), body, times, partials, sent.counters);
  std::vector<bucket::ClosedBucket> closed = partials.TakeAll();
  sent.gauges = BuildGauges(closed, sent.counters);
  for (std::size_t i = 0; i < sent.gauges.size(); i += 300) {
    const std::span<const Gauge> chunk(sent.gauges.data() + i,
                                       std::min<std::size_t>(300, sent.gauges.size() - i));
    const std::string request = RenderRequestBody(chunk);
    const nlohmann::json json = nlohmann::json::parse(request, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(json.is_discarded()) << "not JSON: " << request;
    if (json.is_discarded()) continue;
    for (const nlohmann::json& gauge : json["gauges"]) sent.posted.push_back(gauge);
  }
  return sent;
}

bool ApiName(const std::string& text) {
  static const std::regex kName("[A-Za-z0-9.:_-]{1,255}");
  return std::regex_match(text, kName);
}

// FORMATS.md §5.1: a number whose base-10 exponent passes 126 refuses the whole request;
// NaN and infinities are not JSON.
bool ApiNumber(const nlohmann::json& number) {
  if (!number.is_number()) return false;
  const double v = number.get<double>();
  return std::isfinite(v) && std::fabs(v) < 1e127;
}

// Every posted gauge obeys the API's rules (FORMATS.md §5.2, SEMANTICS §5.1).
void ExpectAllAccepted(const Sent& sent) {
  for (const nlohmann::json& gauge : sent.posted) {
    ASSERT_TRUE(gauge.contains("name") && gauge["name"].is_string()) << gauge.dump();
    EXPECT_TRUE(ApiName(gauge["name"].get<std::string>())) << gauge.dump();
    if (gauge.contains("source")) {
      const std::string source = gauge["source"].get<std::string>();
      EXPECT_TRUE(ApiName(source)) << gauge.dump();
      std::string lower = source;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      EXPECT_NE(lower, "all") << "`all` is reserved: " << gauge.dump();
    }
    EXPECT_EQ(gauge.contains("value"), !gauge.contains("count")) << gauge.dump();
    for (const char* field : {"value", "sum", "min", "max", "sum_squares"}) {
      if (gauge.contains(field)) {
        EXPECT_TRUE(ApiNumber(gauge[field])) << field << " in " << gauge.dump();
      }
    }
    if (gauge.contains("count")) {
      EXPECT_TRUE(gauge.contains("sum")) << gauge.dump();
    }
  }
}

const nlohmann::json* Find(const Sent& sent, std::string_view name, std::string_view source = "") {
  for (const nlohmann::json& gauge : sent.posted) {
    if (gauge["name"] == name && gauge.value("source", std::string()) == source) return &gauge;
  }
  return nullptr;
}

// §5.1: names with bytes outside [A-Za-z0-9.:_-] are sanitised; empty names and names
// over 255 bytes are dropped as bad_name.
TEST(HostileInputTest, NamesThatTheApiWouldRefuseNeverReachIt_Semantics5_1) {
  const std::string n255(255, 'n');
  const std::vector<std::string> lines = {
      "measure#caf\xC3\xA9=1 count#a/b{c}=2 sample#\x7F\xFF\x80=3 count#a%20b=1 measure#[x]=1",
      "measure#=1 count#= sample# measure#",                                      // empty names
      "count#" + n255 + "=1 count#" + n255 + "x=1",                               // 255 ok, 256 dropped
      "measure#" + std::string(250, 'm') + "=5",                                  // derived names pass 255
      "measure#count#x=1 measure.legacy.name\xE2\x9C\x93=2 measure#a:b.c-d_e=3",  // §4.1
      "measure=load\xF0\x9F\x98\x80"
      "avg val=0.5 source=heroku.1.web.1.abc",  // §4.4 legacy name
  };
  const Sent sent = Drive("", lines);
  ExpectAllAccepted(sent);
  EXPECT_NE(Find(sent, "caf__"), nullptr) << "é is two bytes, each becomes _";
  EXPECT_NE(Find(sent, "a_b_c_"), nullptr);
  EXPECT_NE(Find(sent, "___"), nullptr);
  EXPECT_NE(Find(sent, "count_x"), nullptr);
  EXPECT_NE(Find(sent, n255), nullptr);
  EXPECT_EQ(Find(sent, n255 + "x"), nullptr);
  EXPECT_NE(Find(sent, std::string(250, 'm')), nullptr);
  EXPECT_EQ(Find(sent, std::string(250, 'm') + ".median"), nullptr) << "257 bytes: not sent";
  EXPECT_GE(sent.counters.bad_name, 1u + 3u) << "256-byte count, three derived names";
}

// §4.7 + §5.1: hostile prefixes (percent-encoded non-ASCII, spaces, long) are sanitised
// with the name; a prefixed name over 255 bytes is dropped.
TEST(HostileInputTest, PrefixesAreSanitisedAndBoundedWithTheName_Semantics4_7) {
  const Sent sent = Drive("prefix=%E2%9C%93%20x&source-prefix=s%2Fp%00q",
                          {"count#a=1 source=web.1", "count#b=1", "count#" + std::string(252, 'c') + "=1"});
  ExpectAllAccepted(sent);
  EXPECT_NE(Find(sent, "____x.a", "s_p_q.web.1"), nullptr);
  EXPECT_NE(Find(sent, "____x.b", "s_p_q"), nullptr);
  EXPECT_EQ(sent.posted.size(), 2u) << "the 252-byte name passes 255 with the prefix";
  EXPECT_EQ(sent.counters.bad_name, 1u);
}

// §4.2, §5.1: sources: `all` in any case becomes `all_`; bad bytes become `_`; over 255
// bytes the point is dropped; an empty source= is no source.
TEST(HostileInputTest, SourcesThatTheApiWouldRefuseNeverReachIt_Semantics5_1) {
  const std::vector<std::string> lines = {
      "count#a=1 source=all",
      "count#b=1 source=ALL",
      "count#c=1 source=\"a b\\u0000c\\n\xC3\xA9\"",
      "count#d=1 source=",
      "count#e=1 source=" + std::string(256, 's'),
      "count#f=1 source=" + std::string(255, 's'),
      "count#g=1 source=\"\"",
  };
  const Sent sent = Drive("", lines);
  ExpectAllAccepted(sent);
  EXPECT_NE(Find(sent, "a", "all_"), nullptr);
  EXPECT_NE(Find(sent, "b", "all_"), nullptr);
  EXPECT_NE(Find(sent, "c", "a_b_c___"), nullptr);
  EXPECT_NE(Find(sent, "d"), nullptr);
  EXPECT_EQ(Find(sent, "e", std::string(256, 's')), nullptr);
  EXPECT_NE(Find(sent, "f", std::string(255, 's')), nullptr);
  EXPECT_NE(Find(sent, "g"), nullptr);
  EXPECT_EQ(sent.counters.bad_name, 1u);
}

// §3.3: NaN, infinities, hex, magnitudes over 1e126 and huge exponents are bad_value and
// never sent; underflow is 0; every other value that reaches the body is a number the API
// accepts.
TEST(HostileInputTest, ValuesThatTheApiWouldRefuseNeverReachIt_Semantics3_3) {
  const std::vector<std::string> lines = {
      "sample#a=NaN sample#a=nan sample#a=-nan sample#a=inf sample#a=-Infinity sample#a=INF",
      "sample#b=0x1F sample#b=-0X10 sample#b=1e127 sample#b=-1.0000001e126 sample#b=1e400",
      "sample#c=1e99999999999999999999 sample#c=1e-99999999999999999999ms",
      "sample#d=" + std::string(5000, '9') + " sample#e=0." + std::string(5000, '0') + "1",
      "sample#f=1e126 sample#g=-1e126 sample#h=1e-400 sample#i=\" 1\" sample#j=\"1e126\"",
      "measure#k=-- measure#k=+ measure#k=. measure#k=e5 measure#k=1e",
  };
  const Sent sent = Drive("", lines);
  ExpectAllAccepted(sent);
  EXPECT_EQ(Find(sent, "a"), nullptr);
  EXPECT_EQ(Find(sent, "b"), nullptr);
  ASSERT_NE(Find(sent, "c"), nullptr) << "1e-huge underflows to 0";
  EXPECT_EQ((*Find(sent, "c"))["value"], 0);
  EXPECT_EQ(Find(sent, "d"), nullptr) << "5000 nines is over 1e126";
  ASSERT_NE(Find(sent, "e"), nullptr);
  EXPECT_EQ((*Find(sent, "f"))["value"].get<double>(), 1e126);
  EXPECT_EQ((*Find(sent, "g"))["value"].get<double>(), -1e126);
  EXPECT_EQ((*Find(sent, "h"))["value"], 0);
  EXPECT_EQ(Find(sent, "i"), nullptr) << "a quoted value with a leading space is not a number";
  ASSERT_NE(Find(sent, "j"), nullptr);
  // "1e" is 1 with units "e" (§3.1); the others have no number.
  ASSERT_NE(Find(sent, "k"), nullptr);
  EXPECT_EQ((*Find(sent, "k"))["count"], 1);
  EXPECT_EQ(sent.counters.bad_value, 6u + 5u + 1u + 1u + 1u + 4u);
}

// FORMATS.md §5.1 "Float limits": every point is at most 1e126, but a sum of many, or a
// square of one near 1e64, is not: a count or complex gauge whose sum passes the API's
// limit is not sent (bad_value) and an out-of-range sum_squares is left out; nothing
// makes the API refuse the request.
TEST(HostileInputTest, SumsAndSquaresPastTheApiLimitNeverReachIt_Formats5_1) {
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i) lines.push_back("count#many=1e126 measure#big=9e125 count#ok=1e125");
  lines.push_back("measure#square=1e64 measure#square=-2e70 measure#fine=1e63");
  const Sent sent = Drive("", lines);
  ExpectAllAccepted(sent);
  EXPECT_EQ(Find(sent, "many"), nullptr) << "sum 2e127";
  ASSERT_NE(Find(sent, "ok"), nullptr);
  EXPECT_DOUBLE_EQ((*Find(sent, "ok"))["value"].get<double>(), 2e126);
  EXPECT_EQ(Find(sent, "big"), nullptr) << "sum 1.8e127";
  ASSERT_NE(Find(sent, "big.median"), nullptr) << "percentiles are values, within the limit";
  EXPECT_EQ((*Find(sent, "big.median"))["value"].get<double>(), 9e125);
  const nlohmann::json* square = Find(sent, "square");
  ASSERT_NE(square, nullptr);
  EXPECT_FALSE(square->contains("sum_squares")) << square->dump();
  EXPECT_EQ((*square)["count"], 2);
  const nlohmann::json* fine = Find(sent, "fine");
  ASSERT_NE(fine, nullptr);
  ASSERT_TRUE(fine->contains("sum_squares"));
  EXPECT_DOUBLE_EQ((*fine)["sum_squares"].get<double>(), 1e126);
  EXPECT_EQ(sent.counters.bad_value, 2u);
}

// §4.3, §4.4, §4.6: router fields, legacy runtime metrics and loss notices with hostile
// codes, names and counts.
TEST(HostileInputTest, RouterLegacyAndLossNoticesStayWithinTheRules_Semantics4_3) {
  const Sent router =
      Drive("",
            {"at=error code=H12/../\xFF status=5\xC3\xA9 connect=NaNms service=1e999ms bytes=-inf",
             "at=info code= status= connect=1e126ms service=7ms bytes=" + std::string(400, '9')},
            "heroku", "router");
  ExpectAllAccepted(router);
  EXPECT_NE(Find(router, "router.error.H12_..__"), nullptr);
  EXPECT_NE(Find(router, "router.service"), nullptr);
  const Sent legacy = Drive("",
                            {"measure=\"a b\" val=NaN source=heroku.1.web.1.x",
                             "measure=" + std::string(300, 'l') + " val=1 source=heroku.1.web.1.x",
                             "measure=ok val=1e127 units=\xFF", "measure=ok2 val=2 units=\"\\u0000\""},
                            "heroku", "web.1");
  ExpectAllAccepted(legacy);
  EXPECT_EQ(Find(legacy, "ok"), nullptr);
  ASSERT_NE(Find(legacy, "ok2"), nullptr);
  const Sent loss =
      Drive("",
            {"Error L10 (output buffer overflow): " + std::string(200, '9') + " messages dropped",
             "Error L12: -5 messages dropped since 2024-03-05T10:15:00Z", "Error L13: 1e300 messages lost"},
            "heroku", "logplex");
  ExpectAllAccepted(loss);
}

// Direct: BuildGauges and AppendGaugeJson on buckets whose sums pass the API's limit
// (e.g. decoded from Redis after many requests), FORMATS.md §5.1.
TEST(HostileInputTest, BuildGaugesDropsSumsTheApiWouldRefuse_Formats5_1) {
  std::vector<bucket::ClosedBucket> buckets(3);
  const extract::Kind kinds[] = {extract::Kind::kCount, extract::Kind::kMeasure, extract::Kind::kSample};
  for (int i = 0; i < 3; ++i) {
    buckets[i].key = {"acme", std::string(1, static_cast<char>('a' + i)), "", kinds[i], 60, kT0};
    for (int n = 0; n < 12; ++n)
      buckets[i].bucket.Add(-1e126, kT0 * kSec, "", kinds[i] == extract::Kind::kMeasure);
  }
  telemetry::Counters counters;
  const std::vector<Gauge> gauges = BuildGauges(buckets, counters);
  std::vector<std::string> names;
  for (const Gauge& gauge : gauges) names.push_back(gauge.name);
  EXPECT_EQ(names, (std::vector<std::string>{"b.median", "b.perc95", "b.perc99", "c"}));
  EXPECT_EQ(counters.bad_value, 2u);

  Gauge complex;
  complex.name = "x";
  complex.complex = true;
  complex.count = 1;
  complex.sum = complex.min = complex.max = 1e64;
  complex.sum_squares = 1e128;
  std::string json;
  AppendGaugeJson(complex, json);
  EXPECT_EQ(json,
            R"({"name":"x","measure_time":0,"period":0,"count":1,"sum":1e+64,"min":1e+64,"max":1e+64})");
  complex.sum_squares = 1e127;  // The double nearest 10^127 prints as 1e+127: refused.
  json.clear();
  AppendGaugeJson(complex, json);
  EXPECT_EQ(json.find("sum_squares"), std::string::npos) << json;
  complex.sum_squares = std::nextafter(1e127, 0.0);  // 9.999999999999998e+126: accepted.
  json.clear();
  AppendGaugeJson(complex, json);
  EXPECT_NE(json.find(R"("sum_squares":9.999999999999998e+126)"), std::string::npos) << json;
}

}  // namespace
}  // namespace drainmet::librato
