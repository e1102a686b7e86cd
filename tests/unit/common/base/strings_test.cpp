#include "common/base/strings.h"

#include <string>

#include "gtest/gtest.h"

namespace drainmet::base {
namespace {

// BytesEqual reads words at offsets that depend on the length: every length up to and past
// its memcmp cut-over, equal and with one byte changed at each position, must agree with
// std::string_view's equality. The strings are cut from larger buffers at odd offsets, so
// unaligned loads are exercised too.
TEST(BytesEqual, AgreesWithStringViewAtEveryLengthAndPosition) {
  for (std::size_t n = 0; n <= 40; ++n) {
    std::string a(n + 3, '\0');
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<char>('a' + (i * 7) % 26);
    std::string b = a;
    const std::string_view va(a.data() + 1, n);
    const std::string_view vb(b.data() + 1, n);
    ASSERT_TRUE(BytesEqual(va, vb)) << "length " << n;
    for (std::size_t at = 0; at < n; ++at) {
      b[1 + at] = static_cast<char>(b[1 + at] ^ 0x20);
      EXPECT_FALSE(BytesEqual(va, vb)) << "length " << n << ", byte " << at << " differs";
      EXPECT_EQ(BytesEqual(va, vb), va == vb);
      b[1 + at] = a[1 + at];
    }
    // The bytes around the views differ: they must not be read.
    b[0] = 'X';
    b[n + 1] = 'Y';
    EXPECT_TRUE(BytesEqual(va, vb)) << "length " << n;
    if (n > 0) {
      EXPECT_FALSE(BytesEqual(va, vb.substr(0, n - 1))) << "length " << n;
    }
  }
}

}  // namespace
}  // namespace drainmet::base
