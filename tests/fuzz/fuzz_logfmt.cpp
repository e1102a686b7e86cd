// libFuzzer target: the logfmt scanner (SEMANTICS §2, FORMATS.md §4) over one line, and
// the JSON-rule unquoting of escaped values.
// Invariants: keys are non-empty runs of ident bytes (> 0x20, not '=' or '"') taken from
// the line; unquoted values point into the line and are ident bytes; a value is only
// present with has_value; the scan ends (one pair per line byte at most) and, once
// finished, stays finished.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/logfmt/scanner.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool IsIdentByte(char c) {
  const auto b = static_cast<unsigned char>(c);
  return b > 0x20 && c != '=' && c != '"';
}

bool AllIdent(std::string_view text) {
  for (const char c : text) {
    if (!IsIdentByte(c)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  std::string scratch;
  drainmet::logfmt::Scanner scanner(line, scratch);
  drainmet::logfmt::Pair pair;
  std::size_t pairs = 0;
  while (scanner.Next(&pair)) {
    FUZZ_CHECK(++pairs <= size);
    FUZZ_CHECK(!pair.key.empty() && AllIdent(pair.key));
    FUZZ_CHECK(drainmet::fuzz::Inside(pair.key, line));
    if (!pair.has_value) FUZZ_CHECK(pair.value.empty() && !pair.quoted);
    if (pair.has_value && !pair.quoted) {
      FUZZ_CHECK(!pair.value.empty() && AllIdent(pair.value));
      FUZZ_CHECK(drainmet::fuzz::Inside(pair.value, line));
    }
    if (pair.quoted) {
      FUZZ_CHECK(pair.has_value);
      FUZZ_CHECK(drainmet::fuzz::Inside(pair.value, line) || drainmet::fuzz::Inside(pair.value, scratch));
    }
  }
  FUZZ_CHECK(!scanner.Next(&pair));
  const bool failed = scanner.failed();
  FUZZ_CHECK(!scanner.Next(&pair) && scanner.failed() == failed);

  // The whole input as the inside of an escaped quoted value: decoding appends at most
  // 3 bytes per input byte (a \uXXXX of 6 bytes gives at most 3, or 4 for a pair of 12).
  std::string decoded = "x";
  if (drainmet::logfmt::UnquoteEscaped(line, decoded)) {
    FUZZ_CHECK(decoded.size() <= 1 + 3 * size);
    FUZZ_CHECK(decoded[0] == 'x');
  }
  return 0;
}
