#pragma once
// First stage of the pipeline: splits one application/logplex-1 drain body into
// octet-counted frames (RFC 6587 §3.4.1, FORMATS.md §1.3) and parses each frame's
// RFC 5424 header (FORMATS.md §1.4, SEMANTICS.md §1). Allocation-free.

#include <cstdint>
#include <optional>
#include <string_view>

namespace drainmet::logplex {

/// One RFC 5424 message. Every view points into the body given to FrameReader and is
/// valid only while that buffer lives.
struct Frame {
  std::string_view timestamp;  ///< TIMESTAMP as sent (RFC 3339 or "-").
  std::string_view hostname;   ///< "host" on HTTPS drains, the drain token on syslog drains.
  std::string_view app_name;   ///< "app" for dyno output, "heroku" for platform lines.
  std::string_view proc_id;    ///< "web.1", "router", "logplex", ...
  std::string_view msg_id;     ///< Usually "-".
  /// MSG after the optional STRUCTURED-DATA (skipped when "-" or well-formed
  /// SD-ELEMENTs, SEMANTICS §1.3), with one trailing LF (and a CR before it) and a
  /// leading UTF-8 BOM removed. May be empty.
  std::string_view line;
};

/// What FrameReader::Next found.
enum class FrameStatus : std::uint8_t {
  kFrame,  ///< `*frame` holds the MSG bytes counted by LEN (LEN >= 1).
  kEmpty,  ///< LEN was 0: an empty frame (SEMANTICS §1.2, counted as frames and bad_frame).
  kEnd,    ///< Clean end of body (only CR/LF/SP left, or nothing).
  kBroken  ///< LEN not 1-6 digits, no SP after it, or it runs past the end: the rest
           ///< of the body is one bad_frame and the reader is exhausted (§1.2).
};

/// Iterates the octet-counted frames (`LEN SP MSG`) of one body. Runs of CR, LF and SP
/// before a LEN are skipped (§1.1). Not thread-safe: one reader per body. The body must
/// outlive the reader and every view it returns.
class FrameReader {
 public:
  explicit FrameReader(std::string_view body) : rest_(body) {}

  /// Advances to the next frame. On kFrame, `*frame` is the counted bytes (header + MSG).
  /// After kEnd or kBroken every further call returns the same status.
  FrameStatus Next(std::string_view* frame);

  /// Bytes not yet consumed (after kBroken: the unparsed rest of the body).
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
  bool broken_ = false;
};

/// Parses the RFC 5424 header of one frame's counted bytes (SEMANTICS §1.3):
/// `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID [SP [SD SP] MSG]`.
/// PRI is 1-3 digits in angle brackets, VERSION 1-2 digits, the other fields 1*non-SP.
/// Returns std::nullopt when the header is malformed (the caller counts bad_frame, §1.5).
/// Views point into `frame_bytes`. Pure; thread-safe.
std::optional<Frame> ParseFrame(std::string_view frame_bytes);

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|+hh:mm|-hh:mm)`, `T`/`Z`
/// in either case, seconds 00-60) into Unix nanoseconds, UTC. std::nullopt when it does
/// not parse or the date is invalid (SEMANTICS §1.4). Pure; thread-safe.
std::optional<std::int64_t> ParseRfc3339Nanos(std::string_view text);

/// Bytes of the date and time to the second that start an RFC 3339 timestamp
/// (`YYYY-MM-DDTHH:MM:SS`).
inline constexpr std::size_t kRfc3339SecondBytes = 19;

/// ParseRfc3339Nanos with a one-entry cache of the date and time to the second: the
/// frames of one body mostly share their timestamp's first kRfc3339SecondBytes, whose
/// parse and validation (the civil date to Unix seconds) is then reused, and only the
/// fraction and offset are parsed. Gives exactly ParseRfc3339Nanos's result for every
/// input, in any order of calls. No allocation. Not thread-safe: one per body or thread.
class Rfc3339Cache {
 public:
  /// Same contract as ParseRfc3339Nanos.
  std::optional<std::int64_t> Parse(std::string_view text);

 private:
  char second_text_[kRfc3339SecondBytes] = {};  // The cached prefix, when has_second_.
  bool has_second_ = false;
  std::optional<std::int64_t> second_;  // Its parse (local seconds before the offset).
};

}  // namespace drainmet::logplex
