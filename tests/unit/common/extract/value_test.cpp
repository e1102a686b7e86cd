#include "common/extract/value.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

#include "common/logfmt/scanner.h"
#include "common/logplex/frame_reader.h"
#include "gtest/gtest.h"

namespace drainmet::extract {
namespace {

struct ValueRow {
  std::string name;
  std::string text;
  bool ok;
  double value = 0;
  std::string units;
};

ValueRow Bad(std::string name, std::string text) {
  return ValueRow{std::move(name), std::move(text), false, 0, ""};
}

class ParseValueTest : public testing::TestWithParam<ValueRow> {};

TEST_P(ParseValueTest, FollowsSemantics31And33) {
  const ValueRow& row = GetParam();
  ParsedValue parsed{-99, "untouched"};
  ASSERT_EQ(ParseValue(row.text, &parsed), row.ok) << row.text;
  if (!row.ok) {
    EXPECT_EQ(parsed.value, -99);  // Not written on failure.
    EXPECT_EQ(parsed.units, "untouched");
    return;
  }
  EXPECT_DOUBLE_EQ(parsed.value, row.value);
  EXPECT_FALSE(std::signbit(parsed.value) && parsed.value == 0) << "no negative zero";
  EXPECT_EQ(parsed.units, row.units);
}

INSTANTIATE_TEST_SUITE_P(
    Accepted, ParseValueTest,
    testing::Values(
        ValueRow{"Integer", "17", true, 17, ""}, ValueRow{"DecimalWithUnits", "4.5ms", true, 4.5, "ms"},
        ValueRow{"ExponentThenUnits", "7.9e-05s", true, 7.9e-05, "s"},
        ValueRow{"C09Exponent", "7.9341e-05s", true, 7.9341e-05, "s"},
        ValueRow{"UpperExponentWithPlus", "2.5E+3", true, 2500, ""},
        ValueRow{"NegativeExponent", "1e-3", true, 0.001, ""},
        ValueRow{"PositiveExponentNoSign", "1e3", true, 1000, ""},
        ValueRow{"EWithoutDigitsIsUnits", "5em", true, 5, "em"},
        ValueRow{"ESignWithoutDigitsIsUnits", "5e+m", true, 5, "e+m"},
        ValueRow{"EAtEndIsUnits", "5e", true, 5, "e"},
        ValueRow{"DigitsAfterUnitsStayUnits", "12ms3", true, 12, "ms3"},
        ValueRow{"LeadingDot", ".5", true, 0.5, ""}, ValueRow{"TrailingDot", "5.", true, 5, ""},
        ValueRow{"SecondDotStartsUnits", "1.2.3", true, 1.2, ".3"}, ValueRow{"PlusSign", "+3", true, 3, ""},
        ValueRow{"NegativeWithUnits", "-3.5ms", true, -3.5, "ms"},
        ValueRow{"NegativeCelsius", "-3C", true, -3, "C"}, ValueRow{"C10Negative", "-12", true, -12, ""},
        ValueRow{"Pages", "348836pages", true, 348836, "pages"},
        ValueRow{"Gigabytes", "100GB", true, 100, "GB"},
        ValueRow{"UnitsKeptVerbatim", "4 ms", true, 4, " ms"}, ValueRow{"LeadingZeros", "007", true, 7, ""},
        ValueRow{"Zero", "0", true, 0, ""}, ValueRow{"NegativeZeroIsZero", "-0", true, 0, ""},
        ValueRow{"ZeroMb", "0.00MB", true, 0, "MB"}, ValueRow{"UnderflowIsZero", "1e-400", true, 0, ""},
        ValueRow{"NegativeUnderflowIsZero", "-1e-400ms", true, 0, "ms"},
        ValueRow{"UnderflowWithFractionZeros", "0.0001e-320", true, 0, ""},
        ValueRow{"UnderflowWithIntegerDigits", "123e-330", true, 0, ""},
        ValueRow{"HugeNegativeExponent", "1e-99999999999999999999999", true, 0, ""},
        ValueRow{"ZeroWithHugeExponent", "0e99999999999999999999", true, 0, ""},
        ValueRow{"Subnormal", "5e-324", true, 5e-324, ""},
        ValueRow{"LimitIncluded", "1e126", true, 1e126, ""},
        ValueRow{"NegativeLimitIncluded", "-1e126", true, -1e126, ""},
        ValueRow{"LongMantissa", "3.14159265358979323846264338327950288", true, 3.141592653589793, ""}),
    [](const testing::TestParamInfo<ValueRow>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Rejected, ParseValueTest,
    testing::Values(Bad("Empty", ""), Bad("ZeroBeforeX", "0xyz"), Bad("Hex", "0x1F"),
                    Bad("HexWithUnits", "0x1Fms"), Bad("NegativeHex", "-0x1F"), Bad("UpperHex", "0X1"),
                    Bad("Inf", "inf"), Bad("NegativeInf", "-inf"), Bad("Infinity", "Infinity"),
                    Bad("NanLower", "nan"), Bad("NanMixed", "NaN"), Bad("SignOnly", "-"),
                    Bad("PlusOnly", "+"), Bad("DotOnly", "."), Bad("SignDot", "-."),
                    Bad("ExponentOnly", "e5"), Bad("DoubleSign", "--3"), Bad("LeadingSpace", " 5"),
                    Bad("Word", "ms"), Bad("Overflow", "1e400"), Bad("NegativeOverflow", "-1e400"),
                    Bad("OverflowPastDoubleMax", "1.8e308"), Bad("HugeExponent", "1e99999999999999999999999"),
                    Bad("AboveLimit", "1.0000001e126"), Bad("FarAboveLimit", "1e200"),
                    Bad("ManyDigitsAboveLimit", std::string(130, '9'))),
    [](const testing::TestParamInfo<ValueRow>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// The short-decimal fast path gives bit for bit what std::from_chars gives.

// Checks one text: when ParseValue accepts it and std::from_chars parses the matched
// number (the text without its sign and units) in range, the doubles are identical
// (with the sign applied and -0 made +0, as SEMANTICS §3.3 says).
void ExpectSameAsFromChars(std::string_view text) {
  ParsedValue parsed;
  if (!ParseValue(text, &parsed)) return;
  ASSERT_TRUE(text.ends_with(parsed.units)) << text;
  std::string_view span = text.substr(0, text.size() - parsed.units.size());
  bool negative = false;
  if (!span.empty() && (span[0] == '+' || span[0] == '-')) {
    negative = span[0] == '-';
    span.remove_prefix(1);
  }
  double reference = 0;
  const std::from_chars_result result =
      std::from_chars(span.data(), span.data() + span.size(), reference, std::chars_format::general);
  if (result.ec != std::errc() || result.ptr != span.data() + span.size()) return;  // Slow path only.
  if (reference == 0) {
    reference = 0;
  } else if (negative) {
    reference = -reference;
  }
  ASSERT_EQ(std::bit_cast<std::uint64_t>(parsed.value), std::bit_cast<std::uint64_t>(reference)) << text;
}

TEST(ParseValueFastPath, EveryValueOfTheDataSetsMatchesFromChars) {
  const std::filesystem::path root = DRAINMET_FIXTURES_DIR "/data";
  if (!std::filesystem::exists(root)) GTEST_SKIP() << "no " << root;
  std::size_t values = 0;
  std::string scratch;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".logplex") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    logplex::FrameReader reader(body);
    std::string_view bytes;
    while (reader.Next(&bytes) == logplex::FrameStatus::kFrame) {
      const std::optional<logplex::Frame> frame = logplex::ParseFrame(bytes);
      if (!frame) continue;
      logfmt::Scanner scanner(frame->line, scratch);
      for (logfmt::Pair pair; scanner.Next(&pair);) {
        if (pair.value.empty()) continue;
        ++values;
        ExpectSameAsFromChars(pair.value);
      }
    }
  }
  EXPECT_GT(values, 10000u);
}

TEST(ParseValueFastPath, EveryShortDecimalMatchesFromChars) {
  // Every value of up to 5 digits with the dot anywhere (or none), both signs.
  for (int number = 0; number < 100000; ++number) {
    const std::string digits = std::to_string(number);
    for (std::size_t width = digits.size(); width <= 5; ++width) {
      const std::string padded = std::string(width - digits.size(), '0') + digits;
      for (std::size_t dot = 0; dot <= width + 1; ++dot) {
        std::string text = padded;
        if (dot <= width) text.insert(dot, ".");
        ExpectSameAsFromChars(text);
        ExpectSameAsFromChars("-" + text + "ms");
      }
    }
  }
}

TEST(ParseValueFastPath, RandomDecimalsMatchFromChars) {
  std::mt19937_64 rng(5424);
  std::uniform_int_distribution<int> length(1, 20);  // Past the 15 digits of the fast path.
  std::uniform_int_distribution<int> digit(0, 9);
  std::uniform_int_distribution<int> percent(0, 99);
  const std::string suffixes[] = {"", "ms", "MB", "e", "e5", "E-3", ".", "..5", "x", "s"};
  std::uniform_int_distribution<std::size_t> suffix(0, std::size(suffixes) - 1);
  for (int round = 0; round < 1000000; ++round) {
    std::string text;
    const int roll = percent(rng);
    if (roll < 10) text = "-";
    if (roll >= 10 && roll < 15) text = "+";
    const int n = length(rng);
    std::uniform_int_distribution<int> dot_at(-1, n);
    const int dot = dot_at(rng);
    for (int i = 0; i < n; ++i) {
      if (i == dot) text.push_back('.');
      text.push_back(static_cast<char>('0' + digit(rng)));
    }
    if (dot == n) text.push_back('.');
    text += suffixes[suffix(rng)];
    ExpectSameAsFromChars(text);
  }
}

}  // namespace
}  // namespace drainmet::extract
