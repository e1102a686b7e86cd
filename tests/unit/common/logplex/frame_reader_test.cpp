#include "common/logplex/frame_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

namespace drainmet::logplex {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

// Prepends the octet count, so no test case counts bytes by hand.
std::string Framed(std::string_view msg) { return std::to_string(msg.size()) + " " + std::string(msg); }

constexpr std::string_view kHttps = "<190>1 2024-05-01T12:00:01.456789+00:00 host app web.1 - ";

// Everything one reader yields, in order.
struct Read {
  std::vector<FrameStatus> statuses;  // Ends with kEnd or kBroken.
  std::vector<std::string> frames;    // kFrame bytes, in order.
  std::string rest;                   // reader.rest() at the end.
};

Read ReadAll(std::string_view body) {
  FrameReader reader(body);
  Read read;
  for (int guard = 0; guard < 100000; ++guard) {
    std::string_view frame;
    const FrameStatus status = reader.Next(&frame);
    read.statuses.push_back(status);
    if (status == FrameStatus::kFrame) read.frames.emplace_back(frame);
    if (status == FrameStatus::kEnd || status == FrameStatus::kBroken) break;
  }
  read.rest = std::string(reader.rest());
  return read;
}

using S = FrameStatus;

// ---------------------------------------------------------------------------------------
// FrameReader (SEMANTICS §1.1, §1.2; FORMATS §1.3)

TEST(FrameReader, FramesGluedWithoutLf) {
  const std::string a = std::string(kHttps) + "count#a=1";  // No trailing LF: the next LEN follows.
  const std::string b = std::string(kHttps) + "count#b=2\n";
  const Read read = ReadAll(Framed(a) + Framed(b) + Framed(a));
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kFrame, S::kFrame, S::kEnd}));
  EXPECT_EQ(read.frames, (std::vector<std::string>{a, b, a}));
  EXPECT_EQ(read.rest, "");
}

TEST(FrameReader, SkipsCrLfSpRunsBeforeLenAndAtEnd) {
  const std::string body =
      "\r\n  \n" + Framed("<1>1 t h a p m x") + "\n\n\r\n " + Framed("<1>1 t h a p m y") + " \r\n\n";
  const Read read = ReadAll(body);
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kFrame, S::kEnd}));
  EXPECT_EQ(read.frames, (std::vector<std::string>{"<1>1 t h a p m x", "<1>1 t h a p m y"}));
}

TEST(FrameReader, EmptyOrBlankBodyIsCleanEnd) {
  for (std::string_view body : {"", "\n", " ", "\r\n\r\n", "  \n "}) {
    SCOPED_TRACE(testing::PrintToString(std::string(body)));
    FrameReader reader(body);
    std::string_view frame;
    EXPECT_EQ(reader.Next(&frame), S::kEnd);
    EXPECT_EQ(reader.Next(&frame), S::kEnd);  // Stays at the end.
  }
}

// §1.2: LEN 0 is an empty frame (bad_frame); framing continues.
TEST(FrameReader, LenZeroIsAnEmptyFrame) {
  const std::string body = "0 " + Framed("<1>1 t h a p m x") + "000 0 ";
  const Read read = ReadAll(body);
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kEmpty, S::kFrame, S::kEmpty, S::kEmpty, S::kEnd}));
  EXPECT_EQ(read.frames, (std::vector<std::string>{"<1>1 t h a p m x"}));
}

TEST(FrameReader, LeadingZerosAndSixDigitLen) {
  std::string big(100000, 'x');
  const std::string body = "0005 hello000003 abc100000 " + big;
  const Read read = ReadAll(body);
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kFrame, S::kFrame, S::kEnd}));
  ASSERT_EQ(read.frames.size(), 3u);
  EXPECT_EQ(read.frames[0], "hello");
  EXPECT_EQ(read.frames[1], "abc");
  EXPECT_EQ(read.frames[2], big);
}

struct BrokenCase {
  std::string name;
  std::string body;
  std::size_t frames_before;  // kFrame results before kBroken.
  std::string rest;           // reader.rest() after kBroken: starts at the bad LEN.
};

class FrameReaderBroken : public testing::TestWithParam<BrokenCase> {};

// §1.2: a LEN that is not 1-6 digits, lacks its SP, or runs past the end ends framing;
// the frames before it are kept.
TEST_P(FrameReaderBroken, EndsFramingAndKeepsEarlierFrames) {
  const BrokenCase& c = GetParam();
  FrameReader reader(c.body);
  std::string_view frame;
  std::size_t frames = 0;
  FrameStatus status;
  while ((status = reader.Next(&frame)) == S::kFrame) ++frames;
  EXPECT_EQ(status, S::kBroken);
  EXPECT_EQ(frames, c.frames_before);
  EXPECT_EQ(reader.rest(), c.rest);
  EXPECT_EQ(reader.Next(&frame), S::kBroken);  // Exhausted for good.
  EXPECT_EQ(reader.rest(), c.rest);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, FrameReaderBroken,
    testing::Values(BrokenCase{"SevenDigitLen", "0000005 hello", 0, "0000005 hello"},
                    BrokenCase{"SevenDigitLenAfterFrame", Framed("ok") + "1000000 x", 1, "1000000 x"},
                    BrokenCase{"LenPastEnd", Framed("ok") + "\n" + Framed("fine") + "12 short", 2,
                               "12 short"},
                    BrokenCase{"LenPastEndByOne", "6 hello", 0, "6 hello"},
                    BrokenCase{"NoLengthPrefix", "<190>1 2024-05-01T10:00:00Z h a p - x", 0,
                               "<190>1 2024-05-01T10:00:00Z h a p - x"},
                    BrokenCase{"NonDigitInLen", Framed("ok") + "12a x", 1, "12a x"},
                    BrokenCase{"NegativeLen", "-5 hello", 0, "-5 hello"},
                    BrokenCase{"TabAfterLen", "5\thello", 0, "5\thello"},
                    BrokenCase{"LfAfterLen", "5\nhello", 0, "5\nhello"},
                    BrokenCase{"DigitsAtEnd", Framed("ok") + "\n12", 1, "12"},
                    BrokenCase{"TwoSpacesIsLenPastEnd", "5  abc", 0, "5  abc"},
                    BrokenCase{"JunkAfterFrame", Framed("ok") + "junk", 1, "junk"}),
    [](const testing::TestParamInfo<BrokenCase>& info) { return info.param.name; });

TEST(FrameReader, CountsBytesNotCharacters) {
  const std::string msg = std::string(kHttps) + "msg=\"Café crème ☕ ok 🚀\" count#x=1\n";
  const std::string body = Framed(msg) + Framed(msg);
  const Read read = ReadAll(body);
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kFrame, S::kEnd}));
  EXPECT_EQ(read.frames, (std::vector<std::string>{msg, msg}));
}

TEST(FrameReader, FrameMayHoldLfAndSpaces) {
  const std::string msg = std::string(kHttps) + "Error: boom\n    at handler (app.js:10)\n";
  const Read read = ReadAll(Framed(msg) + Framed(msg));
  EXPECT_EQ(read.frames, (std::vector<std::string>{msg, msg}));
}

TEST(FrameReader, AcceptsNullFramePointer) {
  FrameReader reader("0 3 abc");
  EXPECT_EQ(reader.Next(nullptr), S::kEmpty);
  EXPECT_EQ(reader.Next(nullptr), S::kFrame);
  EXPECT_EQ(reader.Next(nullptr), S::kEnd);
}

// ---------------------------------------------------------------------------------------
// ParseFrame (SEMANTICS §1.3, §1.5; FORMATS §1.4)

TEST(ParseFrame, HttpsFrameWithoutStructuredData) {
  const std::optional<Frame> frame = ParseFrame(
      "<158>1 2024-05-01T12:00:01.123456+00:00 host heroku router - at=info method=GET path=\"/\"\n");
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->timestamp, "2024-05-01T12:00:01.123456+00:00");
  EXPECT_EQ(frame->hostname, "host");
  EXPECT_EQ(frame->app_name, "heroku");
  EXPECT_EQ(frame->proc_id, "router");
  EXPECT_EQ(frame->msg_id, "-");
  EXPECT_EQ(frame->line, "at=info method=GET path=\"/\"");
}

TEST(ParseFrame, L10NoticeWithoutLf) {
  const std::optional<Frame> frame = ParseFrame(
      "<172>1 2024-05-01T12:00:05+00:00 host heroku logplex - Error L10 (output buffer overflow): "
      "37 messages dropped since 2024-05-01T11:59:40+00:00.");
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->proc_id, "logplex");
  EXPECT_EQ(frame->line,
            "Error L10 (output buffer overflow): 37 messages dropped since 2024-05-01T11:59:40+00:00.");
}

struct LineCase {
  std::string name;
  std::string after_msgid;  // Bytes after "MSGID" (including the SP), up to the frame end.
  std::string line;         // Expected Frame::line.
};

class ParseFrameLine : public testing::TestWithParam<LineCase> {};

TEST_P(ParseFrameLine, ExtractsMsg) {
  const std::string bytes = "<190>1 2024-05-01T12:00:01Z d.token app web.1 -" + GetParam().after_msgid;
  const std::optional<Frame> frame = ParseFrame(bytes);
  ASSERT_TRUE(frame.has_value()) << bytes;
  EXPECT_EQ(frame->msg_id, "-");
  EXPECT_EQ(frame->line, GetParam().line);
}

INSTANTIATE_TEST_SUITE_P(
    Frames, ParseFrameLine,
    testing::Values(
        // §1.3: one trailing LF and a CR before it are removed; nothing more.
        LineCase{"PlainMsg", " count#a=1", "count#a=1"}, LineCase{"TrailingLf", " count#a=1\n", "count#a=1"},
        LineCase{"TrailingCrLf", " count#a=1\r\n", "count#a=1"},
        LineCase{"OnlyOneLf", " count#a=1\n\n", "count#a=1\n"},
        LineCase{"LoneCrKept", " count#a=1\r", "count#a=1\r"}, LineCase{"InnerLfKept", " a\nb\n", "a\nb"},
        // Empty lines.
        LineCase{"NothingAfterMsgId", "", ""}, LineCase{"LfAfterMsgId", "\n", ""},
        LineCase{"SpAfterMsgId", " ", ""}, LineCase{"SpacesKept", "   x ", "  x "},
        // NILVALUE structured data (syslog drains, log-shuttle).
        LineCase{"NilSd", " - measure#db=4ms", "measure#db=4ms"}, LineCase{"NilSdOnly", " -", ""},
        LineCase{"NilSdOnlyLf", " -\n", ""}, LineCase{"NilSdThenSpace", " - ", ""},
        LineCase{"DashWordIsMsg", " -x", "-x"},
        // Well-formed SD-ELEMENTs (RFC 5424 §6.3) are skipped.
        LineCase{"OneSdElement", " [origin ip=\"10.0.0.1\"] count#a=1", "count#a=1"},
        LineCase{"RfcExample",
                 " [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"
                 "[examplePriority@32473 class=\"high\"] msg",
                 "msg"},
        LineCase{"SdIdOnly", " [meta] x", "x"}, LineCase{"SdAtEnd", " [meta k=\"v\"]", ""},
        LineCase{"SdAtEndLf", " [meta k=\"v\"]\n", ""},
        LineCase{"EscapedValue", " [id k=\"a\\\"b\\\\c\\]d\" k2=\"\"] x", "x"},
        LineCase{"ValueWithSpacesAndUtf8", " [id k=\"caf\xC3\xA9 = [x\"] x", "x"},
        LineCase{"InvalidEscapeIsPlainBackslash", " [id k=\"C:\\dir\"] x", "x"},
        LineCase{"SdId32Bytes", " [abcdefghijklmnopqrstuvwxyz012345] x", "x"},
        LineCase{"SecondSpaceKept", " [id]  x", " x"},
        // A '[' that does not start a well-formed sequence is MSG.
        LineCase{"RequestIdBracket", " [6a9ee917-95a5-4089-9fd8-de554938e6ab] Started GET \"/\"",
                 "[6a9ee917-95a5-4089-9fd8-de554938e6ab] Started GET \"/\""},
        LineCase{"SdId33Bytes", " [abcdefghijklmnopqrstuvwxyz0123456] x",
                 "[abcdefghijklmnopqrstuvwxyz0123456] x"},
        LineCase{"EmptyBrackets", " [] x", "[] x"}, LineCase{"UnquotedValue", " [id k=v] x", "[id k=v] x"},
        LineCase{"Unterminated", " [id k=\"v x", "[id k=\"v x"}, LineCase{"NoClose", " [id", "[id"},
        LineCase{"UnescapedBracketInValue", " [id k=\"a]b\"] x", "[id k=\"a]b\"] x"},
        LineCase{"NoSpaceAfterSd", " [id]x", "[id]x"},
        LineCase{"SpaceBetweenElements", " [a] [b] x", "[b] x"},
        LineCase{"SpaceBeforeClose", " [id ] x", "[id ] x"}, LineCase{"EqualsInSdId", " [a=b] x", "[a=b] x"},
        LineCase{"NonAsciiSdId", " [caf\xC3\xA9] x", "[caf\xC3\xA9] x"},
        LineCase{"EmptyParamName", " [id =\"v\"] x", "[id =\"v\"] x"},
        LineCase{"Bracketed INFO log level", " [INFO] count#a=1", "count#a=1"},
        // §1.3: a UTF-8 BOM at the start of MSG is removed.
        LineCase{"Bom",
                 " \xEF\xBB\xBF"
                 "count#a=1\n",
                 "count#a=1"},
        LineCase{"BomAfterNilSd",
                 " - \xEF\xBB\xBF"
                 "count#a=1",
                 "count#a=1"},
        LineCase{"BomAfterSd",
                 " [id] \xEF\xBB\xBF"
                 "x",
                 "x"},
        LineCase{"OnlyOneBom",
                 " \xEF\xBB\xBF\xEF\xBB\xBF"
                 "x",
                 "\xEF\xBB\xBF"
                 "x"},
        LineCase{"BomNotAtStart", " x\xEF\xBB\xBF", "x\xEF\xBB\xBF"}),
    [](const testing::TestParamInfo<LineCase>& info) {
      std::string name = info.param.name;
      for (char& c : name) {
        if (c == ' ') c = '_';
      }
      return name;
    });

TEST(ParseFrame, SyslogShapedFrame) {
  const std::optional<Frame> frame =
      ParseFrame("<134>1 2024-03-05T10:15:06.000000+00:00 d.0123 heroku web.1 - - sample#load_avg_1m=0.5\n");
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->hostname, "d.0123");
  EXPECT_EQ(frame->app_name, "heroku");
  EXPECT_EQ(frame->line, "sample#load_avg_1m=0.5");
}

TEST(ParseFrame, DashTimestampIsAField) {
  const std::optional<Frame> frame = ParseFrame("<190>1 - host app web.1 - x");
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->timestamp, "-");
  EXPECT_EQ(frame->line, "x");
}

// §1.5: a malformed header is bad_frame.
TEST(ParseFrame, RejectsMalformedHeaders) {
  const std::string cases[] = {
      "",
      "\n",
      "hello world",
      "<190>1 2024-05-01T12:00:01Z host app web.1",  // No MSGID.
      "<190>1 2024-05-01T12:00:01Z host app web.1\n",
      "<190>1 2024-05-01T12:00:01Z host app",
      "<190>1 2024-05-01T12:00:01Z",
      "<190>1 ",
      "<190>1  2024-05-01T12:00:01Z host app web.1 - x",  // Empty TIMESTAMP.
      "<190>1 2024-05-01T12:00:01Z host  app web.1 - x",  // Empty HOSTNAME.
      "<190>1 2024-05-01T12:00:01Z host app  web.1 - x",  // Empty APP-NAME.
      "<190>1 2024-05-01T12:00:01Z host app web.1  x",    // Empty MSGID.
      "190>1 2024-05-01T12:00:01Z host app web.1 - x",    // PRI: no '<'.
      "<>1 2024-05-01T12:00:01Z host app web.1 - x",      // PRI: no digits.
      "<1900>1 2024-05-01T12:00:01Z host app web.1 - x",  // PRI: four digits.
      "<19a>1 2024-05-01T12:00:01Z host app web.1 - x",
      "<190 1 2024-05-01T12:00:01Z host app web.1 - x",
      " <190>1 2024-05-01T12:00:01Z host app web.1 - x",
      "<190> 2024-05-01T12:00:01Z host app web.1 - x",     // No VERSION.
      "<190>100 2024-05-01T12:00:01Z host app web.1 - x",  // VERSION: three digits.
      "<190>v1 2024-05-01T12:00:01Z host app web.1 - x",
      "<190>1\t2024-05-01T12:00:01Z host app web.1 - x",
      "<190>12024-05-01T12:00:01Z host app web.1 - x",  // VERSION runs into the timestamp.
  };
  for (const std::string& bytes : cases) {
    EXPECT_FALSE(ParseFrame(bytes).has_value()) << testing::PrintToString(bytes);
  }
}

TEST(ParseFrame, AcceptsPriAndVersionWidths) {
  for (std::string_view head : {"<0>1 ", "<7>1 ", "<45>1 ", "<191>1 ", "<999>99 ", "<007>0 "}) {
    const std::string bytes = std::string(head) + "2024-05-01T12:00:01Z host app web.1 - x";
    const std::optional<Frame> frame = ParseFrame(bytes);
    ASSERT_TRUE(frame.has_value()) << bytes;
    EXPECT_EQ(frame->line, "x");
  }
}

// ---------------------------------------------------------------------------------------
// ParseRfc3339Nanos (SEMANTICS §1.4)

struct TimeCase {
  std::string text;
  std::optional<std::int64_t> nanos;
};

TEST(ParseRfc3339Nanos, ParsesOffsetsFractionsAndCase) {
  constexpr std::int64_t k = 1714564805 * kSecond;  // 2024-05-01T12:00:05Z
  const TimeCase cases[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"2024-05-01T12:00:05Z", k},
      {"2024-05-01T12:00:05+00:00", k},
      {"2024-05-01T12:00:05-00:00", k},
      {"2024-05-01T05:00:05-07:00", k},
      {"2024-05-01T17:30:05+05:30", k},
      {"2024-05-02T11:59:05+23:59", k},
      {"2024-05-01t12:00:05z", k},
      {"2024-05-01T12:00:05z", k},
      {"2024-05-01t12:00:05+00:00", k},
      // 0 to 9 fraction digits.
      {"2024-05-01T12:00:05.1Z", k + 100'000'000},
      {"2024-05-01T12:00:05.12Z", k + 120'000'000},
      {"2024-05-01T12:00:05.123Z", k + 123'000'000},
      {"2024-05-01T12:00:05.1234Z", k + 123'400'000},
      {"2024-05-01T12:00:05.96214+00:00", k + 962'140'000},
      {"2024-05-01T12:00:05.123456+00:00", k + 123'456'000},
      {"2024-05-01T12:00:05.1234567Z", k + 123'456'700},
      {"2024-05-01T12:00:05.12345678Z", k + 123'456'780},
      {"2024-05-01T12:00:05.123456789Z", k + 123'456'789},
      {"2024-05-01T12:00:05.000000000Z", k},
      {"2024-05-01T05:00:05.5-07:00", k + 500'000'000},
      // Dates around leap days and before 1970.
      {"2000-02-29T00:00:00Z", 951782400 * kSecond},
      {"2024-02-29T00:00:00Z", 1709164800 * kSecond},
      {"1900-03-01T00:00:00Z", -2203891200 * kSecond},
      {"1969-12-31T23:59:59.5Z", -500'000'000},
      {"2024-03-05T10:15:06+00:00", 1709633706 * kSecond},
      // Leap second: added arithmetically, the same instant as the next :00.
      {"2016-12-31T23:59:60Z", 1483228800 * kSecond},
      {"2016-12-31T23:59:60.5Z", 1483228800 * kSecond + 500'000'000},
      // The int64 nanosecond range, in whole years.
      {"1678-01-01T00:00:00Z", -9214560000 * kSecond},
      {"2261-12-31T23:59:59.999999999Z", 9214646399 * kSecond + 999'999'999},
      {"1678-01-01T00:00:00+23:59", -9214560000 * kSecond - (23 * 3600 + 59 * 60) * kSecond},
  };
  for (const TimeCase& c : cases) {
    EXPECT_EQ(ParseRfc3339Nanos(c.text), c.nanos) << c.text;
  }
}

TEST(ParseRfc3339Nanos, RejectsInvalidText) {
  const std::string cases[] = {
      "",
      "-",
      "2024-05-01T12:00:05",              // No offset.
      "2024-05-01T12:00:05.1234567890Z",  // 10 fraction digits.
      "2024-05-01T12:00:05.Z",            // '.' without digits.
      "2024-05-01T12:00:05,5Z",
      "2024-05-01 12:00:05Z",  // Space for T.
      "2024-05-01X12:00:05Z",
      "2024-05-01T12:00:05ZZ",
      "2024-05-01T12:00:05Z ",
      " 2024-05-01T12:00:05Z",
      "2024-05-01T12:00:05+0000",
      "2024-05-01T12:00:05+00",
      "2024-05-01T12:00:05+24:00",
      "2024-05-01T12:00:05+05:60",
      "2024-05-01T12:00:05+5:00",
      "2024-5-01T12:00:05Z",
      "24-05-01T12:00:05Z",
      "2024-05-01T12:0:05Z",
      "2024-05-01T12:00:5Z",
      "+2024-05-01T12:00:05Z",
      "2024-02-30T00:00:00Z",  // Feb 30.
      "2023-02-29T00:00:00Z",  // Not a leap year.
      "1900-02-29T00:00:00Z",  // Century, not a leap year.
      "2024-13-01T00:00:00Z",  // Month 13.
      "2024-00-01T00:00:00Z",
      "2024-01-00T00:00:00Z",
      "2024-01-32T00:00:00Z",
      "2024-04-31T00:00:00Z",
      "2024-05-01T24:00:00Z",
      "2024-05-01T12:60:00Z",
      "2024-05-01T12:00:61Z",
      "1677-12-31T23:59:59Z",  // Outside int64 nanoseconds (whole years).
      "2262-01-01T00:00:00Z",
      "0000-01-01T00:00:00Z",
      "9999-12-31T23:59:59Z",
  };
  for (const std::string& text : cases) {
    EXPECT_EQ(ParseRfc3339Nanos(text), std::nullopt) << text;
  }
}

// Rfc3339Cache gives ParseRfc3339Nanos's result whatever came before it.
TEST(Rfc3339Cache, SamePrefixReusesTheSecondAndParsesTheRest) {
  constexpr std::int64_t k = 1714564805 * kSecond;  // 2024-05-01T12:00:05Z
  Rfc3339Cache cache;
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.1Z"), k + 100'000'000);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.25Z"), k + 250'000'000);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05Z"), k);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.999999999+00:00"), k + 999'999'999);
  // Same prefix, different offsets: a different instant each.
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05+01:00"), k - 3600 * kSecond);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.5-07:00"), k + 7 * 3600 * kSecond + 500'000'000);
  // Same prefix, bad rest: rejected, and the next good one still parses.
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.Z"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.1234567890Z"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05+24:00"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05Z "), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.3Z"), k + 300'000'000);
}

TEST(Rfc3339Cache, DifferentSecondIsParsedAgain) {
  constexpr std::int64_t k = 1714564805 * kSecond;  // 2024-05-01T12:00:05Z
  Rfc3339Cache cache;
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.5Z"), k + 500'000'000);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:06.5Z"), k + kSecond + 500'000'000);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:05.5Z"), k + 500'000'000);  // Back again.
  EXPECT_EQ(cache.Parse("2024-05-02T12:00:05Z"), k + 86400 * kSecond);
  EXPECT_EQ(cache.Parse("2024-05-01t12:00:05Z"), k);  // Lower-case t: another prefix, same second.
  EXPECT_EQ(cache.Parse("2016-12-31T23:59:60Z"), 1483228800 * kSecond);  // Leap second.
}

TEST(Rfc3339Cache, InvalidPrefixIsRejectedAndDoesNotStick) {
  Rfc3339Cache cache;
  EXPECT_EQ(cache.Parse(""), std::nullopt);
  EXPECT_EQ(cache.Parse("-"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-05-01T12:00:0"), std::nullopt);  // 18 bytes.
  EXPECT_EQ(cache.Parse("2024-02-30T00:00:00Z"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-02-30T00:00:00.5Z"), std::nullopt);  // Same invalid prefix.
  EXPECT_EQ(cache.Parse("2024-02-29T00:00:00Z"), 1709164800 * kSecond);
  EXPECT_EQ(cache.Parse("2024-02-29X00:00:00Z"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-02-29T00:00:00Z"), 1709164800 * kSecond);
  // A short text after a cached prefix is not compared past its end.
  EXPECT_EQ(cache.Parse("2024-02-29T00:00:0"), std::nullopt);
  EXPECT_EQ(cache.Parse("2024-02-29T00:00:00+00:00"), 1709164800 * kSecond);
}

// Random sequences of timestamps, many sharing their second, with random damage: the
// cache always agrees with ParseRfc3339Nanos.
TEST(Rfc3339Cache, AgreesWithParseRfc3339NanosOnRandomSequences) {
  const std::string seconds[] = {"2024-05-01T12:00:05", "2024-05-01T12:00:06", "2024-02-29T23:59:60",
                                 "2024-02-30T00:00:00", "1678-01-01T00:00:00", "2261-12-31T23:59:59",
                                 "1969-12-31t23:59:59", "2024-5-01T12:00:05Z"};
  const std::string rests[] = {"Z",      "z",           ".1Z", ".123456+00:00", ".123456789-07:00", "+23:59",
                               "-23:59", ".Z",          "",    ".1234567890Z",  "+24:00",           "+05:60",
                               "+0000",  "Z ",          ".5",  ".000001Z",      "-00:00",           "ZZ",
                               "+5:00",  ".96214+00:00"};
  constexpr std::string_view kDamage = "0123456789-:.+TZtz ";
  std::mt19937 rng(3339);
  std::uniform_int_distribution<std::size_t> pick_second(0, std::size(seconds) - 1);
  std::uniform_int_distribution<std::size_t> pick_rest(0, std::size(rests) - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<std::size_t> pick_damage(0, kDamage.size() - 1);
  Rfc3339Cache cache;
  std::string text = seconds[0] + rests[0];
  for (int round = 0; round < 200000; ++round) {
    const int roll = percent(rng);
    if (roll < 30) {
      text = seconds[pick_second(rng)] + rests[pick_rest(rng)];  // New second.
    } else if (roll < 80) {
      text = text.substr(0, std::min(text.size(), kRfc3339SecondBytes)) + rests[pick_rest(rng)];
    } else if (!text.empty()) {
      std::uniform_int_distribution<std::size_t> at(0, text.size() - 1);
      if (roll < 90) {
        text[at(rng)] = kDamage[pick_damage(rng)];
      } else {
        text.erase(at(rng), 1);
      }
    }
    ASSERT_EQ(cache.Parse(text), ParseRfc3339Nanos(text)) << text << " at round " << round;
  }
}

// Header fields of every length around the 16-byte blocks the SP search reads: each
// field comes out whole, and a doubled SP (an empty field) is rejected.
TEST(ParseFrame, FieldsOfEveryLengthAroundTheBlockSize) {
  for (std::size_t field = 0; field < 5; ++field) {
    for (std::size_t length = 1; length <= 40; ++length) {
      std::string fields[] = {"2024-05-01T12:00:01Z", "host", "app", "web.1", "-"};
      fields[field].assign(length, static_cast<char>('a' + field));
      std::string msg = "<190>1";
      std::size_t field_begin = 0;
      for (std::size_t i = 0; i < 5; ++i) {
        msg += " ";
        if (i == field) field_begin = msg.size();
        msg += fields[i];
      }
      const std::string with_line = msg + " x=1\n";  // The views point into it.
      std::optional<Frame> frame = ParseFrame(with_line);
      ASSERT_TRUE(frame.has_value()) << msg;
      EXPECT_EQ(frame->timestamp, fields[0]);
      EXPECT_EQ(frame->hostname, fields[1]);
      EXPECT_EQ(frame->app_name, fields[2]);
      EXPECT_EQ(frame->proc_id, fields[3]);
      EXPECT_EQ(frame->msg_id, fields[4]);
      EXPECT_EQ(frame->line, "x=1");
      frame = ParseFrame(msg);  // Nothing after MSGID.
      ASSERT_TRUE(frame.has_value()) << msg;
      EXPECT_EQ(frame->msg_id, fields[4]);
      EXPECT_EQ(frame->line, "");
      std::string doubled = msg;
      doubled.insert(field_begin, " ");
      EXPECT_EQ(ParseFrame(doubled + " x=1"), std::nullopt) << doubled;
    }
  }
}

// ---------------------------------------------------------------------------------------
// The failure cases in tests/fixtures/cases: framing and header counts must match
// expect.stats (frames = delimited by a valid LEN; bad_frame = LEN 0, a broken rest
// of body, or a malformed header; SEMANTICS §1.2, §1.5).

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Counts {
  int frames = 0;
  int bad_frame = 0;
  bool broken = false;
};

Counts CountBody(std::string_view body) {
  Counts counts;
  FrameReader reader(body);
  std::string_view frame;
  while (true) {
    const FrameStatus status = reader.Next(&frame);
    if (status == S::kEnd) break;
    if (status == S::kBroken) {
      ++counts.bad_frame;
      counts.broken = true;
      break;
    }
    ++counts.frames;
    if (status == S::kEmpty || !ParseFrame(frame).has_value()) ++counts.bad_frame;
  }
  return counts;
}

TEST(FixtureCases, C03GluedFramesAndStrayLf) {
  const std::string body = ReadFile(DRAINMET_FIXTURES_DIR "/cases/C03/body.logplex");
  const Read read = ReadAll(body);
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kFrame, S::kFrame, S::kEnd}));
  ASSERT_EQ(read.frames.size(), 3u);
  const char* want[] = {"count#orders.created=1", "count#orders.created=2", "count#orders.created=4"};
  for (std::size_t i = 0; i < 3; ++i) {
    const std::optional<Frame> frame = ParseFrame(read.frames[i]);
    ASSERT_TRUE(frame.has_value());
    EXPECT_EQ(frame->line, want[i]);
  }
}

TEST(FixtureCases, C04Utf8Frames) {
  const Read read = ReadAll(ReadFile(DRAINMET_FIXTURES_DIR "/cases/C04/body.logplex"));
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kFrame, S::kEnd}));
  ASSERT_EQ(read.frames.size(), 2u);
  const std::optional<Frame> second = ParseFrame(read.frames[1]);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->line, "user=\"Zo\xC3\xAB\" count#checkout.done=1");
}

TEST(FixtureCases, C05LenPastEndKeepsFirstFrame) {
  const Read read = ReadAll(ReadFile(DRAINMET_FIXTURES_DIR "/cases/C05/body.logplex"));
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kBroken}));
  EXPECT_TRUE(read.rest.starts_with("106 <190>1 ")) << read.rest;
  ASSERT_EQ(read.frames.size(), 1u);
  const std::optional<Frame> frame = ParseFrame(read.frames[0]);
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->line, "count#uploads=1");
}

TEST(FixtureCases, C06MultiLineMessage) {
  const Read read = ReadAll(ReadFile(DRAINMET_FIXTURES_DIR "/cases/C06/body.logplex"));
  EXPECT_EQ(read.statuses, (std::vector<S>{S::kFrame, S::kFrame, S::kEnd}));
  ASSERT_EQ(read.frames.size(), 2u);
  const std::optional<Frame> first = ParseFrame(read.frames[0]);
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->line.starts_with("Error: boom\n")) << first->line;
  const std::optional<Frame> second = ParseFrame(read.frames[1]);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->line, "measure#api.latency=87ms");
}

TEST(FixtureCases, EveryCaseMatchesFramesAndBadFrame) {
  const std::filesystem::path root = DRAINMET_FIXTURES_DIR "/cases";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    const std::filesystem::path body_path = entry.path() / "body.logplex";
    const std::filesystem::path case_path = entry.path() / "case.json";
    if (!std::filesystem::exists(body_path) || !std::filesystem::exists(case_path)) continue;
    const nlohmann::json spec =
        nlohmann::json::parse(ReadFile(case_path), nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(spec.is_discarded()) << case_path;
    if (!spec.contains("expect") || !spec["expect"].contains("stats")) continue;
    const nlohmann::json& stats = spec["expect"]["stats"];
    SCOPED_TRACE(entry.path().filename().string());
    const Counts counts = CountBody(ReadFile(body_path));
    EXPECT_EQ(counts.frames, stats.value("frames", -1));
    EXPECT_EQ(counts.bad_frame, stats.value("bad_frame", -1));
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

// The sample drain bodies frame cleanly end to end, with every header parsed.
TEST(FixtureCases, HerokuSampleBodiesFrameCleanly) {
  const std::filesystem::path root = DRAINMET_FIXTURES_DIR "/data/heroku-sample";
  if (!std::filesystem::exists(root)) GTEST_SKIP() << "no " << root;
  int bodies = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    if (entry.path().extension() != ".logplex") continue;
    SCOPED_TRACE(entry.path().filename().string());
    const std::string body = ReadFile(entry.path());
    FrameReader reader(body);
    std::string_view frame;
    FrameStatus status;
    int frames = 0;
    while ((status = reader.Next(&frame)) == S::kFrame) {
      ++frames;
      const std::optional<Frame> parsed = ParseFrame(frame);
      ASSERT_TRUE(parsed.has_value()) << frame;
      EXPECT_TRUE(ParseRfc3339Nanos(parsed->timestamp).has_value()) << parsed->timestamp;
    }
    EXPECT_EQ(status, S::kEnd);
    EXPECT_GT(frames, 0);
    ++bodies;
  }
  EXPECT_GT(bodies, 0);
}

// Bad input never crashes (run under the sanitizers): random bodies from an alphabet
// that hits every branch of the grammar.
TEST(FrameReader, RandomBytesNeverCrash) {
  constexpr std::string_view kAlphabet =
      "0123456789 <>[]=\"\\-:.+TZtz\r\n\xEF\xBB\xBF"
      "ab";
  std::mt19937 rng(1424);
  std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
  std::uniform_int_distribution<int> length(0, 80);
  for (int round = 0; round < 20000; ++round) {
    std::string body;
    const int n = length(rng);
    for (int i = 0; i < n; ++i) body.push_back(kAlphabet[pick(rng)]);
    if (round % 2 == 0) body = Framed(std::string(kHttps) + body) + body;
    FrameReader reader(body);
    std::string_view frame;
    std::size_t consumed_before = body.size() + 1;
    FrameStatus status;
    while ((status = reader.Next(&frame)) == S::kFrame || status == S::kEmpty) {
      ASSERT_LT(reader.rest().size(), consumed_before);  // Always makes progress.
      consumed_before = reader.rest().size();
      if (const std::optional<Frame> parsed = ParseFrame(frame)) {
        ASSERT_LE(parsed->line.size(), frame.size());
        (void)ParseRfc3339Nanos(parsed->timestamp);
      }
    }
    (void)ParseFrame(body);
    (void)ParseRfc3339Nanos(body);
  }
}

}  // namespace
}  // namespace drainmet::logplex
