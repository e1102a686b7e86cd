#include "common/bucket/shard.h"

#include <array>

namespace drainmet::bucket {
namespace {

constexpr std::uint64_t kFnv1a64Prime = 0x100000001b3ULL;
constexpr std::string_view kSeparator("\0", 1);
// Derived gauge suffixes of SEMANTICS §7.1 (common/librato/gauge.cpp names them too).
constexpr std::array<std::string_view, 3> kDerivedSuffixes = {".median", ".perc95", ".perc99"};

}  // namespace

std::uint64_t Fnv1a64(std::string_view bytes, std::uint64_t hash) {
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnv1a64Prime;
  }
  return hash;
}

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

std::uint64_t Fmix64(std::uint64_t hash) {
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdULL;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ULL;
  hash ^= hash >> 33;
  return hash;
}

std::uint32_t ShardOf(std::string_view tenant, std::string_view name, std::string_view source,
                      std::uint32_t num_shards) {
  return ShardOfHash(SeriesHash(tenant, name, source), num_shards);
}

std::uint32_t ShardOfHash(std::uint64_t series_hash, std::uint32_t num_shards) {
  const std::uint64_t mixed = Fmix64(series_hash);
  // A power of two (the default 64) by mask: the same number, without a 64-bit division.
  if ((num_shards & (num_shards - 1)) == 0)
    return num_shards == 0 ? 0 : static_cast<std::uint32_t>(mixed & (num_shards - 1));
  return static_cast<std::uint32_t>(mixed % num_shards);
}

}  // namespace drainmet::bucket
