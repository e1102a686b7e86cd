#include "common/extract/extract.h"

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/allocation_counter.h"

namespace drainmet::extract {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::int64_t kTime = 1709633717'123456000;  // 2024-03-05T10:15:17.123456Z

// A point with owned strings, for comparisons.
struct Got {
  Kind kind = Kind::kMeasure;
  std::string name;
  double value = 0;
  std::string units;
  std::string source;
  bool operator==(const Got&) const = default;
};

void PrintTo(const Got& g, std::ostream* os) {
  *os << KindName(g.kind) << " " << g.name << "=" << g.value << " units='" << g.units << "' source='"
      << g.source << "'";
}

Got M(std::string name, double value, std::string units = "", std::string source = "") {
  return Got{Kind::kMeasure, std::move(name), value, std::move(units), std::move(source)};
}
Got C(std::string name, double value, std::string units = "", std::string source = "") {
  return Got{Kind::kCount, std::move(name), value, std::move(units), std::move(source)};
}
Got S(std::string name, double value, std::string units = "", std::string source = "") {
  return Got{Kind::kSample, std::move(name), value, std::move(units), std::move(source)};
}

logplex::Frame MakeFrame(std::string_view app, std::string_view proc, std::string_view line) {
  logplex::Frame frame;
  frame.timestamp = "2024-03-05T10:15:17.123456+00:00";
  frame.hostname = "host";
  frame.app_name = app;
  frame.proc_id = proc;
  frame.msg_id = "-";
  frame.line = line;
  return frame;
}
logplex::Frame App(std::string_view line) { return MakeFrame("app", "web.1", line); }
logplex::Frame Router(std::string_view line) { return MakeFrame("heroku", "router", line); }
logplex::Frame Dyno(std::string_view line) { return MakeFrame("heroku", "web.1", line); }

struct Result {
  std::vector<Got> points;
  telemetry::Counters counters;
};

Result ExtractLine(const logplex::Frame& frame, const DrainOptions& options = {}) {
  Extractor extractor(options);
  Result result;
  extractor.Extract(frame, kTime, result.counters, [&](const Point& p) {
    EXPECT_EQ(p.time_unix_nanos, kTime);
    result.points.push_back(
        Got{p.kind, std::string(p.name), p.value, std::string(p.units), std::string(p.source)});
  });
  return result;
}

DrainOptions Options(std::string prefix, std::string source_prefix) {
  DrainOptions options;
  options.prefix = std::move(prefix);
  options.source_prefix = std::move(source_prefix);
  return options;
}

telemetry::Counters Bad(std::uint64_t bad_value, std::uint64_t bad_name) {
  telemetry::Counters counters;
  counters.bad_value = bad_value;
  counters.bad_name = bad_name;
  return counters;
}

TEST(KindNameTest, NamesEachKind) {
  EXPECT_EQ(KindName(Kind::kMeasure), "measure");
  EXPECT_EQ(KindName(Kind::kCount), "count");
  EXPECT_EQ(KindName(Kind::kSample), "sample");
}

// ---- §4.1 l2met conventions, FORMATS.md §3(a) --------------------------------------

TEST(ExtractL2metTest, Formats3aExample1SourceAndThreeKinds) {
  const Result r =
      ExtractLine(App("source=us-east measure#db.latency=4.5ms count#orders.created sample#queue.depth=17"));
  EXPECT_THAT(r.points,
              ElementsAre(M("db.latency", 4.5, "ms", "us-east"), C("orders.created", 1, "", "us-east"),
                          S("queue.depth", 17, "", "us-east")));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractL2metTest, Formats3aExample2NoSource) {
  const Result r =
      ExtractLine(App("measure#http.request=231ms measure#http.request.size=18.2kB at=info path=/signup"));
  EXPECT_THAT(r.points, ElementsAre(M("http.request", 231, "ms"), M("http.request.size", 18.2, "kB")));
}

TEST(ExtractL2metTest, Formats3aExample3NegativeAcceptedUnlikeL2met) {
  // FORMATS.md §6.5 item 4: l2met dropped -3C; SEMANTICS §3.1 takes the sign.
  const Result r = ExtractLine(App("measure.legacy.job=2.5 count#jobs.failed=3 sample#temperature=-3C"));
  EXPECT_THAT(r.points, ElementsAre(M("legacy.job", 2.5), C("jobs.failed", 3), S("temperature", -3, "C")));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractL2metTest, Formats3aUniqueConventionIsIgnored) {
  const Result r = ExtractLine(App("unique#user=alice at=info"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractL2metTest, Formats3aUnitsAsNameSuffixStayInTheName) {
  const Result r = ExtractLine(App("measure#db-query.ms=235"));
  EXPECT_THAT(r.points, ElementsAre(M("db-query.ms", 235)));
}

// SEMANTICS §3.2: a bare key or an empty value means 1 for the l2met prefixes.
TEST(ExtractL2metTest, BareOrEmptyValueMeansOne) {
  const Result r = ExtractLine(App("count#a count#b= count#c=\"\" measure#d= sample#e"));
  EXPECT_THAT(r.points, ElementsAre(C("a", 1), C("b", 1), C("c", 1), M("d", 1), S("e", 1)));
}

// FORMATS.md §3(a) value rules, with SEMANTICS §3.1 where l2met differed.
TEST(ExtractL2metTest, ValueRulesOfFormats3a) {
  const Result r =
      ExtractLine(App("measure#a=4ms measure#b=100GB measure#c=21.22MB measure#d=0.5s measure#e=12ms3 "
                      "measure#f=1.2.3 measure#g=348836pages measure#h=1e3 measure#i=+3"));
  EXPECT_THAT(r.points, ElementsAre(M("a", 4, "ms"), M("b", 100, "GB"), M("c", 21.22, "MB"), M("d", 0.5, "s"),
                                    M("e", 12, "ms3"), M("f", 1.2, ".3"), M("g", 348836, "pages"),
                                    M("h", 1000), M("i", 3)));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractL2metTest, QuotedValueIsUnquotedFirst) {
  const Result r = ExtractLine(App("count#x=\"3\" measure#y=\"4.5ms\" measure#z=\" 5\""));
  EXPECT_THAT(r.points, ElementsAre(C("x", 3), M("y", 4.5, "ms")));
  EXPECT_EQ(r.counters, Bad(1, 0));  // A leading space is not a number (§3.3).
}

TEST(ExtractL2metTest, OnlyTheFirstPrefixIsStripped) {
  // §4.1 and FORMATS.md §6.5 item 13: l2met cascaded to `x`.
  const Result r =
      ExtractLine(App("measure#count#x=1 count#measure.y=2 sample#sample#z=3 measure.measure#w=4"));
  EXPECT_THAT(r.points, ElementsAre(M("count_x", 1), C("measure.y", 2), S("sample_z", 3), M("measure_w", 4)));
}

TEST(ExtractL2metTest, EmptyNameIsBadName) {
  const Result r = ExtractLine(App("measure#=5 count# sample#= measure.=1 count#ok"));
  EXPECT_THAT(r.points, ElementsAre(C("ok", 1)));
  EXPECT_EQ(r.counters, Bad(0, 4));
}

TEST(ExtractL2metTest, KeysAreCaseSensitive) {
  const Result r = ExtractLine(App("Measure#x=1 COUNT#y=2 Sample#z=3 measure=1 count=2"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractL2metTest, RepeatedKeysAreEachObserved) {
  // Case C16, SEMANTICS §2.2.
  const Result r =
      ExtractLine(App("measure#page.render=12ms measure#page.render=30ms measure#page.render=18ms "
                      "count#page.views=1 count#page.views=1"));
  EXPECT_THAT(r.points, ElementsAre(M("page.render", 12, "ms"), M("page.render", 30, "ms"),
                                    M("page.render", 18, "ms"), C("page.views", 1), C("page.views", 1)));
}

TEST(ExtractL2metTest, ScientificNotationOfCaseC09) {
  const Result r =
      ExtractLine(App("measure#kafka.send=7.9341e-05s measure#batch.size=2.5E+3 sample#sample.rate=1e-3"));
  EXPECT_THAT(r.points,
              ElementsAre(M("kafka.send", 7.9341e-05, "s"), M("batch.size", 2500), S("sample.rate", 0.001)));
}

TEST(ExtractL2metTest, NegativeValuesOfCaseC10) {
  const Result r =
      ExtractLine(App("sample#queue.delta=-12 measure#clock.skew=-3.5ms count#credits.adjust=-2"));
  EXPECT_THAT(r.points,
              ElementsAre(S("queue.delta", -12), M("clock.skew", -3.5, "ms"), C("credits.adjust", -2)));
}

TEST(ExtractL2metTest, NanInfOverflowAndHexOfCaseC19AreBadValues) {
  const Result r =
      ExtractLine(App("sample#cache.ratio=NaN measure#upload.size=1e400 sample#temp=inf "
                      "measure#hex.val=0x1Fms count#nan.count=nan measure#ok.latency=5ms"));
  EXPECT_THAT(r.points, ElementsAre(M("ok.latency", 5, "ms")));
  EXPECT_EQ(r.counters, Bad(5, 0));
}

TEST(ExtractL2metTest, UnderflowIsZero) {
  const Result r = ExtractLine(App("sample#tiny=1e-400 sample#neg.tiny=-1e-400ms"));
  EXPECT_THAT(r.points, ElementsAre(S("tiny", 0), S("neg.tiny", 0, "ms")));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractL2metTest, PointsCarryTheGivenTime) {
  Extractor extractor(DrainOptions{});
  telemetry::Counters counters;
  std::vector<std::int64_t> times;
  extractor.Extract(App("count#a count#b"), 42, counters,
                    [&](const Point& p) { times.push_back(p.time_unix_nanos); });
  EXPECT_THAT(times, ElementsAre(42, 42));
}

// ---- §2.1 malformed quoted values end the line ----------------------------------------

TEST(ExtractL2metTest, PairsBeforeAnUnterminatedQuoteStand) {
  // FORMATS.md §6.5 item 10: l2met lost the whole line.
  const Result r = ExtractLine(App("source=web.1 count#a=1 msg=\"oops count#b=2"));
  EXPECT_THAT(r.points, ElementsAre(C("a", 1, "", "web.1")));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractL2metTest, ABadEscapeEndsTheLine) {
  const Result r = ExtractLine(App("count#a=1 msg=\"bad \\q escape\" count#b=2"));
  EXPECT_THAT(r.points, ElementsAre(C("a", 1)));
}

TEST(ExtractL2metTest, SourceAfterTheErrorIsNotSeen) {
  const Result r = ExtractLine(App("count#a=1 path=\"/x source=web.2"));
  EXPECT_THAT(r.points, ElementsAre(C("a", 1)));
}

TEST(ExtractL2metTest, EscapedQuotedValuesParse) {
  const Result r = ExtractLine(App("msg=\"say \\\"hi\\\"\" source=\"web\\u002e1\" count#x=\"\\u0032\""));
  EXPECT_THAT(r.points, ElementsAre(C("x", 2, "", "web.1")));
}

// ---- §4.2 source -----------------------------------------------------------------------

struct SourceRow {
  std::string name;
  std::string line;
  std::string source;  // Of the point of `count#x`.
};

class ExtractSourceTest : public testing::TestWithParam<SourceRow> {};

TEST_P(ExtractSourceTest, IsTheFirstSourcePair) {
  const Result r = ExtractLine(App(GetParam().line));
  EXPECT_THAT(r.points, ElementsAre(C("x", 1, "", GetParam().source)));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

INSTANTIATE_TEST_SUITE_P(
    Semantics42, ExtractSourceTest,
    testing::Values(SourceRow{"FirstWins", "source=a count#x source=b", "a"},
                    SourceRow{"AfterThePoint", "count#x source=a", "a"},
                    SourceRow{"NoneAtAll", "count#x", ""},
                    SourceRow{"ProcIdIsNeverTheSource", "dyno=web.1 count#x", ""},
                    SourceRow{"FirstEmptyMeansNone", "source= source=b count#x", ""},
                    SourceRow{"FirstQuotedEmptyMeansNone", "source=\"\" source=b count#x", ""},
                    SourceRow{"FirstBareMeansNone", "source source=b count#x", ""},
                    SourceRow{"QuotedSpaceSanitised", "source=\"us east/1\" count#x", "us_east_1"},
                    SourceRow{"KeyIsCaseSensitive", "Source=a count#x", ""},
                    SourceRow{"AllIsRenamed", "source=all count#x", "all_"},
                    SourceRow{"AllUpperIsRenamed", "source=ALL count#x", "all_"},
                    SourceRow{"AllMixedIsRenamed", "source=aLl count#x", "all_"},
                    SourceRow{"AllLikeIsKept", "source=allx count#x", "allx"},
                    SourceRow{"Utf8Sanitised", "source=caf\xC3\xA9 count#x", "caf__"}),
    [](const testing::TestParamInfo<SourceRow>& info) { return info.param.name; });

// ---- §4.3 router lines, FORMATS.md §3(c) --------------------------------------------

TEST(ExtractRouterTest, InfoLine) {
  const Result r =
      ExtractLine(Router("at=info method=GET path=\"/api/items?id=7\" host=example-app.herokuapp.com "
                         "request_id=0f0e0d0c-1111-2222-3333-444455556666 fwd=\"203.0.113.9\" dyno=web.1 "
                         "connect=0ms service=42ms "
                         "status=200 bytes=1534 protocol=https"));
  EXPECT_THAT(r.points, ElementsAre(M("router.connect", 0, "ms"), M("router.service", 42, "ms"),
                                    C("router.status.2xx", 1), M("router.bytes", 1534)));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractRouterTest, H12ErrorLine) {
  const Result r = ExtractLine(
      Router("at=error code=H12 desc=\"Request timeout\" method=POST path=\"/reports\" "
             "host=example-app.herokuapp.com "
             "request_id=1a2b3c4d-0000-1111-2222-333344445555 fwd=\"198.51.100.7\" dyno=web.2 connect=1ms "
             "service=30000ms status=503 bytes=0 protocol=https"));
  EXPECT_THAT(r.points,
              ElementsAre(C("router.error.H12", 1), M("router.connect", 1, "ms"),
                          M("router.service", 30000, "ms"), C("router.status.5xx", 1), M("router.bytes", 0)));
}

TEST(ExtractRouterTest, EmptyFieldsAreNoObservation) {
  // FORMATS.md §6.5 item 3: l2met recorded these as 1. Also case C11 frame 2.
  const Result r = ExtractLine(Router(
      "at=error code=H10 desc=\"App crashed\" method=GET path=\"/\" host=example-app.herokuapp.com "
      "request_id=9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff fwd=\"192.0.2.44\" dyno= connect= service= status=503 "
      "bytes= protocol=https"));
  EXPECT_THAT(r.points, ElementsAre(C("router.error.H10", 1), C("router.status.5xx", 1)));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractRouterTest, ClientInterruptedLineOfCaseC11) {
  const Result r = ExtractLine(Router(
      "sock=client at=warning code=H27 desc=\"Client Request Interrupted\" method=GET path=\"/feed\" "
      "host=shop.example.com request_id=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee fwd=\"203.0.113.5\" dyno=web.1 "
      "connect=1ms service=2ms status=499 bytes= protocol=https"));
  EXPECT_THAT(r.points, ElementsAre(C("router.error.H27", 1), M("router.connect", 1, "ms"),
                                    M("router.service", 2, "ms"), C("router.status.4xx", 1)));
}

TEST(ExtractRouterTest, QuotedEmptyAndBareFieldsAreNoObservation) {
  const Result r = ExtractLine(Router("connect=\"\" service bytes= status= code= code"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractRouterTest, UnparsableFieldsAreBadValues) {
  const Result r = ExtractLine(Router("connect=fast service=0x10ms bytes=-- status=abc status=2 code=H13"));
  EXPECT_THAT(r.points, ElementsAre(C("router.status.2xx", 1), C("router.error.H13", 1)));
  EXPECT_EQ(r.counters, Bad(4, 0));
}

TEST(ExtractRouterTest, CodeIsSanitisedInTheName) {
  const Result r = ExtractLine(Router("code=blank-app code=\"H 99/x\" status=503"));
  EXPECT_THAT(r.points, ElementsAre(C("router.error.blank-app", 1), C("router.error.H_99_x", 1),
                                    C("router.status.5xx", 1)));
}

TEST(ExtractRouterTest, RouterPointsHaveNoSourceButL2metPairsDo) {
  // host= is never a source; a source= pair applies to l2met pairs only.
  const Result r = ExtractLine(Router("host=a.example.com source=edge connect=3ms count#hits"));
  EXPECT_THAT(r.points, ElementsAre(M("router.connect", 3, "ms"), C("hits", 1, "", "edge")));
}

TEST(ExtractRouterTest, SourcePrefixAndPrefixApply) {
  const Result r =
      ExtractLine(Router("source=edge code=H12 connect=3ms status=503 count#hits"), Options("acme", "eu"));
  EXPECT_THAT(r.points,
              ElementsAre(C("acme.router.error.H12", 1, "", "eu"), M("acme.router.connect", 3, "ms", "eu"),
                          C("acme.router.status.5xx", 1, "", "eu"), C("acme.hits", 1, "", "eu.edge")));
}

TEST(ExtractRouterTest, NeedsAppNameHerokuAndProcIdRouter) {
  // FORMATS.md §6.5 item 15: l2met looked at PROCID only.
  const std::string line = "connect=1ms service=2ms status=200 bytes=3 code=H12";
  EXPECT_THAT(ExtractLine(MakeFrame("app", "router", line)).points, IsEmpty());
  EXPECT_THAT(ExtractLine(MakeFrame("heroku", "web.1", line)).points, IsEmpty());
  EXPECT_THAT(ExtractLine(MakeFrame("heroku", "Router", line)).points, IsEmpty());
  EXPECT_EQ(ExtractLine(MakeFrame("heroku", "router", line)).points.size(), 5u);
}

TEST(ExtractRouterTest, BytesTakesUnitsFromItsValueLikeTheOthers) {
  const Result r = ExtractLine(Router("bytes=12kB service=\"7ms\""));
  EXPECT_THAT(r.points, ElementsAre(M("router.bytes", 12, "kB"), M("router.service", 7, "ms")));
}

// ---- §4.4 legacy runtime metrics, FORMATS.md §3(b) ------------------------------------

TEST(ExtractLegacyRuntimeTest, Formats3bOldFormatLines) {
  EXPECT_THAT(ExtractLine(Dyno("source=heroku.1234567.web.1.aaaabbbb-cccc-dddd-eeee-ffff00001111 "
                               "measure=load_avg_1m val=0.21"))
                  .points,
              ElementsAre(S("load_avg_1m", 0.21, "", "web.1")));
  EXPECT_THAT(
      ExtractLine(Dyno("source=heroku.1234567.web.1.aaaabbbb-cccc-dddd-eeee-ffff00001111 measure=memory_rss "
                       "val=21.22 units=MB"))
          .points,
      ElementsAre(S("memory_rss", 21.22, "MB", "web.1")));
  EXPECT_THAT(
      ExtractLine(
          Dyno("source=heroku.1234567.web.1.aaaabbbb-cccc-dddd-eeee-ffff00001111 measure=memory_pgpgin "
               "val=20074496 units=pages"))
          .points,
      ElementsAre(S("memory_pgpgin", 20074496, "pages", "web.1")));
}

TEST(ExtractLegacyRuntimeTest, CaseC13LineBecomesTheDynoRole) {
  const Result r = ExtractLine(MakeFrame("heroku", "web.2",
                                         "source=heroku.12345678.web.2.ffff0000-1111-2222-3333-444455556666 "
                                         "measure=memory_cache val=0.45 units=MB"));
  EXPECT_THAT(r.points, ElementsAre(S("memory_cache", 0.45, "MB", "web.2")));
}

TEST(ExtractLegacyRuntimeTest, UnitsFromUnitsPairElseFromTheValue) {
  EXPECT_THAT(ExtractLine(Dyno("measure=m val=3kB units=MB")).points, ElementsAre(S("m", 3, "MB")));
  EXPECT_THAT(ExtractLine(Dyno("measure=m val=3kB")).points, ElementsAre(S("m", 3, "kB")));
  EXPECT_THAT(ExtractLine(Dyno("measure=m val=3kB units=")).points, ElementsAre(S("m", 3, "kB")));
  EXPECT_THAT(ExtractLine(Dyno("measure=m val=3kB units=GB units=TB")).points, ElementsAre(S("m", 3, "GB")));
}

TEST(ExtractLegacyRuntimeTest, EmptyValIsNoObservation) {
  for (std::string_view line : {"measure=m val=", "measure=m val", "measure=m val=\"\"", "measure= val="}) {
    SCOPED_TRACE(line);
    const Result r = ExtractLine(Dyno(line));
    EXPECT_THAT(r.points, IsEmpty());
    EXPECT_EQ(r.counters, Bad(0, 0));
  }
}

TEST(ExtractLegacyRuntimeTest, BadValAndEmptyName) {
  Result r = ExtractLine(Dyno("measure=m val=fast"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(1, 0));
  r = ExtractLine(Dyno("measure= val=1"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(0, 1));
  r = ExtractLine(Dyno("measure val=1"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(0, 1));
}

TEST(ExtractLegacyRuntimeTest, NeedsBothPairs) {
  EXPECT_THAT(ExtractLine(Dyno("measure=m units=MB")).points, IsEmpty());
  EXPECT_THAT(ExtractLine(Dyno("val=1 units=MB")).points, IsEmpty());
}

TEST(ExtractLegacyRuntimeTest, FirstOccurrenceOfEachPairOnly) {
  const Result r = ExtractLine(Dyno("measure=a val=1 measure=b val=2"));
  EXPECT_THAT(r.points, ElementsAre(S("a", 1)));
}

TEST(ExtractLegacyRuntimeTest, EmittedAtThePositionOfTheValPair) {
  EXPECT_THAT(ExtractLine(App("count#a measure=x val=2 count#b")).points,
              ElementsAre(C("a", 1), S("x", 2), C("b", 1)));
  EXPECT_THAT(ExtractLine(App("count#a val=2 count#b measure=x")).points,
              ElementsAre(C("a", 1), S("x", 2), C("b", 1)));
}

TEST(ExtractLegacyRuntimeTest, OtherPairsKeepTheRawLineSource) {
  const Result r = ExtractLine(Dyno("source=heroku.1.web.1.u measure=x val=1 sample#y=2"));
  EXPECT_THAT(r.points, ElementsAre(S("x", 1, "", "web.1"), S("y", 2, "", "heroku.1.web.1.u")));
}

TEST(ExtractLegacyRuntimeTest, OptionsApply) {
  const Result r =
      ExtractLine(Dyno("source=heroku.1.worker.2.u measure=memory_rss val=1MB"), Options("acme", "eu"));
  EXPECT_THAT(r.points, ElementsAre(S("acme.memory_rss", 1, "MB", "eu.worker.2")));
  EXPECT_THAT(ExtractLine(Dyno("measure=m val=1"), Options("", "eu")).points,
              ElementsAre(S("m", 1, "", "eu")));
}

struct RoleRow {
  std::string name;
  std::string source;
  std::string want;
};

class LegacySourceTest : public testing::TestWithParam<RoleRow> {};

TEST_P(LegacySourceTest, IsTheDynoRoleOnlyForHerokuDynoIds) {
  const Result r = ExtractLine(Dyno("source=" + GetParam().source + " measure=m val=1"));
  EXPECT_THAT(r.points, ElementsAre(S("m", 1, "", GetParam().want)));
}

INSTANTIATE_TEST_SUITE_P(
    Semantics44, LegacySourceTest,
    testing::Values(RoleRow{"WebRole", "heroku.1234567.web.1.aaaabbbb-cccc-dddd-eeee-ffff00001111", "web.1"},
                    RoleRow{"RoleWithoutNumber", "heroku.1234567.worker.uuid", "worker"},
                    RoleRow{"OneOffRun", "heroku.1234567.run.7166.uuid", "run.7166"},
                    RoleRow{"PlainRoleKept", "web.1", "web.1"},
                    RoleRow{"NonDigitAppIdKept", "heroku.12a.web.1.uuid", "heroku.12a.web.1.uuid"},
                    RoleRow{"EmptyAppIdKept", "heroku..web.1.uuid", "heroku..web.1.uuid"},
                    RoleRow{"ThreePartsKept", "heroku.123.web", "heroku.123.web"},
                    RoleRow{"EmptyLastPartKept", "heroku.123.web.1.", "heroku.123.web.1."},
                    RoleRow{"EmptyRoleKept", "heroku.123..uuid", "heroku.123..uuid"},
                    RoleRow{"OtherPlatformKept", "Heroku.123.web.1.uuid", "Heroku.123.web.1.uuid"},
                    RoleRow{"AllRoleRenamed", "heroku.1.all.uuid", "all_"}),
    [](const testing::TestParamInfo<RoleRow>& info) { return info.param.name; });

// ---- §4.5 current runtime metrics and add-on metrics, FORMATS.md §3(b), §3(d) ----------

TEST(ExtractRuntimeTest, Formats3bCurrentLoadLine) {
  const Result r =
      ExtractLine(Dyno("source=web.1 dyno=heroku.1234567.aaaabbbb-cccc-dddd-eeee-ffff00001111 "
                       "sample#load_avg_1m=0.21 sample#load_avg_5m=0.15 sample#load_avg_15m=0.09"));
  EXPECT_THAT(r.points, ElementsAre(S("load_avg_1m", 0.21, "", "web.1"), S("load_avg_5m", 0.15, "", "web.1"),
                                    S("load_avg_15m", 0.09, "", "web.1")));
}

TEST(ExtractRuntimeTest, Formats3bCurrentMemoryLine) {
  const Result r = ExtractLine(Dyno(
      "source=web.1 dyno=heroku.1234567.aaaabbbb-cccc-dddd-eeee-ffff00001111 sample#memory_total=187.42MB "
      "sample#memory_rss=180.01MB sample#memory_cache=7.41MB sample#memory_swap=0.00MB "
      "sample#memory_pgpgin=51234pages sample#memory_pgpgout=4321pages sample#memory_quota=512.00MB"));
  EXPECT_THAT(
      r.points,
      ElementsAre(S("memory_total", 187.42, "MB", "web.1"), S("memory_rss", 180.01, "MB", "web.1"),
                  S("memory_cache", 7.41, "MB", "web.1"), S("memory_swap", 0, "MB", "web.1"),
                  S("memory_pgpgin", 51234, "pages", "web.1"), S("memory_pgpgout", 4321, "pages", "web.1"),
                  S("memory_quota", 512, "MB", "web.1")));
}

TEST(ExtractAddonTest, Formats3dPostgresLine) {
  const std::string s = "HEROKU_POSTGRESQL_SILVER";
  const Result r = ExtractLine(MakeFrame(
      "app", "heroku-postgres",
      "source=HEROKU_POSTGRESQL_SILVER addon=postgresql-example-12345 sample#current_transaction=54017686 "
      "sample#db_size=16012956319bytes sample#tables=97 sample#active-connections=7 "
      "sample#waiting-connections=0 sample#index-cache-hit-rate=0.9239 sample#table-cache-hit-rate=0.93609 "
      "sample#load-avg-1m=0.115 sample#load-avg-5m=0.075 sample#load-avg-15m=0.07 sample#read-iops=0 "
      "sample#write-iops=54.758 sample#tmp-disk-used=543600640 sample#tmp-disk-available=72435191808 "
      "sample#memory-total=4045060kB sample#memory-free=159696kB sample#memory-cached=3707032kB "
      "sample#memory-postgres=182592kB sample#wal-percentage-used=0.0648"));
  EXPECT_THAT(
      r.points,
      ElementsAre(S("current_transaction", 54017686, "", s), S("db_size", 16012956319, "bytes", s),
                  S("tables", 97, "", s), S("active-connections", 7, "", s),
                  S("waiting-connections", 0, "", s), S("index-cache-hit-rate", 0.9239, "", s),
                  S("table-cache-hit-rate", 0.93609, "", s), S("load-avg-1m", 0.115, "", s),
                  S("load-avg-5m", 0.075, "", s), S("load-avg-15m", 0.07, "", s), S("read-iops", 0, "", s),
                  S("write-iops", 54.758, "", s), S("tmp-disk-used", 543600640, "", s),
                  S("tmp-disk-available", 72435191808, "", s), S("memory-total", 4045060, "kB", s),
                  S("memory-free", 159696, "kB", s), S("memory-cached", 3707032, "kB", s),
                  S("memory-postgres", 182592, "kB", s), S("wal-percentage-used", 0.0648, "", s)));
  EXPECT_EQ(r.counters, Bad(0, 0));
}

TEST(ExtractAddonTest, Formats3dRedisLine) {
  const std::string s = "REDIS";
  const Result r = ExtractLine(MakeFrame(
      "app", "heroku-redis",
      "source=REDIS addon=redis-example-98068 sample#active-connections=12 sample#load-avg-1m=0.115 "
      "sample#load-avg-5m=0.075 sample#load-avg-15m=0.07 sample#read-iops=0 sample#write-iops=54.758 "
      "sample#memory-total=15405660kB sample#memory-free=12639520kB sample#memory-cached=1911724kB "
      "sample#memory-redis=343477584bytes sample#hit-rate=0.7 sample#evicted-keys=0"));
  EXPECT_THAT(r.points,
              ElementsAre(S("active-connections", 12, "", s), S("load-avg-1m", 0.115, "", s),
                          S("load-avg-5m", 0.075, "", s), S("load-avg-15m", 0.07, "", s),
                          S("read-iops", 0, "", s), S("write-iops", 54.758, "", s),
                          S("memory-total", 15405660, "kB", s), S("memory-free", 12639520, "kB", s),
                          S("memory-cached", 1911724, "kB", s), S("memory-redis", 343477584, "bytes", s),
                          S("hit-rate", 0.7, "", s), S("evicted-keys", 0, "", s)));
}

// ---- §4.6 loss notices, FORMATS.md §3(e) -----------------------------------------------

struct NoticeRow {
  std::string name;
  std::string app;
  std::string proc;
  std::string line;
  std::vector<Got> points;
};

class LossNoticeLineTest : public testing::TestWithParam<NoticeRow> {};

TEST_P(LossNoticeLineTest, YieldsOneCountAndNothingElse) {
  const NoticeRow& row = GetParam();
  const Result r = ExtractLine(MakeFrame(row.app, row.proc, row.line));
  EXPECT_EQ(r.points, row.points);
  EXPECT_EQ(r.counters, Bad(0, 0));
}

INSTANTIATE_TEST_SUITE_P(
    Semantics46, LossNoticeLineTest,
    testing::Values(
        NoticeRow{"L10",
                  "heroku",
                  "logplex",
                  "Error L10 (output buffer overflow): 500 messages dropped since 2024-03-05T10:14:00+00:00.",
                  {C("logplex.l10", 500)}},
        // Case C15 frame 2: SEMANTICS §4.6 lists this wording, and C15's gauges count it.
        NoticeRow{
            "L10DrainWording",
            "heroku",
            "logplex",
            "Error L10 (output buffer overflow): drain 'd.00000000-aaaa-bbbb-cccc-dddddddddddd' dropped 1 "
            "messages",
            {C("logplex.l10", 1)}},
        NoticeRow{"L12",
                  "heroku",
                  "log-shuttle",
                  "Error L12: 17 messages dropped since 2024-03-05T10:14:00.123456+00:00",
                  {C("logplex.l12", 17)}},
        NoticeRow{"L13",
                  "heroku",
                  "log-shuttle",
                  "Error L13: 3 messages lost since 2024-03-05T10:14:00.123456+00:00",
                  {C("logplex.l13", 3)}},
        NoticeRow{
            "AnyAppNameAndProcId", "app", "web.1", "Error L12: 4 messages dropped", {C("logplex.l12", 4)}},
        NoticeRow{"NothingElseFromTheLine",
                  "heroku",
                  "logplex",
                  "Error L10 (x): 2 messages dropped source=web.1 count#x=1 measure=m val=1",
                  {C("logplex.l10", 2)}},
        NoticeRow{"LeadingZeros", "heroku", "logplex", "Error L13: 007 messages lost", {C("logplex.l13", 7)}},
        // Not loss notices: ordinary lines (bare keys only, so no points).
        NoticeRow{"L11IsATailNotice",
                  "heroku",
                  "logplex",
                  "Error L11 (Tail buffer overflow) -> This tail session dropped 5 messages since T.",
                  {}},
        NoticeRow{
            "L14", "heroku", "logplex", "Error L14 (certificate validation): error=\"x\" uri=\"y\"", {}},
        NoticeRow{"NotAtTheStart", "heroku", "logplex", " Error L10 (x): 5 messages dropped", {}},
        NoticeRow{"NoNumber", "heroku", "logplex", "Error L10 (x): many messages dropped", {}},
        NoticeRow{"L12WithLostWording", "heroku", "log-shuttle", "Error L12: 5 messages lost", {}},
        NoticeRow{"L13WithDroppedWording", "heroku", "log-shuttle", "Error L13: 5 messages dropped", {}},
        NoticeRow{"L10WithoutParenthesis", "heroku", "logplex", "Error L10: 5 messages dropped", {}},
        NoticeRow{"MissingSpaceAfterColon", "heroku", "logplex", "Error L12:5 messages dropped", {}},
        NoticeRow{"DrainWordingWithoutNumber",
                  "heroku",
                  "logplex",
                  "Error L10 (x): drain 'd' dropped messages",
                  {}},
        NoticeRow{"LowerCase", "heroku", "logplex", "error L12: 5 messages dropped", {}},
        NoticeRow{"OrdinaryLineStillYieldsItsPairs",
                  "heroku",
                  "logplex",
                  "Error L12: some messages dropped count#x=1",
                  {C("x", 1)}}),
    [](const testing::TestParamInfo<NoticeRow>& info) { return info.param.name; });

TEST(ExtractLossNoticeTest, OptionsApplyAndSourcePairsDoNot) {
  const Result r = ExtractLine(
      MakeFrame("heroku", "logplex", "Error L10 (output buffer overflow): 9 messages dropped source=x"),
      Options("acme", "eu"));
  EXPECT_THAT(r.points, ElementsAre(C("acme.logplex.l10", 9, "", "eu")));
}

TEST(ExtractLossNoticeTest, OversizedCountIsABadValue) {
  const Result r = ExtractLine(App("Error L13: " + std::string(200, '9') + " messages lost"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(1, 0));
}

// ---- §4.7 options and §5.1 names --------------------------------------------------------

TEST(ExtractOptionsTest, PrefixAndSourcePrefixCombinations) {
  const std::string line = "count#x source=web.1";
  const std::string bare = "count#x";
  EXPECT_THAT(ExtractLine(App(line), Options("acme", "")).points, ElementsAre(C("acme.x", 1, "", "web.1")));
  EXPECT_THAT(ExtractLine(App(line), Options("", "eu")).points, ElementsAre(C("x", 1, "", "eu.web.1")));
  EXPECT_THAT(ExtractLine(App(line), Options("acme", "eu")).points,
              ElementsAre(C("acme.x", 1, "", "eu.web.1")));
  EXPECT_THAT(ExtractLine(App(bare), Options("", "eu")).points, ElementsAre(C("x", 1, "", "eu")));
  EXPECT_THAT(ExtractLine(App(bare), Options("acme", "")).points, ElementsAre(C("acme.x", 1, "", "")));
}

TEST(ExtractOptionsTest, OptionsAreSanitisedToo) {
  EXPECT_THAT(ExtractLine(App("count#x source=a"), Options("my app", "us east")).points,
              ElementsAre(C("my_app.x", 1, "", "us_east.a")));
}

TEST(ExtractOptionsTest, AllSourceAfterPrefixing) {
  EXPECT_THAT(ExtractLine(App("count#x source=all"), Options("", "eu")).points,
              ElementsAre(C("x", 1, "", "eu.all")));
  EXPECT_THAT(ExtractLine(App("count#x"), Options("", "ALL")).points, ElementsAre(C("x", 1, "", "all_")));
}

TEST(ExtractNamesTest, BytesOutsideTheAllowedSetBecomeUnderscores) {
  const Result r =
      ExtractLine(App("measure#db/latency=1 count#caf\xC3\xA9 sample#a:b_c-d.e=2 count#x|y\x7f"));
  EXPECT_THAT(r.points, ElementsAre(M("db_latency", 1), C("caf__", 1), S("a:b_c-d.e", 2), C("x_y_", 1)));
}

TEST(ExtractNamesTest, NameOf255BytesIsKeptAnd256IsBadName) {
  const std::string n255(255, 'n');
  const Result r = ExtractLine(App("count#" + n255 + " count#" + n255 + "m count#ok"));
  EXPECT_THAT(r.points, ElementsAre(C(n255, 1), C("ok", 1)));
  EXPECT_EQ(r.counters, Bad(0, 1));
}

TEST(ExtractNamesTest, PrefixCountsTowardsTheLimit) {
  // "acme." is 5 bytes: 250 + 5 = 255 is kept, 251 + 5 = 256 is dropped, not truncated.
  const Result r = ExtractLine(App("count#" + std::string(250, 'a') + " count#" + std::string(251, 'b')),
                               Options("acme", ""));
  EXPECT_THAT(r.points, ElementsAre(C("acme." + std::string(250, 'a'), 1)));
  EXPECT_EQ(r.counters, Bad(0, 1));
}

TEST(ExtractNamesTest, SourceOf256BytesDropsEveryPointOfTheLine) {
  const std::string s255(255, 's');
  EXPECT_THAT(ExtractLine(App("count#x source=" + s255)).points, ElementsAre(C("x", 1, "", s255)));
  const Result r = ExtractLine(App("count#x sample#y=1 source=" + s255 + "t"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(0, 2));
}

TEST(ExtractNamesTest, SourcePrefixCountsTowardsTheLimit) {
  // "eu." is 3 bytes: 252 + 3 = 255 is kept, 253 + 3 = 256 is dropped.
  EXPECT_THAT(ExtractLine(App("count#x source=" + std::string(252, 's')), Options("", "eu")).points,
              ElementsAre(C("x", 1, "", "eu." + std::string(252, 's'))));
  const Result r = ExtractLine(App("count#x source=" + std::string(253, 's')), Options("", "eu"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(0, 1));
}

TEST(ExtractNamesTest, LongSourceDoesNotAffectRouterPoints) {
  const Result r = ExtractLine(Router("source=" + std::string(300, 's') + " status=200 count#x"));
  EXPECT_THAT(r.points, ElementsAre(C("router.status.2xx", 1)));
  EXPECT_EQ(r.counters, Bad(0, 1));
}

TEST(ExtractNamesTest, LongRouterCodeIsBadName) {
  const Result r = ExtractLine(Router("code=" + std::string(250, 'H') + " status=500"));
  EXPECT_THAT(r.points, ElementsAre(C("router.status.5xx", 1)));
  EXPECT_EQ(r.counters, Bad(0, 1));
}

TEST(ExtractNamesTest, BadNameIsCountedBeforeBadValue) {
  const Result r = ExtractLine(App("measure#=abc count#x=abc"));
  EXPECT_THAT(r.points, IsEmpty());
  EXPECT_EQ(r.counters, Bad(1, 1));
}

TEST(FinalNameTest, AppliesPrefixAndSanitises) {
  std::string out = "junk";
  ASSERT_TRUE(FinalName("", "db.latency", out));
  EXPECT_EQ(out, "db.latency");
  ASSERT_TRUE(FinalName("acme", "db latency#1", out));
  EXPECT_EQ(out, "acme.db_latency_1");
  ASSERT_TRUE(FinalName("", "ALL", out));
  EXPECT_EQ(out, "ALL");  // Only sources are renamed.
}

TEST(FinalNameTest, RejectsEmptyAndOversized) {
  std::string out;
  EXPECT_FALSE(FinalName("", "", out));
  EXPECT_FALSE(FinalName("acme", "", out));
  EXPECT_TRUE(FinalName("", std::string(255, 'x'), out));
  EXPECT_EQ(out.size(), 255u);
  EXPECT_FALSE(FinalName("", std::string(256, 'x'), out));
  EXPECT_TRUE(FinalName(std::string(100, 'p'), std::string(154, 'x'), out));
  EXPECT_FALSE(FinalName(std::string(100, 'p'), std::string(155, 'x'), out));
}

TEST(FinalSourceTest, CombinesPrefixAndSource) {
  std::string out = "junk";
  ASSERT_TRUE(FinalSource("", "", out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(FinalSource("eu", "", out));
  EXPECT_EQ(out, "eu");
  ASSERT_TRUE(FinalSource("", "web.1", out));
  EXPECT_EQ(out, "web.1");
  ASSERT_TRUE(FinalSource("eu", "web.1", out));
  EXPECT_EQ(out, "eu.web.1");
  ASSERT_TRUE(FinalSource("e u", "a/b", out));
  EXPECT_EQ(out, "e_u.a_b");
}

TEST(FinalSourceTest, RenamesAllInAnyCase) {
  std::string out;
  for (std::string_view all : {"all", "ALL", "All", "aLL"}) {
    ASSERT_TRUE(FinalSource("", all, out));
    EXPECT_EQ(out, "all_") << all;
    ASSERT_TRUE(FinalSource(all, "", out));
    EXPECT_EQ(out, "all_") << all;
  }
  ASSERT_TRUE(FinalSource("all", "x", out));
  EXPECT_EQ(out, "all.x");
  ASSERT_TRUE(FinalSource("", "al", out));
  EXPECT_EQ(out, "al");
}

TEST(FinalSourceTest, RejectsOversized) {
  std::string out;
  EXPECT_TRUE(FinalSource("", std::string(255, 's'), out));
  EXPECT_FALSE(FinalSource("", std::string(256, 's'), out));
  EXPECT_TRUE(FinalSource(std::string(255, 'p'), "", out));
  EXPECT_FALSE(FinalSource(std::string(256, 'p'), "", out));
  EXPECT_TRUE(FinalSource(std::string(100, 'p'), std::string(154, 's'), out));
  EXPECT_FALSE(FinalSource(std::string(100, 'p'), std::string(155, 's'), out));
}

// ---- §4.7 drain query ------------------------------------------------------------------

TEST(ParseDrainQueryTest, DefaultsWhenEmpty) {
  const absl::StatusOr<DrainOptions> options = ParseDrainQuery("", 60);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->resolution_seconds, 60);
  EXPECT_EQ(options->prefix, "");
  EXPECT_EQ(options->source_prefix, "");
  EXPECT_EQ(ParseDrainQuery("", 10)->resolution_seconds, 10);
}

TEST(ParseDrainQueryTest, ReadsTheThreeOptions) {
  const absl::StatusOr<DrainOptions> options =
      ParseDrainQuery("resolution=300&prefix=acme&source-prefix=eu", 60);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->resolution_seconds, 300);
  EXPECT_EQ(options->prefix, "acme");
  EXPECT_EQ(options->source_prefix, "eu");
}

TEST(ParseDrainQueryTest, AcceptsEveryAllowedResolution) {
  for (int seconds : kAllowedResolutions) {
    EXPECT_TRUE(IsAllowedResolution(seconds));
    const absl::StatusOr<DrainOptions> options = ParseDrainQuery("resolution=" + std::to_string(seconds), 60);
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->resolution_seconds, seconds);
  }
  EXPECT_FALSE(IsAllowedResolution(0));
  EXPECT_FALSE(IsAllowedResolution(7));
  EXPECT_FALSE(IsAllowedResolution(-60));
}

TEST(ParseDrainQueryTest, PercentDecodesKeysAndValues) {
  const absl::StatusOr<DrainOptions> options =
      ParseDrainQuery("%70refix=my%2Eapp&source%2Dprefix=us+east%2f1&resolution=%36%30", 10);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->prefix, "my.app");
  EXPECT_EQ(options->source_prefix, "us east/1");
  EXPECT_EQ(options->resolution_seconds, 60);
}

TEST(ParseDrainQueryTest, EmptyPrefixesAreAbsent) {
  const absl::StatusOr<DrainOptions> options = ParseDrainQuery("prefix=&source-prefix", 60);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->prefix, "");
  EXPECT_EQ(options->source_prefix, "");
}

TEST(ParseDrainQueryTest, IgnoresUnknownKeysAndEmptyPieces) {
  const absl::StatusOr<DrainOptions> options = ParseDrainQuery("&auth=x%zz&&Prefix=no&prefix=yes&", 60);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->prefix, "yes");
}

TEST(ParseDrainQueryTest, RepeatedKeyLastWins) {
  const absl::StatusOr<DrainOptions> options =
      ParseDrainQuery("prefix=a&prefix=b&resolution=7&resolution=5&prefix=", 60);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->prefix, "");
  EXPECT_EQ(options->resolution_seconds, 5);
}

TEST(ParseDrainQueryTest, RejectsResolutionsNotAllowed) {
  for (std::string_view value :
       {"7", "0", "abc", "", "60s", "-60", "+60", " 60", "1e1", "99999999999999", "60.0"}) {
    const absl::StatusOr<DrainOptions> options = ParseDrainQuery("resolution=" + std::string(value), 60);
    ASSERT_FALSE(options.ok()) << value;
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(options.status().message(), HasSubstr("resolution: must be one of 1, 5,")) << value;
  }
  EXPECT_EQ(ParseDrainQuery("resolution=7", 60).status().message(),
            "resolution: must be one of 1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, got '7'");
  EXPECT_FALSE(ParseDrainQuery("resolution", 60).ok());
}

TEST(ParseDrainQueryTest, RejectsMalformedPercentEscapes) {
  absl::StatusOr<DrainOptions> options = ParseDrainQuery("prefix=a%zz", 60);
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(), HasSubstr("prefix: malformed percent-escape in 'a%zz'"));
  options = ParseDrainQuery("source-prefix=%4", 60);
  EXPECT_THAT(options.status().message(), HasSubstr("source-prefix:"));
  options = ParseDrainQuery("resolution=6%", 60);
  EXPECT_THAT(options.status().message(), HasSubstr("resolution:"));
  options = ParseDrainQuery("pre%g1fix=a", 60);
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(), HasSubstr("key 'pre%g1fix'"));
}

// ---- allocation ------------------------------------------------------------------------

TEST(ExtractorTest, AllocatesNothingOnceWarm) {
  {
    const long before = testing_support::AllocationCount();
    int* volatile probe = new int(1);  // volatile: the pair must not be elided.
    delete probe;
    ASSERT_EQ(testing_support::AllocationCount() - before, 1) << "the counting operator new is not in use";
  }
  const std::vector<logplex::Frame> frames = {
      App("source=web.1 measure#db.latency=4.5ms count#orders sample#q=\"1\\u0037\" msg=\"caf\\u00e9\""),
      Router("at=error code=H12 desc=\"Request timeout\" connect=1ms service=30000ms status=503 bytes=0"),
      Dyno("source=heroku.1234567.web.1.uuid measure=memory_rss val=21.22 units=MB"),
      MakeFrame("heroku", "logplex", "Error L10 (output buffer overflow): 500 messages dropped since x."),
      App("count#x=abc measure#=1 source=\"unterminated"),
  };
  Extractor extractor(Options("acme", "eu"));
  telemetry::Counters counters;
  int points = 0;
  const auto sink = [&](const Point&) { ++points; };
  for (const logplex::Frame& frame : frames) extractor.Extract(frame, kTime, counters, sink);
  const int warm_points = points;
  const long before = testing_support::AllocationCount();
  for (int round = 0; round < 3; ++round) {
    for (const logplex::Frame& frame : frames) extractor.Extract(frame, kTime, counters, sink);
  }
  EXPECT_EQ(testing_support::AllocationCount() - before, 0);
  EXPECT_EQ(points, 4 * warm_points);
  EXPECT_EQ(warm_points, 3 + 5 + 1 + 1);
}

}  // namespace
}  // namespace drainmet::extract
