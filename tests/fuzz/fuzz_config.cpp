// libFuzzer target: the configuration loader (config::ParseConfig: YAML 1.2 or JSON text
// -> Config, docs/configuration.md). Bad text must give an error status, never a crash.
// Invariant: a Config it accepts passes Validate.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/config/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const drainmet::config::EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
    if (name.empty() || name.size() > 64) return std::nullopt;
    return "token-of-" + std::string(name);
  };
  const absl::StatusOr<drainmet::config::Config> config = drainmet::config::ParseConfig(text, env);
  if (config.ok()) {
    FUZZ_CHECK(drainmet::config::Validate(*config).ok());
  } else {
    FUZZ_CHECK(!config.status().message().empty());
  }
  return 0;
}
