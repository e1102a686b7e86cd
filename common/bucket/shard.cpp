#include "common/bucket/shard.h"

#include <array>

namespace drainmet::bucket {
namespace {

constexpr std::string_view kSeparator("\0", 1);
// Derived gauge suffixes of SEMANTICS §7.1 (common/librato/gauge.cpp names them too).
constexpr std::array<std::string_view, 3> kDerivedSuffixes = {".median", ".perc95", ".perc99"};

}  // namespace

std::string_view ShardName(std::string_view name) {
  for (bool stripped = true; stripped;) {
    stripped = false;
    for (std::string_view suffix : kDerivedSuffixes) {
      if (name.ends_with(suffix)) {
        name.remove_suffix(suffix.size());
        stripped = true;
      }
    }
  }
  return name;
}

std::uint64_t SeriesHashPrefix(std::string_view tenant, std::string_view name) {
  std::uint64_t hash = Fnv1a64(tenant);
  hash = Fnv1a64(kSeparator, hash);
  hash = Fnv1a64(ShardName(name), hash);
  return Fnv1a64(kSeparator, hash);
}

std::uint64_t SeriesHash(std::string_view tenant, std::string_view name, std::string_view source) {
  return Fnv1a64(source, SeriesHashPrefix(tenant, name));
}

std::uint32_t ShardOf(std::string_view tenant, std::string_view name, std::string_view source,
                      std::uint32_t num_shards) {
  return ShardOfHash(SeriesHash(tenant, name, source), num_shards);
}

}  // namespace drainmet::bucket
