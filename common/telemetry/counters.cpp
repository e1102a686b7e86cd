#include "common/telemetry/counters.h"

#include "nlohmann/json.hpp"

namespace drainmet::telemetry {

// One list of fields, used by both functions below, so that a new counter cannot be
// forgotten in one of them.
// clang-format off
#define DRAINMET_COUNTER_FIELDS(X)                                                                  \
  X(frames) X(bad_frame) X(bad_timestamp) X(bad_value) X(bad_name) X(name_conflict) X(points)       \
  X(late) X(future) X(series_limit) X(duplicate_request) X(posted) X(rejected) X(expired) X(retried)
// clang-format on

Counters& Counters::operator+=(const Counters& other) {
#define DRAINMET_ADD(f) f += other.f;
  DRAINMET_COUNTER_FIELDS(DRAINMET_ADD)
#undef DRAINMET_ADD
  return *this;
}

std::string Counters::ToJson() const {
  nlohmann::ordered_json j;
#define DRAINMET_PUT(f) j[#f] = f;
  DRAINMET_COUNTER_FIELDS(DRAINMET_PUT)
#undef DRAINMET_PUT
  return j.dump();
}

}  // namespace drainmet::telemetry
