#include "common/base/malloc_tuning.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>

#include <cstring>
#include <string>

namespace drainmet::base {
namespace {

// Under ASan, its allocator replaces glibc's and its mallopt refuses every setting, so
// TuneMalloc reports false and the heap checks below do not apply.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kGlibcMalloc = false;
#else
constexpr bool kGlibcMalloc = true;
#endif

// The heap keeps a freed 8 MiB block for the next request's buffers (below the mmap
// threshold: from the heap, not its own mapping; below the trim threshold: not given back).
// With glibc's defaults it is its own mapping and goes back to the kernel at free.
TEST(MallocTuning, FreedBuffersStayInTheHeap) {
  ASSERT_EQ(unsetenv("GLIBC_TUNABLES"), 0);
  ASSERT_EQ(TuneMalloc(), kGlibcMalloc);
  if (!kGlibcMalloc) GTEST_SKIP() << "ASan's allocator replaces glibc's: its heap is not what mallopt tunes";
  const struct mallinfo2 before = mallinfo2();
  constexpr std::size_t kBytes = std::size_t{8} << 20;
  char* block = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kBytes);
  const struct mallinfo2 held = mallinfo2();
  EXPECT_EQ(held.hblkhd, before.hblkhd) << "not its own mapping";
  std::free(block);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_GE(after.fordblks, before.fordblks + kBytes) << "kept as free heap memory";
  EXPECT_GE(after.arena, before.arena + kBytes) << "the heap did not shrink";
}

// GLIBC_TUNABLES naming a malloc tunable: the operator's settings stay.
TEST(MallocTuning, AnOperatorsMallocTunableWins) {
  ASSERT_EQ(setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072", 1), 0);
  EXPECT_FALSE(TuneMalloc());
  ASSERT_EQ(setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1), 0);
  EXPECT_EQ(TuneMalloc(), kGlibcMalloc);
  ASSERT_EQ(unsetenv("GLIBC_TUNABLES"), 0);
}

}  // namespace
}  // namespace drainmet::base
