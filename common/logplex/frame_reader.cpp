#include "common/logplex/frame_reader.h"

#include <emmintrin.h>  // SSE2: part of the x86-64 baseline

#include <cstring>

namespace drainmet::logplex {
namespace {

constexpr std::size_t kMaxLenDigits = 6;     // SEMANTICS §1.2
constexpr std::size_t kMaxSdNameBytes = 32;  // RFC 5424 §6.3.2 / §6.3.3: SD-NAME = 1*32
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsSkippable(char c) { return c == '\r' || c == '\n' || c == ' '; }

// Reads 1..max_digits digits at s[*pos] into *value, advancing *pos.
bool ReadDigits(std::string_view s, std::size_t* pos, std::size_t max_digits, int* value) {
  std::size_t n = 0;
  int v = 0;
  while (*pos + n < s.size() && IsDigit(s[*pos + n]) && n < max_digits) {
    v = v * 10 + (s[*pos + n] - '0');
    ++n;
  }
  if (n == 0) return false;
  *pos += n;
  *value = v;
  return true;
}

// Finds the SPs of one header, left to right: a 64-bit mask of the SPs of 64 bytes at a
// time (four SSE2 compares while a whole window is in bounds, else byte by byte), so the
// five fields after VERSION cost one or two windows rather than a search each.
class SpaceFinder {
 public:
  explicit SpaceFinder(std::string_view s) : s_(s) {}

  // The position of the first SP at or after `pos`, or s.size(). Calls must not go
  // backwards past the current window.
  std::size_t Next(std::size_t pos) {
    for (;;) {
      if (!loaded_ || pos >= base_ + 64) Load(pos);
      const std::uint64_t mask = mask_ >> (pos - base_);
      if (mask != 0) return pos + static_cast<std::size_t>(__builtin_ctzll(mask));
      if (base_ + 64 >= s_.size()) return s_.size();
      pos = base_ + 64;
    }
  }

 private:
  void Load(std::size_t from) {
    loaded_ = true;
    base_ = from;
    mask_ = 0;
    const std::size_t n = s_.size();
    if (from + 64 <= n) {
      const __m128i space = _mm_set1_epi8(' ');
      for (int block = 0; block < 4; ++block) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s_.data() + from + 16 * block));
        const auto bits =
            static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, space))));
        mask_ |= bits << (16 * block);
      }
      return;
    }
    for (std::size_t i = from; i < n; ++i) {
      if (s_[i] == ' ') mask_ |= std::uint64_t{1} << (i - from);
    }
  }

  std::string_view s_;
  bool loaded_ = false;
  std::size_t base_ = 0;
  std::uint64_t mask_ = 0;  // Bit i: s_[base_ + i] is SP.
};

// Reads one header field, 1*(non-SP), at s[*pos]; advances *pos to the byte after it.
bool ReadField(std::string_view s, SpaceFinder& spaces, std::size_t* pos, std::string_view* field) {
  const std::size_t start = *pos;
  const std::size_t end = spaces.Next(start);
  if (end == start) return false;
  *field = s.substr(start, end - start);
  *pos = end;
  return true;
}

// Consumes one SP at s[*pos].
bool ReadSpace(std::string_view s, std::size_t* pos) {
  if (*pos >= s.size() || s[*pos] != ' ') return false;
  ++*pos;
  return true;
}

// SD-NAME (SD-ID and PARAM-NAME): 1-32 PRINTUSASCII except '=', SP, ']' and '"'
// (RFC 5424 §6.3.2). SP is already outside 33..126.
bool ReadSdName(std::string_view s, std::size_t* pos) {
  std::size_t n = 0;
  while (*pos + n < s.size()) {
    const auto c = static_cast<unsigned char>(s[*pos + n]);
    if (c < 33 || c > 126 || c == '=' || c == ']' || c == '"') break;
    ++n;
  }
  if (n == 0 || n > kMaxSdNameBytes) return false;
  *pos += n;
  return true;
}

// PARAM-VALUE up to (not including) its closing '"'. '"', '\' and ']' are escaped with '\';
// an unescaped ']' is malformed. A '\' before any other byte is an invalid escape that
// RFC 5424 §6.3.3 says to keep as a plain backslash, so it does not make the SD malformed.
bool ReadParamValue(std::string_view s, std::size_t* pos) {
  std::size_t p = *pos;
  while (p < s.size()) {
    const char c = s[p];
    if (c == '"') {
      *pos = p;
      return true;
    }
    if (c == ']') return false;
    if (c == '\\' && p + 1 < s.size() && (s[p + 1] == '"' || s[p + 1] == '\\' || s[p + 1] == ']')) {
      p += 2;
    } else {
      ++p;
    }
  }
  return false;
}

// Length of the well-formed SD-ELEMENT sequence that starts `s`, or 0 when there is none
// (RFC 5424 §6.3: 1*SD-ELEMENT, SD-ELEMENT = "[" SD-ID *(SP SD-PARAM) "]",
// SD-PARAM = PARAM-NAME "=" %d34 PARAM-VALUE %d34).
std::size_t SdElementsLength(std::string_view s) {
  std::size_t p = 0;
  do {
    if (p >= s.size() || s[p] != '[') return 0;
    ++p;
    if (!ReadSdName(s, &p)) return 0;
    while (true) {
      if (p >= s.size()) return 0;
      if (s[p] == ']') {
        ++p;
        break;
      }
      if (s[p] != ' ') return 0;
      ++p;
      if (!ReadSdName(s, &p)) return 0;
      if (p + 1 >= s.size() || s[p] != '=' || s[p + 1] != '"') return 0;
      p += 2;
      if (!ReadParamValue(s, &p)) return 0;
      ++p;  // Closing '"'.
    }
  } while (p < s.size() && s[p] == '[');
  return p;
}

// Days since 1970-01-01 of a proleptic Gregorian date (valid y/m/d). Counts from a year
// that starts in March, so the leap day falls at the end of the counted year, and from
// 400-year eras of 146097 days.
std::int64_t DaysFromCivil(int year, int month, int day) {
  const int y = year - (month <= 2 ? 1 : 0);
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int year_of_era = y - era * 400;                               // [0, 399]
  const int month_from_march = month > 2 ? month - 3 : month + 9;      // [0, 11]
  const int day_of_year = (153 * month_from_march + 2) / 5 + day - 1;  // [0, 365]
  const int day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return static_cast<std::int64_t>(era) * 146097 + day_of_era - 719468;  // 719468: 0000-03-01 to 1970-01-01
}

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// Exactly `digits` digits at s[*pos].
bool ReadFixed(std::string_view s, std::size_t* pos, std::size_t digits, int* value) {
  if (*pos + digits > s.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const char c = s[*pos + i];
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  *pos += digits;
  *value = v;
  return true;
}

bool Expect(std::string_view s, std::size_t* pos, char c) {
  if (*pos >= s.size() || s[*pos] != c) return false;
  ++*pos;
  return true;
}

bool ExpectEither(std::string_view s, std::size_t* pos, char upper, char lower) {
  if (*pos >= s.size() || (s[*pos] != upper && s[*pos] != lower)) return false;
  ++*pos;
  return true;
}

// The first kRfc3339SecondBytes of an RFC 3339 timestamp, `YYYY-MM-DDTHH:MM:SS` (`T` in
// either case): Unix seconds of that local date and time before its UTC offset, or
// std::nullopt when it does not parse or is out of range (years 1678-2261, whole years
// inside Unix nanoseconds in int64, so no offset or leap second can overflow; a valid
// day of the month; second 60 is a leap second, added arithmetically).
std::optional<std::int64_t> ParseRfc3339Second(std::string_view text) {
  std::size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ReadFixed(text, &pos, 4, &year) || !Expect(text, &pos, '-') || !ReadFixed(text, &pos, 2, &month) ||
      !Expect(text, &pos, '-') || !ReadFixed(text, &pos, 2, &day) || !ExpectEither(text, &pos, 'T', 't') ||
      !ReadFixed(text, &pos, 2, &hour) || !Expect(text, &pos, ':') || !ReadFixed(text, &pos, 2, &minute) ||
      !Expect(text, &pos, ':') || !ReadFixed(text, &pos, 2, &second)) {
    return std::nullopt;
  }
  if (year < 1678 || year > 2261) return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
  return DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

// The rest of an RFC 3339 timestamp after its second, `[.F{1,9}](Z|+hh:mm|-hh:mm)`
// (`Z` in either case), applied to `local_seconds` (ParseRfc3339Second): Unix
// nanoseconds, or std::nullopt when it does not parse.
std::optional<std::int64_t> AddRfc3339FractionAndOffset(std::int64_t local_seconds, std::string_view text) {
  std::size_t pos = 0;
  std::int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t digits = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (++digits > 9) return std::nullopt;
      nanos = nanos * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t i = digits; i < 9; ++i) nanos *= 10;
  }

  int offset_seconds = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '+' ? 1 : -1;
    ++pos;
    int offset_hour = 0, offset_minute = 0;
    if (!ReadFixed(text, &pos, 2, &offset_hour) || !Expect(text, &pos, ':') ||
        !ReadFixed(text, &pos, 2, &offset_minute) || offset_hour > 23 || offset_minute > 59) {
      return std::nullopt;
    }
    offset_seconds = sign * (offset_hour * 3600 + offset_minute * 60);
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  return (local_seconds - offset_seconds) * 1'000'000'000 + nanos;
}

}  // namespace

FrameStatus FrameReader::Next(std::string_view* frame) {
  if (broken_) return FrameStatus::kBroken;
  std::size_t skip = 0;
  while (skip < rest_.size() && IsSkippable(rest_[skip])) ++skip;
  rest_.remove_prefix(skip);
  if (rest_.empty()) return FrameStatus::kEnd;

  std::size_t digits = 0;
  std::size_t len = 0;
  // Looking at one digit more than allowed is enough to reject a 7+ digit LEN.
  while (digits < rest_.size() && digits <= kMaxLenDigits && IsDigit(rest_[digits])) {
    len = len * 10 + static_cast<std::size_t>(rest_[digits] - '0');
    ++digits;
  }
  const bool len_ok = digits >= 1 && digits <= kMaxLenDigits && digits < rest_.size() && rest_[digits] == ' ';
  if (!len_ok || len > rest_.size() - digits - 1) {
    broken_ = true;  // rest_ keeps the unparsed remainder, starting at the LEN.
    return FrameStatus::kBroken;
  }
  if (frame != nullptr) *frame = rest_.substr(digits + 1, len);
  rest_.remove_prefix(digits + 1 + len);
  return len == 0 ? FrameStatus::kEmpty : FrameStatus::kFrame;
}

std::optional<Frame> ParseFrame(std::string_view frame_bytes) {
  std::string_view s = frame_bytes;
  // One trailing LF, and a CR before it, belong to no field (SEMANTICS §1.3).
  if (!s.empty() && s.back() == '\n') {
    s.remove_suffix(1);
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  }

  std::size_t pos = 0;
  int number = 0;
  if (!Expect(s, &pos, '<') || !ReadDigits(s, &pos, 3, &number) || !Expect(s, &pos, '>')) return std::nullopt;
  if (!ReadDigits(s, &pos, 2, &number) || !ReadSpace(s, &pos)) return std::nullopt;

  // The fields go to locals and the Frame is built in place at the end: a default-built
  // Frame copied into the optional cost two `rep` string instructions per frame.
  SpaceFinder spaces(s);
  std::string_view timestamp, hostname, app_name, proc_id, msg_id;
  if (!ReadField(s, spaces, &pos, &timestamp) || !ReadSpace(s, &pos)) return std::nullopt;
  if (!ReadField(s, spaces, &pos, &hostname) || !ReadSpace(s, &pos)) return std::nullopt;
  if (!ReadField(s, spaces, &pos, &app_name) || !ReadSpace(s, &pos)) return std::nullopt;
  if (!ReadField(s, spaces, &pos, &proc_id) || !ReadSpace(s, &pos)) return std::nullopt;
  if (!ReadField(s, spaces, &pos, &msg_id)) return std::nullopt;
  std::string_view rest;
  if (pos != s.size()) {  // Else nothing after MSGID: an empty line.
    if (!ReadSpace(s, &pos)) return std::nullopt;
    rest = s.substr(pos);
    // STRUCTURED-DATA, which HTTPS drains omit (FORMATS §1.3): NILVALUE or well-formed
    // SD-ELEMENTs are skipped; anything else is MSG (SEMANTICS §1.3).
    // (Byte tests rather than starts_with: these run once per frame and were memcmp calls.)
    if (!rest.empty() && rest[0] == '-' && (rest.size() == 1 || rest[1] == ' ')) {  // "-" or "- ..."
      rest.remove_prefix(rest.size() == 1 ? 1 : 2);
    } else if (!rest.empty() && rest[0] == '[') {
      const std::size_t sd = SdElementsLength(rest);
      if (sd > 0 && (sd == rest.size() || rest[sd] == ' '))
        rest.remove_prefix(sd == rest.size() ? sd : sd + 1);
    }
    if (rest.size() >= kUtf8Bom.size() && rest[0] == kUtf8Bom[0] && rest[1] == kUtf8Bom[1] &&
        rest[2] == kUtf8Bom[2]) {
      rest.remove_prefix(kUtf8Bom.size());
    }
  }
  // Braces: clang 14 has no parenthesised aggregate initialisation (P0960) for in_place.
  return Frame{timestamp, hostname, app_name, proc_id, msg_id, rest};
}

std::optional<std::int64_t> ParseRfc3339Nanos(std::string_view text) {
  if (text.size() < kRfc3339SecondBytes) return std::nullopt;
  const std::optional<std::int64_t> local = ParseRfc3339Second(text.substr(0, kRfc3339SecondBytes));
  if (!local) return std::nullopt;
  return AddRfc3339FractionAndOffset(*local, text.substr(kRfc3339SecondBytes));
}

std::optional<std::int64_t> Rfc3339Cache::Parse(std::string_view text) {
  if (text.size() < kRfc3339SecondBytes) return std::nullopt;
  if (!has_second_ || std::memcmp(second_text_, text.data(), kRfc3339SecondBytes) != 0) {
    std::memcpy(second_text_, text.data(), kRfc3339SecondBytes);
    second_ = ParseRfc3339Second(text.substr(0, kRfc3339SecondBytes));
    has_second_ = true;
  }
  if (!second_) return std::nullopt;
  return AddRfc3339FractionAndOffset(*second_, text.substr(kRfc3339SecondBytes));
}

}  // namespace drainmet::logplex
