#pragma once
// A small blocking Redis client on hiredis: commands, pipelines and Lua scripts with
// timeouts and reconnection. The transport of the distributed store (docs/redis-layout.md);
// receivers and outlets each own one client per thread.

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

struct redisContext;  // hiredis; kept out of this header.

namespace drainmet::store {

/// One Redis reply (RESP2), owning its data. Bulk strings are binary-safe (may hold NUL).
struct Reply {
  enum class Type : std::uint8_t { kNil, kInteger, kString, kStatus, kError, kArray };

  Type type = Type::kNil;
  std::int64_t integer = 0;     ///< kInteger only.
  std::string str;              ///< kString (bulk), kStatus ("OK"), kError ("NOSCRIPT ...").
  std::vector<Reply> elements;  ///< kArray only. A nil array arrives as kNil.

  static Reply Nil() { return Reply{}; }
  static Reply Integer(std::int64_t value);
  static Reply String(std::string value);
  static Reply Status(std::string value);
  static Reply Error(std::string value);
  static Reply Array(std::vector<Reply> elements);

  bool is_nil() const { return type == Type::kNil; }
  bool is_integer() const { return type == Type::kInteger; }
  bool is_string() const { return type == Type::kString; }
  bool is_status() const { return type == Type::kStatus; }
  bool is_error() const { return type == Type::kError; }
  bool is_array() const { return type == Type::kArray; }

  /// Short human-readable form for test failures and logs, e.g. `["a", 1, nil]`. Bytes
  /// outside printable ASCII are C-escaped; long strings are cut at 64 bytes.
  std::string DebugString() const;
};

bool operator==(const Reply& a, const Reply& b);
inline bool operator!=(const Reply& a, const Reply& b) { return !(a == b); }

/// The status for a Redis error reply: FailedPrecondition whose message is the reply's
/// text verbatim (without the leading '-'), so it starts with the error code, e.g.
/// "OOM command not allowed when used memory > 'maxmemory'." or "FENCED ...".
absl::Status ErrorReplyStatus(std::string_view error_text);

/// The error code of a status made by ErrorReplyStatus ("NOSCRIPT", "OOM", "FENCED"):
/// the first word of its message. Empty for any other status.
std::string_view RedisErrorCode(const absl::Status& status);

/// A Lua script sent by EVALSHA, falling back to EVAL when the server's script cache
/// lacks it (NOSCRIPT: the cache is empty after a restart or SCRIPT FLUSH). Immutable
/// after construction; safe to share between threads and clients.
class RedisScript {
 public:
  /// `name` is for messages only; `source` is the Lua text. Computes the SHA-1 digest
  /// the server names the script by (lowercase hex, 40 characters).
  RedisScript(std::string name, std::string source);

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string name_;
  std::string source_;
  std::string sha1_;
};

/// A blocking connection to one Redis server (unix socket or TCP).
///
/// Connection: lazy. The first call that needs the server connects (bounded by
/// connect_timeout); after a transport error the connection is dropped and the next call
/// reconnects. A connection the server closed while this client was idle (restart, idle
/// timeout) is noticed before anything is sent, so that call reconnects and succeeds.
/// No call is ever retried after its bytes were sent: the caller cannot know whether a
/// command that failed in transport was executed, and decides itself.
///
/// Errors (every call):
///   Unavailable         cannot connect, I/O error, the server closed the connection, or
///                       a read/write waited longer than command_timeout;
///   Internal            the reply could not be parsed (RESP protocol error), a reply
///                       has an unexpected shape, or the client was misused (see Command);
///   FailedPrecondition  the server answered with an error reply (see ErrorReplyStatus).
///
/// SIGPIPE: a write to a closed socket raises no signal in the process (the client
/// blocks and consumes it on the calling thread), so callers need not ignore SIGPIPE.
///
/// Thread-safety: none. One client per thread (receiver flusher, outlet worker); a client
/// may be moved to another thread between calls.
class RedisClient {
 public:
  struct Options {
    std::string unix_socket;         ///< Socket path; when non-empty, host and port are unused.
    std::string host = "127.0.0.1";  ///< Resolved at each connect (not bounded by a timeout).
    int port = 6379;
    /// Bound of one connection attempt. Must be > 0.
    std::chrono::milliseconds connect_timeout{1000};
    /// Bound of each blocking write and read of a call (SO_SNDTIMEO/SO_RCVTIMEO via
    /// redisSetTimeout): a server that stops answering costs at most about this long per
    /// call, a slow but progressing large reply may take longer. Must be > 0.
    std::chrono::milliseconds command_timeout{1000};
    /// SO_SNDBUF of a unix-socket connection, bytes (the kernel caps it at
    /// net.core.wmem_max): room for a flush's pipeline of megabytes, so that writing it
    /// does not wait for the server to read every ~200 KB (the default). <= 0: the system
    /// default. TCP connections keep the kernel's send-buffer autotuning.
    int unix_send_buffer_bytes = 4 << 20;
  };

  /// Does not connect (see "Connection" above).
  explicit RedisClient(Options options);
  ~RedisClient();
  RedisClient(RedisClient&& other) noexcept;
  RedisClient& operator=(RedisClient&& other) noexcept;
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  /// A client connected now; Unavailable when the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<RedisClient>> Connect(Options options);

  /// "unix:<path>" or "<host>:<port>", for messages.
  const std::string& endpoint() const { return endpoint_; }

  /// Whether a connection is open (it may still turn out dead on the next call).
  bool connected() const { return context_ != nullptr; }

  /// Connects unless connected. Unavailable on failure.
  absl::Status EnsureConnected();

  /// Closes the connection, if any; the next call reconnects. Drops appended commands.
  void Disconnect();

  /// Sends one command (binary-safe arguments, e.g. {"SET", key, value}) and returns its
  /// reply. An error reply is FailedPrecondition. Internal when commands appended with
  /// Append are still waiting for GetReplies (nothing is sent then).
  absl::StatusOr<Reply> Command(absl::Span<const std::string_view> argv);

  /// Runs `script` with EVALSHA, or EVAL after NOSCRIPT (which also caches it again).
  /// `keys` are the script's KEYS, `args` its ARGV. An error reply (the script's own
  /// error, e.g. "FENCED ...", or a Redis error such as OOM) is FailedPrecondition.
  absl::StatusOr<Reply> Eval(const RedisScript& script, absl::Span<const std::string_view> keys,
                             absl::Span<const std::string_view> args);

  /// Pipelining: queues a command (copied; nothing is sent). Never fails.
  void Append(absl::Span<const std::string_view> argv);

  /// Pipelining: queues an EVALSHA of `script` (keys and args copied). `script` must
  /// outlive GetReplies.
  void AppendEval(const RedisScript& script, absl::Span<const std::string_view> keys,
                  absl::Span<const std::string_view> args);

  /// Keys and args of at least this many bytes are not copied by AppendEvalReferencing.
  static constexpr std::size_t kReferenceBytes = 256;

  /// Pipelining: AppendEval without copying the large arguments (a flush's megabytes of
  /// records): a key or arg of kReferenceBytes bytes or more is written to the socket
  /// straight from the caller's memory at GetReplies, so its bytes must stay valid and
  /// unchanged until GetReplies (or Disconnect) returns. Shorter ones are copied now.
  /// `script` must outlive GetReplies.
  void AppendEvalReferencing(const RedisScript& script, absl::Span<const std::string_view> keys,
                             absl::Span<const std::string_view> args);

  /// Commands queued and not yet sent.
  std::size_t pending() const { return pending_.size(); }

  /// Sends every queued command in one write and returns their replies in order. Error
  /// replies stay in the vector as Reply::Type::kError (one failing command does not hide
  /// the others' replies). A queued EVALSHA answered NOSCRIPT is re-sent as EVAL after the
  /// pipeline, so its effect may come after commands queued behind it. On a transport
  /// error the queue is dropped and Unavailable is returned: any prefix of the commands
  /// may have run. Empty vector, without I/O, when nothing is queued.
  absl::StatusOr<std::vector<Reply>> GetReplies();

 private:
  /// A run of a queued command's RESP bytes: `size` bytes at `data` (a caller's argument,
  /// AppendEvalReferencing), or, when `data` is null, at offset `offset` of `queued_`
  /// (which may still move while commands are queued).
  struct Piece {
    const char* data = nullptr;
    std::size_t offset = 0;
    std::size_t size = 0;
  };
  /// A queued command: pieces_[first_piece, first_piece + pieces), in order.
  struct Pending {
    std::size_t first_piece = 0;
    std::size_t pieces = 0;
    const RedisScript* script = nullptr;  ///< Set for AppendEval: the EVAL fallback.
    std::size_t tail = 0;                 ///< Bytes before the numkeys argument (EVALSHA only).
  };
  struct ContextDeleter {
    void operator()(redisContext* context) const;
  };

  absl::Status Open();
  absl::Status DropAfterError(std::string_view what);
  absl::StatusOr<Reply> ReadReply();
  /// Queues a command: the RESP array of `head`, then `keys`, then `args` (each a bulk
  /// string); with `reference`, those of kReferenceBytes or more as views. `tail_after`:
  /// the number of leading `head` arguments Pending::tail skips.
  void Queue(absl::Span<const std::string_view> head, absl::Span<const std::string_view> keys,
             absl::Span<const std::string_view> args, bool reference, const RedisScript* script,
             std::size_t tail_after);
  /// Adds queued command `pending`'s bytes after its first `skip` ones to `iov`, joining
  /// runs that are adjacent in memory.
  void Gather(const Pending& pending, std::size_t skip, std::vector<iovec>& iov) const;
  /// Forgets the queued commands; keeps the storage unless it grew large.
  void ClearQueue();
  /// Writes `iov` (RESP) to the socket, bounded by command_timeout per write. Consumes
  /// `iov`.
  absl::Status WriteAll(std::vector<iovec>& iov);
  /// Writes `iov` (RESP commands) and reads `replies` replies.
  absl::StatusOr<std::vector<Reply>> RoundTrip(std::vector<iovec>& iov, std::size_t replies);

  Options options_;
  std::string endpoint_;
  std::unique_ptr<redisContext, ContextDeleter> context_;
  std::vector<Pending> pending_;
  std::vector<Piece> pieces_;  ///< Of every queued command, in order.
  std::string queued_;         ///< The queued commands' bytes that are not the callers' views.
};

}  // namespace drainmet::store
