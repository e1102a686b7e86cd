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
  for (; i < n; ++i) {
    const char c = text[i];
    if (c == '.') {
      if (seen_dot) break;
      seen_dot = true;
    } else if (IsDigit(c)) {
      ++digits;
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

  // std::from_chars is locale-free; it gets exactly the matched span without the sign
  // (it rejects '+').
  double value = 0;
  const char* const first = text.data() + mantissa_begin;
  const char* const last = text.data() + i;
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
  if (value == 0) {
    value = 0;  // No negative zero.
  } else if (negative) {
    value = -value;
  }
  out->value = value;
  out->units = text.substr(i);
  return true;
}

}  // namespace drainmet::extract
