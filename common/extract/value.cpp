#include "common/extract/value.h"

#include <charconv>
#include <cstdint>
#include <system_error>

namespace drainmet::extract {
namespace {

constexpr double kMaxMagnitude = 1e126;  // SEMANTICS §3.3.

constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Exponents stop growing here ("1e99999999999999999999"); only their sign matters then.
constexpr std::int64_t kExponentCap = 1'000'000'000;

// The fast path: a plain decimal of at most kFastDigits digits and no exponent is
// M / 10^F with M < 10^15 < 2^53 and 10^F <= 10^15, both exact doubles, so one IEEE
// division gives the correctly rounded value, which std::from_chars also returns.
constexpr std::size_t kFastDigits = 15;
constexpr double kPowersOfTen[kFastDigits + 1] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                  1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

// A parsed magnitude (>= 0) with its sign; zero is always +0 (no negative zero, SEMANTICS §3.3).
double WithSign(double magnitude, bool negative) {
  if (magnitude == 0) return 0;
  return negative ? -magnitude : magnitude;
}

}  // namespace

bool ParseValue(std::string_view text, ParsedValue* out) {
  const std::size_t n = text.size();
  std::size_t i = 0;
  bool negative = false;
  if (i < n && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  const std::size_t mantissa_begin = i;
  if (i + 1 < n && text[i] == '0' && (text[i + 1] == 'x' || text[i + 1] == 'X')) return false;

  // Mantissa: digits with at most one '.', at least one digit. Track the decimal
  // exponent of the first significant digit, to classify out-of-range results.
  std::size_t digits = 0;
  bool seen_dot = false;
  bool seen_significant = false;
  std::int64_t integer_digits = 0;
  std::int64_t fraction_zeros = 0;  // Zeros after '.' before the first significant digit.
  std::uint64_t mantissa = 0;       // The digits as an integer, while digits <= kFastDigits.
  std::size_t fraction_digits = 0;
  for (; i < n; ++i) {
    const char c = text[i];
    if (c == '.') {
      if (seen_dot) break;
      seen_dot = true;
    } else if (IsDigit(c)) {
      ++digits;
      if (digits <= kFastDigits) mantissa = mantissa * 10 + static_cast<std::uint64_t>(c - '0');
      if (seen_dot) ++fraction_digits;
      if (!seen_dot) {
        if (seen_significant || c != '0') ++integer_digits;
      } else if (!seen_significant && integer_digits == 0 && c == '0') {
        ++fraction_zeros;
      }
      if (c != '0') seen_significant = true;
    } else {
      break;
    }
  }
  if (digits == 0) return false;  // "", "-", ".", "e5", "inf", "nan", " 5".
  const std::size_t mantissa_end = i;
  const std::int64_t lead_exponent = integer_digits > 0 ? integer_digits - 1 : -(fraction_zeros + 1);

  // Exponent: only when 'e'/'E' is followed by digits (after an optional sign);
  // otherwise the 'e' starts the units ("5em" -> 5 "em").
  std::int64_t exponent = 0;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    std::size_t j = i + 1;
    bool exponent_negative = false;
    if (j < n && (text[j] == '+' || text[j] == '-')) {
      exponent_negative = text[j] == '-';
      ++j;
    }
    if (j < n && IsDigit(text[j])) {
      for (; j < n && IsDigit(text[j]); ++j) {
        if (exponent < kExponentCap) exponent = exponent * 10 + (text[j] - '0');
      }
      if (exponent_negative) exponent = -exponent;
      i = j;
    }
  }

  double value = 0;
  const char* const first = text.data() + mantissa_begin;
  const char* const last = text.data() + i;
  if (digits <= kFastDigits && i == mantissa_end) {  // No exponent.
    // Below 10^15: never out of range, never above kMaxMagnitude.
    out->value = WithSign(static_cast<double>(mantissa) / kPowersOfTen[fraction_digits], negative);
    out->units = text.substr(i);
    return true;
  }
  // std::from_chars is locale-free; it gets exactly the matched span without the sign
  // (it rejects '+').
  const std::from_chars_result result = std::from_chars(first, last, value, std::chars_format::general);
  if (result.ec == std::errc::result_out_of_range) {
    // The value lies in [10^d, 10^(d+1)) for d = lead_exponent + exponent, so a
    // negative d can only underflow and a non-negative one only overflow.
    if (!seen_significant || lead_exponent + exponent < 0) {
      value = 0;  // Underflow (SEMANTICS §3.3).
    } else {
      return false;  // Overflow: too large.
    }
  } else if (result.ec != std::errc() || result.ptr != last) {
    return false;  // Cannot happen for the span matched above; stay safe.
  }
  if (value > kMaxMagnitude) return false;  // Also excludes infinities; NaN cannot occur.
  out->value = WithSign(value, negative);
  out->units = text.substr(i);
  return true;
}

}  // namespace drainmet::extract
