// libFuzzer target: the RFC 5424 header of one frame (ParseFrame, SEMANTICS §1.3, §1.5)
// and its timestamp (ParseRfc3339Nanos and Rfc3339Cache, §1.4).
// Invariants: every field is a view into the frame, non-empty and without SP (MSG
// excepted); the cache gives ParseRfc3339Nanos's result, warm or cold.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/logplex/frame_reader.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool IsToken(std::string_view field) { return !field.empty() && field.find(' ') == std::string_view::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::optional<drainmet::logplex::Frame> frame = drainmet::logplex::ParseFrame(bytes);
  if (frame.has_value()) {
    for (const std::string_view field :
         {frame->timestamp, frame->hostname, frame->app_name, frame->proc_id, frame->msg_id}) {
      FUZZ_CHECK(IsToken(field));
      FUZZ_CHECK(drainmet::fuzz::Inside(field, bytes));
    }
    FUZZ_CHECK(drainmet::fuzz::Inside(frame->line, bytes));
    FUZZ_CHECK(!frame->line.starts_with("\xEF\xBB\xBF") ||
               bytes.find("\xEF\xBB\xBF\xEF\xBB\xBF") != bytes.npos);
  }

  // The whole input as a timestamp, then as the cache sees a body's frames: a warm
  // cache (seeded with the same second, then with another) must agree with the plain parse.
  const std::optional<std::int64_t> plain = drainmet::logplex::ParseRfc3339Nanos(bytes);
  drainmet::logplex::Rfc3339Cache cache;
  FUZZ_CHECK(cache.Parse(bytes) == plain);
  FUZZ_CHECK(cache.Parse(bytes) == plain);
  if (frame.has_value()) {
    const std::optional<std::int64_t> stamp = drainmet::logplex::ParseRfc3339Nanos(frame->timestamp);
    FUZZ_CHECK(cache.Parse(frame->timestamp) == stamp);
    FUZZ_CHECK(cache.Parse(bytes) == plain);
  }
  return 0;
}
