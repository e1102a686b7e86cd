#include "common/extract/value.h"

#include <cmath>
#include <string>

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

}  // namespace
}  // namespace drainmet::extract
