#pragma once
// Second stage: the logfmt key/value scanner for one line (MSG), after kr/logfmt's
// grammar (FORMATS.md §4) with SEMANTICS.md §2's difference: a malformed quoted value
// ends the line and the pairs before it stand. No heap allocation per pair.

#include <string>
#include <string_view>

namespace drainmet::logfmt {

/// One logfmt pair. `value` is empty and `has_value` false for a bare key (`key`) or
/// `key=`; `key=""` gives an empty value with has_value true. Quoted values are unquoted:
/// verbatim bytes when the value holds no backslash, else decoded with JSON string rules
/// (FORMATS.md §4). Views point into the line or into the scratch string given to the
/// Scanner; they stay valid while both live and until that scratch string is given to
/// another Scanner or otherwise modified.
struct Pair {
  std::string_view key;
  std::string_view value;
  bool has_value = false;
  bool quoted = false;  ///< The value was written in double quotes.
};

/// Scans the pairs of one line in order (keys may repeat, SEMANTICS §2.2).
/// Grammar: ident_byte = any byte > 0x20 except '=' and '"'; every other byte is garbage
/// between pairs; pair = key '=' ivalue | key '=' qvalue | key '=' | key.
/// Garbage bytes between pairs are skipped. After a key: '=' then ident bytes (the value
/// ends at the first non-ident byte: `h=1=2` is h=1 then the bare key `2`), or '"'
/// starting a quoted value, or anything else (no value: `key= value` is two bare keys).
/// A '"' right after a key ends the key (`j"k l` is three bare keys).
/// Quoted values: a backslash skips the next byte when looking for the closing quote.
/// An unterminated quote or an escape that fails to decode ends the scan there
/// (SEMANTICS §2.1; kr/logfmt skipped the bad pair and went on): Next returns false
/// and failed() is true; the pairs delivered before stand.
/// Not thread-safe. Allocation: none per pair. The constructor clears `scratch` and
/// reserves 3x the line size plus 16 bytes in it (the most that decoding can write), so
/// views into it stay valid; reuse one scratch string across lines to avoid allocation.
class Scanner {
 public:
  /// `line` and `scratch` must outlive the scanner and the pairs it returns.
  Scanner(std::string_view line, std::string& scratch);

  /// The next pair, or false at the end of the line or at a malformed quoted value
  /// (unterminated, bad escape, raw control byte in an escaped value); then failed()
  /// tells which. `*pair` is written only when true is returned.
  bool Next(Pair* pair);

  /// True when scanning stopped at a malformed quoted value.
  bool failed() const { return failed_; }

 private:
  std::string_view line_;
  std::size_t pos_ = 0;
  std::string& scratch_;
  bool failed_ = false;
  bool done_ = false;
};

/// Decodes the inside of a quoted value that contains a backslash, with JSON string
/// rules (FORMATS.md §4): escapes \" \\ \/ \' \b \f \n \r \t \uXXXX (surrogate pairs
/// joined, a lone surrogate becomes U+FFFD); any other escape, or a raw byte < 0x20, or a
/// raw '"', fails; invalid UTF-8 becomes U+FFFD. Appends to `out`; false on failure.
bool UnquoteEscaped(std::string_view inner, std::string& out);

}  // namespace drainmet::logfmt
