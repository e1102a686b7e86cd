#pragma once
// The stable shard function: which of the S logical shards a series' partial buckets go to.
// Receivers and outlets of any build, version or platform must agree on it, so it is a
// fixed byte encoding hashed with FNV-1a 64, not std::hash and not protobuf bytes (neither
// is guaranteed stable). Specified in docs/redis-layout.md "Shard function".

#include <cstdint>
#include <string_view>

namespace drainmet::bucket {

/// The FNV-1a 64 hash of no bytes (its "offset basis").
inline constexpr std::uint64_t kFnv1a64OffsetBasis = 0xcbf29ce484222325ULL;

/// FNV-1a 64 (Fowler/Noll/Vo; prime 0x100000001b3) of `bytes`, continuing from `hash` (pass
/// a previous result to hash a concatenation in pieces). Pure; thread-safe. Inline: the
/// receiver hashes every record's source with it.
inline std::uint64_t Fnv1a64(std::string_view bytes, std::uint64_t hash = kFnv1a64OffsetBasis) {
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kPrime;
  }
  return hash;
}

/// The part of a metric name the shard function hashes: `name` with every trailing
/// ".median", ".perc95" or ".perc99" removed, repeatedly ("x.perc95.median" -> "x").
/// Derived gauges of a measure x are named x.median/x.perc95/x.perc99 (SEMANTICS §7.1), so
/// the series that may post the same gauge identity (§7.6) have names that agree once
/// stripped; repeating the strip makes the relation transitive (measure#x.perc95 posts
/// x.perc95.median, which sample#x.perc95.median also posts). A view into `name`. Pure.
std::string_view ShardName(std::string_view name);

/// The 64-bit hash of a series: FNV-1a 64 over the bytes of `tenant`, one 0x00 byte,
/// ShardName(`name`), one 0x00 byte, the bytes of `source` (empty when the series has no
/// source). The kind is not hashed, so count#x and sample#x (which post the same gauge,
/// §7.6) share a shard, as do measure#x and sample#x.median. Pure; thread-safe.
std::uint64_t SeriesHash(std::string_view tenant, std::string_view name, std::string_view source);

/// The FNV-1a 64 state after the bytes of `tenant`, 0x00, ShardName(`name`), 0x00: then
/// SeriesHash(tenant, name, source) == Fnv1a64(source, SeriesHashPrefix(tenant, name)).
/// For callers that hash many sources of a few names (a request's series: compute the
/// prefix once per name). Pure; thread-safe.
std::uint64_t SeriesHashPrefix(std::string_view tenant, std::string_view name);

/// MurmurHash3's 64-bit finalizer (Appleby, public domain): xor-shift 33, multiply by
/// 0xff51afd7ed558ccd, xor-shift 33, multiply by 0xc4ceb9fe1a85ec53, xor-shift 33. A
/// bijection in which every input bit affects every output bit. Pure.
inline std::uint64_t Fmix64(std::uint64_t hash) {
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdULL;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ULL;
  hash ^= hash >> 33;
  return hash;
}

/// Shard of a series in [0, num_shards): Fmix64(SeriesHash(tenant, name, source)) mod
/// num_shards. Every bucket that could collide under §7.6 lands in the same shard, so one
/// outlet resolves the conflict. The finalizer matters because S is usually a power of two
/// (default 64) and FNV's multiply carries only upward: plain FNV mod 2^k depends on the
/// low k bits of each input byte alone ('0' and 'p' alike, so web.0 and web.p would always
/// share a shard), and the last bytes reach few of the high bits. `num_shards` 0 is
/// treated as 1. Pure; thread-safe.
std::uint32_t ShardOf(std::string_view tenant, std::string_view name, std::string_view source,
                      std::uint32_t num_shards);

/// ShardOf of the series whose SeriesHash is `series_hash`: Fmix64(series_hash) mod
/// `num_shards` (0 treated as 1). Pure; thread-safe.
inline std::uint32_t ShardOfHash(std::uint64_t series_hash, std::uint32_t num_shards) {
  const std::uint64_t mixed = Fmix64(series_hash);
  // A power of two (the default 64) by mask: the same number, without a 64-bit division.
  if ((num_shards & (num_shards - 1)) == 0) {
    return num_shards == 0 ? 0 : static_cast<std::uint32_t>(mixed & (num_shards - 1));
  }
  return static_cast<std::uint32_t>(mixed % num_shards);
}

}  // namespace drainmet::bucket
