#pragma once
// Numbers and units of logfmt values (SEMANTICS.md §3): "4.5ms" -> 4.5 "ms".

#include <string_view>

namespace drainmet::extract {

/// A parsed value. `units` points into the text given to ParseValue.
struct ParsedValue {
  double value = 0;
  std::string_view units;  ///< Everything after the number, verbatim; may be empty.
};

/// Parses `text` per SEMANTICS §3.1 and §3.3: optional sign, digits with at most one '.'
/// (at least one digit), optional exponent (e|E, optional sign, >= 1 digit; an 'e' not
/// followed by digits is part of the units); the rest is the units. Returns false
/// (bad_value) when no number starts the text, when it starts with 0x/0X (after an
/// optional sign), or when |value| > 1e126, NaN or infinite (overflow counts as too
/// large). Underflow (`1e-400`) gives 0; a zero result is always +0 (never -0). A quoted
/// value with a leading space has no number at its start and fails. Empty text is the
/// caller's business (§3.2) and returns false. `*out` is written only on success.
/// Examples: "4.5ms" -> 4.5 "ms"; "2.5E+3" -> 2500 ""; "5em" -> 5 "em"; "12ms3" -> 12
/// "ms3"; ".5" -> 0.5; "-3C" -> -3 "C"; "0x1F", "inf", "nan", "-", "1e400" -> false.
/// The value is the correctly rounded double of the decimal (std::from_chars; a plain
/// decimal of at most 15 digits without exponent by one exact division, which gives the
/// same double). Pure; thread-safe; no allocation; locale-independent.
bool ParseValue(std::string_view text, ParsedValue* out);

}  // namespace drainmet::extract
