#include "common/logfmt/scanner.h"

#include <emmintrin.h>  // SSE2: part of the x86-64 baseline

#include <cassert>
#include <cstdint>

namespace drainmet::logfmt {
namespace {

// FORMATS.md §4: any byte > 0x20 except '=' and '"' (bytes >= 0x80 included).
constexpr bool IsIdent(unsigned char c) { return c > 0x20 && c != '=' && c != '"'; }

constexpr bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The end of the run of ident bytes of `line` starting at `pos`: 16 bytes at a time while
// a whole block is in bounds (a byte ends the run when it is <= 0x20, '=' or '"'), then
// byte by byte.
std::size_t IdentEnd(std::string_view line, std::size_t pos) {
  const std::size_t n = line.size();
  const __m128i min_ident = _mm_set1_epi8(0x21);
  const __m128i equals = _mm_set1_epi8('=');
  const __m128i quote = _mm_set1_epi8('"');
  while (pos + 16 <= n) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(line.data() + pos));
    // Unsigned v >= 0x21 exactly when max(v, 0x21) == v.
    const __m128i above_space = _mm_cmpeq_epi8(_mm_max_epu8(v, min_ident), v);
    const __m128i special = _mm_or_si128(_mm_cmpeq_epi8(v, equals), _mm_cmpeq_epi8(v, quote));
    const int ident = _mm_movemask_epi8(_mm_andnot_si128(special, above_space));
    if (ident != 0xFFFF) return pos + static_cast<std::size_t>(__builtin_ctz(~ident & 0xFFFF));
    pos += 16;
  }
  while (pos < n && IsIdent(static_cast<unsigned char>(line[pos]))) ++pos;
  return pos;
}

constexpr char32_t kReplacement = 0xFFFD;

void AppendUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence (RFC 3629 §4: no overlongs, no surrogates,
// nothing above U+10FFFF) at the start of `s`, or 0 when it is not one.
std::size_t ValidUtf8Length(std::string_view s) {
  const auto at = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = at(0);
  std::size_t len;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;  // Bounds of the second byte.
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < len || at(1) < lo || at(1) > hi) return 0;
  for (std::size_t i = 2; i < len; ++i) {
    if (!IsContinuation(at(i))) return 0;
  }
  return len;
}

// The code unit of a `\uXXXX` escape at the start of `s`, or -1.
std::int32_t ParseU4(std::string_view s) {
  if (s.size() < 6 || s[0] != '\\' || s[1] != 'u') return -1;
  std::int32_t v = 0;
  for (std::size_t i = 2; i < 6; ++i) {
    const char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v |= c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v |= c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

constexpr bool IsSurrogate(std::int32_t u) { return u >= 0xD800 && u < 0xE000; }

}  // namespace

bool UnquoteEscaped(std::string_view inner, std::string& out) {
  std::size_t i = 0;
  while (i < inner.size()) {
    const auto c = static_cast<unsigned char>(inner[i]);
    if (c == '\\') {
      if (i + 1 >= inner.size()) return false;
      switch (inner[i + 1]) {
        case '"':
        case '\\':
        case '/':
        case '\'':
          out.push_back(inner[i + 1]);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          const std::int32_t unit = ParseU4(inner.substr(i));
          if (unit < 0) return false;
          i += 6;
          if (!IsSurrogate(unit)) {
            AppendUtf8(static_cast<char32_t>(unit), out);
            continue;
          }
          // A high surrogate joins with a following low one; anything else is U+FFFD
          // and the next escape is read on its own.
          const std::int32_t low = ParseU4(inner.substr(i));
          if (unit < 0xDC00 && low >= 0xDC00 && low < 0xE000) {
            AppendUtf8(0x10000 + ((static_cast<char32_t>(unit) - 0xD800) << 10) +
                           (static_cast<char32_t>(low) - 0xDC00),
                       out);
            i += 6;
          } else {
            AppendUtf8(kReplacement, out);
          }
          continue;
        }
        default:
          return false;
      }
      i += 2;
    } else if (c < 0x20 || c == '"') {
      return false;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (const std::size_t len = ValidUtf8Length(inner.substr(i)); len > 0) {
      out.append(inner.substr(i, len));
      i += len;
    } else {
      AppendUtf8(kReplacement, out);
      ++i;
    }
  }
  return true;
}

Scanner::Scanner(std::string_view line, std::string& scratch) : line_(line), scratch_(scratch) {
  scratch_.clear();
  // Decoding writes at most 3 bytes per input byte (one U+FFFD per invalid byte), so
  // this capacity is never exceeded and views into scratch_ never dangle.
  scratch_.reserve(3 * line.size() + 16);
}

bool Scanner::Next(Pair* pair) {
  if (done_) return false;
  const std::size_t n = line_.size();
  const auto at = [&](std::size_t i) { return static_cast<unsigned char>(line_[i]); };
  while (pos_ < n && !IsIdent(at(pos_))) ++pos_;  // Garbage between pairs.
  if (pos_ >= n) {
    done_ = true;
    return false;
  }
  const std::size_t key_begin = pos_;
  pos_ = IdentEnd(line_, pos_);
  Pair found;
  found.key = line_.substr(key_begin, pos_ - key_begin);
  if (pos_ >= n || line_[pos_] != '=') {  // Bare key; a '"' here is garbage.
    *pair = found;
    return true;
  }
  ++pos_;  // '='
  if (pos_ < n && IsIdent(at(pos_))) {
    // The byte that ends the value is garbage, so `h=1=2` goes on with the key `2`.
    const std::size_t value_begin = pos_;
    pos_ = IdentEnd(line_, pos_);
    found.value = line_.substr(value_begin, pos_ - value_begin);
    found.has_value = true;
    *pair = found;
    return true;
  }
  if (pos_ >= n || line_[pos_] != '"') {  // `key=` then garbage or end: no value.
    *pair = found;
    return true;
  }
  const std::size_t inner_begin = ++pos_;
  bool escaped = false;
  while (pos_ < n && line_[pos_] != '"') {
    if (line_[pos_] == '\\') {
      escaped = true;
      ++pos_;
    }
    ++pos_;
  }
  if (pos_ >= n) {  // Unterminated (a final backslash may have skipped past the end).
    done_ = true;
    failed_ = true;
    return false;
  }
  const std::string_view inner = line_.substr(inner_begin, pos_ - inner_begin);
  ++pos_;  // Closing quote.
  if (!escaped) {
    found.value = inner;
  } else {
    const std::size_t start = scratch_.size();
    [[maybe_unused]] const char* const data = scratch_.data();
    if (!UnquoteEscaped(inner, scratch_)) {
      done_ = true;
      failed_ = true;
      return false;
    }
    assert(scratch_.data() == data);  // The reserve in the constructor holds.
    found.value = std::string_view(scratch_).substr(start);
  }
  found.has_value = true;
  found.quoted = true;
  *pair = found;
  return true;
}

}  // namespace drainmet::logfmt
