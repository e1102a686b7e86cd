#include "common/logfmt/scanner.h"

#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drainmet::logfmt {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A pair as the tests write it: `value` is ignored when has_value is false.
struct Expected {
  std::string key;
  bool has_value = false;
  std::string value;
  bool operator==(const Expected&) const = default;
};

void PrintTo(const Expected& e, std::ostream* os) {
  *os << e.key;
  if (e.has_value) *os << "=<" << e.value << ">";
}

Expected Bare(std::string key) { return Expected{std::move(key), false, ""}; }
Expected Kv(std::string key, std::string value) { return Expected{std::move(key), true, std::move(value)}; }

struct ScanResult {
  std::vector<Expected> pairs;
  bool failed = false;
};

ScanResult ScanAll(std::string_view line) {
  std::string scratch;
  Scanner scanner(line, scratch);
  ScanResult result;
  Pair pair;
  while (scanner.Next(&pair)) {
    EXPECT_TRUE(pair.has_value || pair.value.empty()) << pair.key;
    result.pairs.push_back(Expected{std::string(pair.key), pair.has_value,
                                    pair.has_value ? std::string(pair.value) : std::string()});
  }
  result.failed = scanner.failed();
  EXPECT_FALSE(scanner.Next(&pair)) << "Next after the end must stay false";
  return result;
}

// FORMATS.md §4, the kr/logfmt table: one row each, with SEMANTICS §2.1's difference
// (a malformed quoted value ends the line) where the row has an error.
struct GrammarRow {
  std::string name;
  std::string line;
  std::vector<Expected> pairs;
  bool failed = false;
};

class ScannerGrammarTest : public testing::TestWithParam<GrammarRow> {};

TEST_P(ScannerGrammarTest, DeliversThePairsOfFormats4) {
  const GrammarRow& row = GetParam();
  const ScanResult result = ScanAll(row.line);
  EXPECT_EQ(result.pairs, row.pairs);
  EXPECT_EQ(result.failed, row.failed);
}

INSTANTIATE_TEST_SUITE_P(
    Formats4Table, ScannerGrammarTest,
    testing::Values(
        GrammarRow{"BareEmptyAndQuoted",
                   "a=1 b=\"bar\" c d= e=\"\"",
                   {Kv("a", "1"), Kv("b", "bar"), Bare("c"), Bare("d"), Kv("e", "")}},
        GrammarRow{"SpaceAfterEqualsEndsThePair", "key= value", {Bare("key"), Bare("value")}},
        GrammarRow{"KeyEqualsAtEnd", "x=", {Bare("x")}}, GrammarRow{"KeyEqualsEquals", "x==", {Bare("x")}},
        GrammarRow{"EqualsEndsAValue", "h=1=2", {Kv("h", "1"), Bare("2")}},
        GrammarRow{"EqualsEndsAWordValue", "foo=bar=baz", {Kv("foo", "bar"), Bare("baz")}},
        GrammarRow{"NoSpaceNeededAfterClosingQuote", "a=\"x\"b=1", {Kv("a", "x"), Kv("b", "1")}},
        GrammarRow{"QuoteEndsAKey", "j\"k l", {Bare("j"), Bare("k"), Bare("l")}},
        GrammarRow{"LeadingEqualsAndQuotedKeysAreGarbage",
                   "=5 \"q\"=1 x",
                   {Bare("5"), Bare("q"), Bare("1"), Bare("x")}},
        GrammarRow{"QuotedValueHoldsEqualsAndSpace", "k=\"a=b c\" z=1", {Kv("k", "a=b c"), Kv("z", "1")}},
        GrammarRow{"CrLfAreGarbage", "k=v\r\nz=2", {Kv("k", "v"), Kv("z", "2")}},
        GrammarRow{"TabAndLfAreGarbage", "tab\tsep=1\nnl=2", {Bare("tab"), Kv("sep", "1"), Kv("nl", "2")}},
        GrammarRow{"Utf8BytesAreIdentBytes", "ключ=значение é=1", {Kv("ключ", "значение"), Kv("é", "1")}},
        GrammarRow{"RawControlByteKeptWithoutEscapes", "k=\"tab\tin\"", {Kv("k", "tab\tin")}},
        GrammarRow{
            "JsonEscapesDecoded", "k=\"line\\nbreak\" u=\"\\u00e9\"", {Kv("k", "line\nbreak"), Kv("u", "é")}},
        GrammarRow{"EscapedBackslashBeforeQuote", "a=\"x\\\\\" b=2", {Kv("a", "x\\"), Kv("b", "2")}},
        // kr/logfmt dropped this pair and went on; SEMANTICS §2.1 stops the line.
        GrammarRow{"BadEscapeStopsTheLine", "z=0 g=\"a\\qb\" after=1", {Kv("z", "0")}, true},
        GrammarRow{"UnterminatedQuoteKeepsPairsBefore", "a=1 b=\"x", {Kv("a", "1")}, true},
        GrammarRow{"EscapedQuoteDoesNotTerminate", "a=\"x\\\"", {}, true},
        GrammarRow{"DuplicateKeysInOrder", "a=1 a=2", {Kv("a", "1"), Kv("a", "2")}},
        GrammarRow{"LoneQuoteIsGarbage", "\"", {}}),
    [](const testing::TestParamInfo<GrammarRow>& info) { return info.param.name; });

TEST(ScannerTest, EmptyAndGarbageOnlyLinesHaveNoPairs) {
  for (std::string_view line : {"", " ", "\t\r\n", "= = \"", "   ==  "}) {
    SCOPED_TRACE(line);
    const ScanResult result = ScanAll(line);
    EXPECT_THAT(result.pairs, IsEmpty());
    EXPECT_FALSE(result.failed);
  }
}

TEST(ScannerTest, MarksQuotedValues) {
  std::string scratch;
  Scanner scanner("a=1 b=\"2\" c=\"\\t\" d", scratch);
  Pair pair;
  ASSERT_TRUE(scanner.Next(&pair));
  EXPECT_FALSE(pair.quoted);
  ASSERT_TRUE(scanner.Next(&pair));
  EXPECT_TRUE(pair.quoted);
  EXPECT_EQ(pair.value, "2");
  ASSERT_TRUE(scanner.Next(&pair));
  EXPECT_TRUE(pair.quoted);
  EXPECT_EQ(pair.value, "\t");
  ASSERT_TRUE(scanner.Next(&pair));
  EXPECT_FALSE(pair.quoted);
  EXPECT_FALSE(pair.has_value);
  EXPECT_FALSE(scanner.Next(&pair));
  EXPECT_FALSE(scanner.failed());
}

TEST(ScannerTest, UnescapedValuesPointIntoTheLine) {
  const std::string line = "k=v q=\"w x\"";
  std::string scratch;
  Scanner scanner(line, scratch);
  Pair pair;
  ASSERT_TRUE(scanner.Next(&pair));
  EXPECT_EQ(pair.key.data(), line.data());
  EXPECT_EQ(pair.value.data(), line.data() + 2);
  ASSERT_TRUE(scanner.Next(&pair));
  EXPECT_EQ(pair.value.data(), line.data() + 7);
}

// The scratch capacity is reserved up front, so the view of an earlier escaped value
// stays valid while later ones are decoded (no reallocation), even in the worst case
// of 3 output bytes per input byte.
TEST(ScannerTest, EarlierEscapedViewsStayValid) {
  std::string line;
  for (int i = 0; i < 50; ++i) {
    line += "k=\"\\n";
    line += std::string(20, '\xff');  // Each invalid byte becomes U+FFFD (3 bytes).
    line += "\" ";
  }
  std::string scratch;
  Scanner scanner(line, scratch);
  std::vector<Pair> pairs;
  Pair pair;
  while (scanner.Next(&pair)) pairs.push_back(pair);
  ASSERT_FALSE(scanner.failed());
  ASSERT_EQ(pairs.size(), 50u);
  std::string want = "\n";
  for (int i = 0; i < 20; ++i) want += "\xEF\xBF\xBD";
  for (const Pair& p : pairs) EXPECT_EQ(p.value, want);
  EXPECT_LE(scratch.size(), scratch.capacity());
  EXPECT_GE(scratch.capacity(), 3 * line.size());
}

TEST(ScannerTest, ReusedScratchIsClearedPerLineWithoutShrinking) {
  std::string scratch;
  {
    Scanner scanner("a=\"\\u00e9\\u00e9\\u00e9\\u00e9\"", scratch);
    Pair pair;
    ASSERT_TRUE(scanner.Next(&pair));
  }
  const std::size_t capacity = scratch.capacity();
  const char* data = scratch.data();
  Scanner scanner("b=\"\\t\"", scratch);
  Pair pair;
  ASSERT_TRUE(scanner.Next(&pair));
  EXPECT_EQ(pair.value, "\t");
  EXPECT_EQ(scratch.capacity(), capacity);  // Smaller line: no reallocation.
  EXPECT_EQ(scratch.data(), data);
}

TEST(ScannerTest, TrailingBackslashIsUnterminated) {
  const ScanResult result = ScanAll("a=1 b=\"x\\");
  EXPECT_THAT(result.pairs, ElementsAre(Kv("a", "1")));
  EXPECT_TRUE(result.failed);
}

TEST(ScannerTest, RawControlByteInEscapedValueStopsTheLine) {
  const ScanResult result = ScanAll("a=1 b=\"\\n\x01\" c=3");
  EXPECT_THAT(result.pairs, ElementsAre(Kv("a", "1")));
  EXPECT_TRUE(result.failed);
}

TEST(ScannerTest, KeyEqualsQuoteRightAfterValueIsGarbage) {
  // The '"' that ends an unquoted value does not open a quoted one.
  const ScanResult result = ScanAll("a=1\"b c\"");
  EXPECT_THAT(result.pairs, ElementsAre(Kv("a", "1"), Bare("b"), Bare("c")));
  EXPECT_FALSE(result.failed);
}

// UnquoteEscaped: JSON string rules (FORMATS.md §4).
struct UnquoteRow {
  std::string name;
  std::string inner;
  bool ok;
  std::string out;
};

class UnquoteEscapedTest : public testing::TestWithParam<UnquoteRow> {};

TEST_P(UnquoteEscapedTest, DecodesWithJsonRules) {
  const UnquoteRow& row = GetParam();
  std::string out = "pre:";  // Appends, never clears.
  EXPECT_EQ(UnquoteEscaped(row.inner, out), row.ok);
  if (row.ok) {
    EXPECT_EQ(out, "pre:" + row.out);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, UnquoteEscapedTest,
    testing::Values(
        UnquoteRow{"SimpleEscapes", R"(\"\\\/\'\b\f\n\r\t)", true, "\"\\/'\b\f\n\r\t"},
        UnquoteRow{"BmpEscape", R"(caf\u00E9)", true, "caf\xC3\xA9"},
        UnquoteRow{"NulEscape", R"(a\u0000b)", true, std::string("a\0b", 3)},
        UnquoteRow{"ThreeByteEscape", R"(\u20ac)", true, "\xE2\x82\xAC"},
        UnquoteRow{"SurrogatePairJoined", R"(\ud83d\ude00)", true, "\xF0\x9F\x98\x80"},
        UnquoteRow{"LoneHighSurrogate", R"(\ud83dx)", true, "\xEF\xBF\xBDx"},
        UnquoteRow{"LoneLowSurrogate", R"(\ude00)", true, "\xEF\xBF\xBD"},
        UnquoteRow{"HighThenNonLowEscape", R"(\ud83d\u0041)", true,
                   "\xEF\xBF\xBD"
                   "A"},
        UnquoteRow{"ValidUtf8Kept", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", true,
                   "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"},
        UnquoteRow{"InvalidUtf8Replaced",
                   "a\xFF"
                   "b",
                   true,
                   "a\xEF\xBF\xBD"
                   "b"},
        UnquoteRow{"TruncatedSequenceEachByteReplaced", "\xE2\x82", true, "\xEF\xBF\xBD\xEF\xBF\xBD"},
        UnquoteRow{"OverlongReplaced", "\xC0\xAF", true, "\xEF\xBF\xBD\xEF\xBF\xBD"},
        UnquoteRow{"EncodedSurrogateReplaced", "\xED\xA0\x80", true, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        UnquoteRow{"AboveMaxCodePointReplaced", "\xF4\x90\x80\x80", true,
                   "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        UnquoteRow{"Del0x7fKept", "a\x7f", true, "a\x7f"},
        UnquoteRow{"UnknownEscapeFails", R"(a\qb)", false, ""},
        UnquoteRow{"ShortUnicodeEscapeFails", R"(\u12)", false, ""},
        UnquoteRow{"NonHexUnicodeEscapeFails", R"(\u12g4)", false, ""},
        UnquoteRow{"TrailingBackslashFails", "a\\", false, ""},
        UnquoteRow{"RawControlByteFails", "a\nb", false, ""}, UnquoteRow{"RawQuoteFails", "a\"b", false, ""},
        UnquoteRow{"EmptyIsEmpty", "", true, ""}),
    [](const testing::TestParamInfo<UnquoteRow>& info) { return info.param.name; });

// Ident runs are found 16 bytes at a time: every run length around the block size, every
// kind of terminator (space, tab, NUL, '=', '"', 0x20) and bytes >= 0x80 inside runs.
TEST(ScannerTest, LongAndShortRunsEndAtEveryTerminator) {
  const std::string terminators[] = {" ", "\t", std::string(1, '\0'), "\x1f", "\x20"};
  for (std::size_t key_len = 1; key_len <= 40; ++key_len) {
    for (std::size_t value_len = 1; value_len <= 40; value_len += 3) {
      for (const std::string& end : terminators) {
        std::string key(key_len, 'k');
        key[key_len / 2] = static_cast<char>(0xC3);  // a byte >= 0x80 is ident
        const std::string value(value_len, '7');
        const std::string line = key + "=" + value + end + "b=\"q\"" + end + "tail";
        std::string scratch;
        Scanner scanner(line, scratch);
        Pair pair;
        ASSERT_TRUE(scanner.Next(&pair)) << key_len << " " << value_len;
        EXPECT_EQ(pair.key, key);
        EXPECT_EQ(pair.value, value);
        ASSERT_TRUE(scanner.Next(&pair));
        EXPECT_EQ(pair.key, "b");
        EXPECT_EQ(pair.value, "q");
        ASSERT_TRUE(scanner.Next(&pair));
        EXPECT_EQ(pair.key, "tail");
        EXPECT_FALSE(pair.has_value);
        EXPECT_FALSE(scanner.Next(&pair));
      }
      // '=' right after a value ends it (h=1=2 is h=1 then the bare key 2), '"' too.
      const std::string line = std::string(key_len, 'h') + "=" + std::string(value_len, '1') + "=2";
      std::string scratch;
      Scanner scanner(line, scratch);
      Pair pair;
      ASSERT_TRUE(scanner.Next(&pair));
      EXPECT_EQ(pair.value, std::string(value_len, '1'));
      ASSERT_TRUE(scanner.Next(&pair));
      EXPECT_EQ(pair.key, "2");
    }
  }
}

}  // namespace
}  // namespace drainmet::logfmt
