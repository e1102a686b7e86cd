#pragma once
// Heap allocations made through the global operator new since the test binary started.

namespace drainmet::testing_support {
long AllocationCount();
}  // namespace drainmet::testing_support
