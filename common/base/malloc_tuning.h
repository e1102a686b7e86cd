#pragma once
// glibc malloc settings for the data-path processes (receiver, outlet, standalone).
//
// Each request and flush allocates buffers of ~100 KiB to a few MiB (bodies, encoded
// records, flush commands) and frees them a few milliseconds later. With glibc's defaults
// the heap's free top beyond the trim threshold (128 KiB, or twice the dynamic mmap
// threshold) goes back to the kernel (brk, or MADV_DONTNEED in a thread's arena), and the
// next request touches fresh pages again: at 150k series ~3 page faults a request, ~15% of
// a receiver's CPU on a virtual machine (docs/performance.md "Keyed elements and freed
// memory kept").

#include <cstddef>

namespace drainmet::base {

/// Freed heap memory kept by each malloc arena before it is trimmed (64 MiB), and the size
/// from which an allocation is its own mapping (32 MiB, glibc's own dynamic maximum).
inline constexpr std::size_t kMallocTrimThresholdBytes = std::size_t{64} << 20;
inline constexpr std::size_t kMallocMmapThresholdBytes = std::size_t{32} << 20;

/// Sets those two (mallopt M_TRIM_THRESHOLD, M_MMAP_THRESHOLD), unless the environment's
/// GLIBC_TUNABLES names a glibc.malloc tunable (the operator's choice wins). Call once at
/// the start of main(), before threads start. Returns whether it set them (false also under
/// an allocator that refuses them, such as ASan's). Not thread-safe.
bool TuneMalloc();

}  // namespace drainmet::base
