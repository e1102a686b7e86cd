// libFuzzer target: value and unit parsing (ParseValue, SEMANTICS §3.1, §3.3).
// Invariants: an accepted value is finite with |v| <= 1e126, never -0; its units are a
// suffix of the text; hex, inf and nan never parse; the value does not depend on the
// units (the number alone, and the number followed by other units, give the same double).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/extract/value.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  drainmet::extract::ParsedValue parsed;
  parsed.value = 12345;
  parsed.units = "untouched";
  if (!drainmet::extract::ParseValue(text, &parsed)) {
    FUZZ_CHECK(parsed.value == 12345 && parsed.units == "untouched");  // *out written only on success.
    return 0;
  }
  FUZZ_CHECK(drainmet::fuzz::IsAdmissibleValue(parsed.value));
  FUZZ_CHECK(!(parsed.value == 0 && std::signbit(parsed.value)));
  FUZZ_CHECK(text.ends_with(parsed.units));
  FUZZ_CHECK(parsed.units.data() == text.data() + (text.size() - parsed.units.size()));
  FUZZ_CHECK(parsed.units.size() < text.size());
  std::string_view number = text.substr(0, text.size() - parsed.units.size());
  const std::string_view body = number.substr(number.starts_with('-') || number.starts_with('+') ? 1 : 0);
  FUZZ_CHECK(!body.starts_with("0x") && !body.starts_with("0X"));

  drainmet::extract::ParsedValue alone;
  FUZZ_CHECK(drainmet::extract::ParseValue(number, &alone));
  FUZZ_CHECK(alone.units.empty());
  FUZZ_CHECK(std::memcmp(&alone.value, &parsed.value, sizeof(double)) == 0);
  const std::string with_units = std::string(number) + "ms";
  drainmet::extract::ParsedValue suffixed;
  FUZZ_CHECK(drainmet::extract::ParseValue(with_units, &suffixed));
  FUZZ_CHECK(suffixed.units == "ms");
  FUZZ_CHECK(std::memcmp(&suffixed.value, &parsed.value, sizeof(double)) == 0);
  return 0;
}
