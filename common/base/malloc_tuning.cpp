#include "common/base/malloc_tuning.h"

#include <malloc.h>

#include <cstdlib>
#include <string_view>

namespace drainmet::base {

bool TuneMalloc() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::string_view(tunables).find("glibc.malloc.") != std::string_view::npos) {
    return false;
  }
  // Setting either turns glibc's dynamic thresholds off, so both are set.
  const bool trim = mallopt(M_TRIM_THRESHOLD, static_cast<int>(kMallocTrimThresholdBytes)) == 1;
  const bool mmap = mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMallocMmapThresholdBytes)) == 1;
  return trim && mmap;
}

}  // namespace drainmet::base
