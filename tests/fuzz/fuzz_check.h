#pragma once
// Invariant checks for the libFuzzer targets of tests/fuzz: a broken invariant prints
// what failed and aborts, which libFuzzer reports as a crash with its reproducer.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace drainmet::fuzz {

/// Aborts with `what` and the location when `ok` is false. Not for hot paths outside fuzz
/// targets.
inline void Check(bool ok, const char* what, const char* file, int line) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n", file, line, what);
  std::abort();
}

/// True when `view` lies entirely inside `outer` (views returned by parsers point into
/// their input).
inline bool Inside(std::string_view view, std::string_view outer) {
  if (view.empty()) return true;
  return view.data() >= outer.data() && view.data() + view.size() <= outer.data() + outer.size();
}

/// FORMATS.md §5.1 / SEMANTICS §5.1: 1-255 bytes of [A-Za-z0-9.:_-].
inline bool IsLibratoName(std::string_view text) {
  if (text.empty() || text.size() > 255) return false;
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == ':' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

/// A source as SEMANTICS §5.1 lets it reach the API: empty (none), or a Librato name
/// that is not `all` in any case.
inline bool IsLibratoSource(std::string_view text) {
  if (text.empty()) return true;
  if (text.size() == 3 && (text[0] | 0x20) == 'a' && (text[1] | 0x20) == 'l' && (text[2] | 0x20) == 'l') {
    return false;
  }
  return IsLibratoName(text);
}

/// A value SEMANTICS §3.3 admits: finite, |v| <= 1e126.
inline bool IsAdmissibleValue(double v) { return std::isfinite(v) && std::fabs(v) <= 1e126; }

/// A number the Librato API accepts (FORMATS.md §5.1 "Float limits"): finite, base-10
/// exponent at most 126.
inline bool IsApiNumber(double v) { return std::isfinite(v) && std::fabs(v) < 1e127; }

}  // namespace drainmet::fuzz

#define FUZZ_CHECK(cond) ::drainmet::fuzz::Check((cond), #cond, __FILE__, __LINE__)
