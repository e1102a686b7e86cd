// libFuzzer target: Logplex framing (FrameReader, SEMANTICS §1.1-1.2) over one body.
// Invariants: every frame lies inside the body, in order, and is what its LEN counted;
// framing consumes the body; kEnd and kBroken are sticky.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/logplex/frame_reader.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  drainmet::logplex::FrameReader reader(body);
  const char* last_end = body.data();
  std::string_view frame;
  drainmet::logplex::FrameStatus status;
  std::size_t steps = 0;
  while (true) {
    status = reader.Next(&frame);
    if (status != drainmet::logplex::FrameStatus::kFrame &&
        status != drainmet::logplex::FrameStatus::kEmpty) {
      break;
    }
    FUZZ_CHECK(++steps <= size);  // Every frame consumes at least "0 " or "N X".
    if (status == drainmet::logplex::FrameStatus::kFrame) {
      FUZZ_CHECK(!frame.empty() && frame.size() <= 999999);
      FUZZ_CHECK(drainmet::fuzz::Inside(frame, body));
      FUZZ_CHECK(frame.data() >= last_end);
      last_end = frame.data() + frame.size();
      FUZZ_CHECK(reader.rest().data() == last_end);
    }
  }
  if (status == drainmet::logplex::FrameStatus::kEnd) {
    for (const char c : reader.rest()) FUZZ_CHECK(c == '\r' || c == '\n' || c == ' ');
  } else {
    FUZZ_CHECK(!reader.rest().empty());
    FUZZ_CHECK(drainmet::fuzz::Inside(reader.rest(), body));
  }
  const std::string_view rest = reader.rest();
  FUZZ_CHECK(reader.Next(&frame) == status);  // Sticky.
  FUZZ_CHECK(reader.rest() == rest);
  return 0;
}
