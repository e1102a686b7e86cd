#include "common/store/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "common/base/status_macros.h"
#include "common/base/strings.h"

namespace drainmet::store {
namespace {

timeval ToTimeval(std::chrono::milliseconds duration) {
  const std::int64_t ms = std::max<std::int64_t>(duration.count(), 1);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

// Blocks SIGPIPE on the calling thread for its lifetime and consumes a SIGPIPE raised
// meanwhile by a write to a closed socket (hiredis uses write(2), not send(MSG_NOSIGNAL)).
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&sigpipe_);
    sigaddset(&sigpipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &sigpipe_, &previous_);
  }
  ~ScopedSigpipeBlock() {
    const int saved_errno = errno;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        while (sigtimedwait(&sigpipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    errno = saved_errno;
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t sigpipe_;
  sigset_t previous_;
  bool was_pending_ = false;
};

std::size_t Digits(std::size_t n) {
  std::size_t digits = 1;
  for (; n >= 10; n /= 10) ++digits;
  return digits;
}

std::size_t BulkSize(std::string_view arg) {
  // "$" digits "\r\n" data "\r\n"
  return 1 + Digits(arg.size()) + 2 + arg.size() + 2;
}

// `prefix` (one byte), the decimal `n`, CRLF.
void AppendCount(std::string& out, char prefix, std::size_t n) {
  char buffer[24];
  char* end = buffer + sizeof buffer;
  char* p = end;
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  *--p = prefix;
  out.append(p, static_cast<std::size_t>(end - p));
}

void AppendBulk(std::string& out, std::string_view arg) {
  AppendCount(out, '$', arg.size());
  out.append(arg);
  out.append("\r\n", 2);
}

// RESP encoding of a command: an array of bulk strings (binary-safe).
std::string EncodeCommand(absl::Span<const std::string_view> argv) {
  std::size_t size = 16;
  for (std::string_view arg : argv) size += BulkSize(arg);
  std::string out;
  out.reserve(size);
  AppendCount(out, '*', argv.size());
  for (std::string_view arg : argv) AppendBulk(out, arg);
  return out;
}

absl::StatusOr<Reply> Convert(const redisReply& raw) {
  switch (raw.type) {
    case REDIS_REPLY_NIL:
      return Reply::Nil();
    case REDIS_REPLY_INTEGER:
      return Reply::Integer(raw.integer);
    case REDIS_REPLY_STRING:
      return Reply::String(std::string(raw.str, raw.len));
    case REDIS_REPLY_STATUS:
      return Reply::Status(std::string(raw.str, raw.len));
    case REDIS_REPLY_ERROR:
      return Reply::Error(std::string(raw.str, raw.len));
    case REDIS_REPLY_ARRAY: {
      std::vector<Reply> elements;
      elements.reserve(raw.elements);
      for (std::size_t i = 0; i < raw.elements; ++i) {
        DRAINMET_ASSIGN_OR_RETURN(Reply element, Convert(*raw.element[i]));
        elements.push_back(std::move(element));
      }
      return Reply::Array(std::move(elements));
    }
    default:
      return absl::InternalError(base::Cat("redis: unknown reply type ", raw.type));
  }
}

void DebugStringTo(const Reply& reply, std::string& out) {
  switch (reply.type) {
    case Reply::Type::kNil:
      out += "nil";
      return;
    case Reply::Type::kInteger:
      out += base::Cat(reply.integer);
      return;
    case Reply::Type::kString:
    case Reply::Type::kStatus:
    case Reply::Type::kError: {
      constexpr std::size_t kMax = 64;
      std::string_view text = reply.str;
      const bool cut = text.size() > kMax;
      if (cut) text = text.substr(0, kMax);
      if (reply.type == Reply::Type::kStatus) out += "+";
      if (reply.type == Reply::Type::kError) out += "-";
      out +=
          base::Cat("\"", absl::CEscape(absl::string_view(text.data(), text.size())), cut ? "...\"" : "\"");
      return;
    }
    case Reply::Type::kArray:
      out += "[";
      for (std::size_t i = 0; i < reply.elements.size(); ++i) {
        if (i > 0) out += ", ";
        DebugStringTo(reply.elements[i], out);
      }
      out += "]";
      return;
  }
}

}  // namespace

Reply Reply::Integer(std::int64_t value) {
  Reply reply;
  reply.type = Type::kInteger;
  reply.integer = value;
  return reply;
}

Reply Reply::String(std::string value) {
  Reply reply;
  reply.type = Type::kString;
  reply.str = std::move(value);
  return reply;
}

Reply Reply::Status(std::string value) {
  Reply reply;
  reply.type = Type::kStatus;
  reply.str = std::move(value);
  return reply;
}

Reply Reply::Error(std::string value) {
  Reply reply;
  reply.type = Type::kError;
  reply.str = std::move(value);
  return reply;
}

Reply Reply::Array(std::vector<Reply> elements) {
  Reply reply;
  reply.type = Type::kArray;
  reply.elements = std::move(elements);
  return reply;
}

std::string Reply::DebugString() const {
  std::string out;
  DebugStringTo(*this, out);
  return out;
}

bool operator==(const Reply& a, const Reply& b) {
  return a.type == b.type && a.integer == b.integer && a.str == b.str && a.elements == b.elements;
}

absl::Status ErrorReplyStatus(std::string_view error_text) {
  return absl::FailedPreconditionError(std::string(error_text));
}

std::string_view RedisErrorCode(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kFailedPrecondition) return {};
  const std::string_view message(status.message().data(), status.message().size());
  return message.substr(0, message.find(' '));
}

RedisScript::RedisScript(std::string name, std::string source)
    : name_(std::move(name)), source_(std::move(source)) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // SHA-1 is what Redis names scripts by (EVALSHA); it is not used for security here.
  EVP_Digest(source_.data(), source_.size(), digest, &length, EVP_sha1(), nullptr);
  sha1_ = absl::AsciiStrToLower(
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length)));
}

void RedisClient::ContextDeleter::operator()(redisContext* context) const { redisFree(context); }

RedisClient::RedisClient(Options options) : options_(std::move(options)) {
  endpoint_ = options_.unix_socket.empty() ? base::Cat(options_.host, ":", options_.port)
                                           : base::Cat("unix:", options_.unix_socket);
}

RedisClient::~RedisClient() = default;
RedisClient::RedisClient(RedisClient&& other) noexcept = default;
RedisClient& RedisClient::operator=(RedisClient&& other) noexcept = default;

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Connect(Options options) {
  auto client = std::make_unique<RedisClient>(std::move(options));
  DRAINMET_RETURN_IF_ERROR(client->EnsureConnected());
  return client;
}

absl::Status RedisClient::Open() {
  const timeval connect_timeout = ToTimeval(options_.connect_timeout);
  std::unique_ptr<redisContext, ContextDeleter> context(
      options_.unix_socket.empty()
          ? redisConnectWithTimeout(options_.host.c_str(), options_.port, connect_timeout)
          : redisConnectUnixWithTimeout(options_.unix_socket.c_str(), connect_timeout));
  if (context == nullptr) {
    return absl::UnavailableError(base::Cat("redis ", endpoint_, ": connect: out of memory"));
  }
  if (context->err != 0) {
    return absl::UnavailableError(base::Cat("redis ", endpoint_, ": connect: ", context->errstr));
  }
  if (redisSetTimeout(context.get(), ToTimeval(options_.command_timeout)) != REDIS_OK) {
    return absl::UnavailableError(
        base::Cat("redis ", endpoint_, ": setting the command timeout: ", context->errstr));
  }
  if (!options_.unix_socket.empty() && options_.unix_send_buffer_bytes > 0) {
    // Best effort (the kernel caps it at net.core.wmem_max): a default-sized buffer makes
    // the writev of a megabyte pipeline sleep and wake once per ~200 KB the server reads.
    const int bytes = options_.unix_send_buffer_bytes;
    ::setsockopt(context->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  }
  context_ = std::move(context);
  return absl::OkStatus();
}

absl::Status RedisClient::EnsureConnected() {
  if (context_ != nullptr) {
    // Between calls nothing is owed to us: a readable socket means the server closed it
    // (restart, idle timeout) or broke the protocol. Reconnect before sending anything.
    pollfd fd{context_->fd, POLLIN, 0};
    if (::poll(&fd, 1, 0) != 0) context_.reset();
  }
  if (context_ != nullptr) return absl::OkStatus();
  return Open();
}

void RedisClient::Disconnect() {
  context_.reset();
  ClearQueue();
}

absl::Status RedisClient::DropAfterError(std::string_view what) {
  const int saved_errno = errno;
  const int err = context_->err;
  std::string detail = context_->errstr;
  context_.reset();
  if (err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
    return absl::UnavailableError(base::Cat("redis ", endpoint_, ": ", what, ": timed out after ",
                                            options_.command_timeout.count(), " ms"));
  }
  std::string message = base::Cat("redis ", endpoint_, ": ", what, ": ", detail);
  if (err == REDIS_ERR_PROTOCOL || err == REDIS_ERR_OOM || err == REDIS_ERR_OTHER) {
    return absl::InternalError(message);
  }
  return absl::UnavailableError(message);
}

absl::StatusOr<Reply> RedisClient::ReadReply() {
  void* raw = nullptr;
  if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) {
    return DropAfterError("reading a reply");
  }
  std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(raw), freeReplyObject);
  return Convert(*reply);
}

void RedisClient::Queue(absl::Span<const std::string_view> head, absl::Span<const std::string_view> keys,
                        absl::Span<const std::string_view> args, bool reference, const RedisScript* script,
                        std::size_t tail_after) {
  Pending pending;
  pending.first_piece = pieces_.size();
  pending.script = script;
  const std::size_t start = queued_.size();
  std::size_t size = 16;
  for (const auto* list : {&head, &keys, &args}) {
    for (std::string_view arg : *list) {
      size += reference && arg.size() >= kReferenceBytes ? 1 + Digits(arg.size()) + 4 : BulkSize(arg);
    }
  }
  queued_.reserve(queued_.size() + size);
  // The run of `queued_` since the last referenced argument.
  std::size_t run = start;
  std::size_t skipped = 0;  // bytes of the command before `run`
  const auto close_run = [&] {
    if (queued_.size() > run) pieces_.push_back(Piece{nullptr, run, queued_.size() - run});
    skipped += queued_.size() - run;
    run = queued_.size();
  };
  AppendCount(queued_, '*', head.size() + keys.size() + args.size());
  const auto add = [&](std::string_view arg) {
    if (!reference || arg.size() < kReferenceBytes) return AppendBulk(queued_, arg);
    AppendCount(queued_, '$', arg.size());
    close_run();
    pieces_.push_back(Piece{arg.data(), 0, arg.size()});
    skipped += arg.size();
    queued_.append("\r\n", 2);
  };
  for (std::size_t i = 0; i < head.size(); ++i) {
    add(head[i]);
    if (i + 1 == tail_after) pending.tail = skipped + (queued_.size() - run);
  }
  for (std::string_view arg : keys) add(arg);
  for (std::string_view arg : args) add(arg);
  close_run();
  pending.pieces = pieces_.size() - pending.first_piece;
  pending_.push_back(pending);
}

void RedisClient::Gather(const Pending& pending, std::size_t skip, std::vector<iovec>& iov) const {
  for (std::size_t p = pending.first_piece; p < pending.first_piece + pending.pieces; ++p) {
    const Piece& piece = pieces_[p];
    const char* data = piece.data != nullptr ? piece.data : queued_.data() + piece.offset;
    std::size_t size = piece.size;
    if (skip >= size) {
      skip -= size;
      continue;
    }
    data += skip;
    size -= skip;
    skip = 0;
    if (!iov.empty() && static_cast<const char*>(iov.back().iov_base) + iov.back().iov_len == data) {
      iov.back().iov_len += size;  // e.g. consecutive commands' copied runs
    } else {
      iov.push_back(iovec{const_cast<char*>(data), size});
    }
  }
}

void RedisClient::ClearQueue() {
  pending_.clear();
  pieces_.clear();
  queued_.clear();
  // A pipeline of large copied commands (Append) should not pin its memory.
  constexpr std::size_t kKeepBytes = 1 << 20;
  if (queued_.capacity() > kKeepBytes) std::string().swap(queued_);
}

absl::Status RedisClient::WriteAll(std::vector<iovec>& iov) {
  // Straight from the buffers (writev), not copied into hiredis's output buffer first: a
  // flush's pipeline is megabytes. hiredis's buffer stays empty, so its reads below do not
  // write anything.
  std::size_t next = 0;
  while (next < iov.size()) {
    const int count = static_cast<int>(std::min<std::size_t>(iov.size() - next, IOV_MAX));
    const ssize_t written = ::writev(context_->fd, iov.data() + next, count);
    if (written < 0) {
      if (errno == EINTR) continue;
      const int saved_errno = errno;
      context_.reset();
      if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) {
        return absl::UnavailableError(base::Cat("redis ", endpoint_, ": writing commands: timed out after ",
                                                options_.command_timeout.count(), " ms"));
      }
      return absl::UnavailableError(
          base::Cat("redis ", endpoint_, ": writing commands: ", std::strerror(saved_errno)));
    }
    // Skip what was written: whole buffers, then part of the next one.
    auto left = static_cast<std::size_t>(written);
    while (next < iov.size() && left >= iov[next].iov_len) left -= iov[next++].iov_len;
    if (left > 0) {
      iov[next].iov_base = static_cast<char*>(iov[next].iov_base) + left;
      iov[next].iov_len -= left;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Reply>> RedisClient::RoundTrip(std::vector<iovec>& iov, std::size_t replies) {
  DRAINMET_RETURN_IF_ERROR(EnsureConnected());
  ScopedSigpipeBlock no_sigpipe;
  DRAINMET_RETURN_IF_ERROR(WriteAll(iov));
  std::vector<Reply> out;
  out.reserve(replies);
  for (std::size_t i = 0; i < replies; ++i) {
    absl::StatusOr<Reply> reply = ReadReply();
    if (!reply.ok()) {
      context_.reset();  // Replies still owed would desynchronise the next call.
      return reply.status();
    }
    out.push_back(*std::move(reply));
  }
  return out;
}

absl::StatusOr<Reply> RedisClient::Command(absl::Span<const std::string_view> argv) {
  if (!pending_.empty()) {
    return absl::InternalError(base::Cat("redis ", endpoint_, ": Command() with ", pending_.size(),
                                         " appended commands not collected"));
  }
  const std::string command = EncodeCommand(argv);
  std::vector<iovec> iov{iovec{const_cast<char*>(command.data()), command.size()}};
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> replies, RoundTrip(iov, 1));
  if (replies[0].is_error()) return ErrorReplyStatus(replies[0].str);
  return std::move(replies[0]);
}

absl::StatusOr<Reply> RedisClient::Eval(const RedisScript& script, absl::Span<const std::string_view> keys,
                                        absl::Span<const std::string_view> args) {
  if (!pending_.empty()) {
    return absl::InternalError(base::Cat("redis ", endpoint_, ": Eval() with ", pending_.size(),
                                         " appended commands not collected"));
  }
  AppendEvalReferencing(script, keys, args);  // `keys` and `args` outlive GetReplies here
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> replies, GetReplies());
  if (replies[0].is_error()) return ErrorReplyStatus(replies[0].str);
  return std::move(replies[0]);
}

void RedisClient::Append(absl::Span<const std::string_view> argv) {
  Queue(argv, {}, {}, /*reference=*/false, nullptr, 0);
}

void RedisClient::AppendEval(const RedisScript& script, absl::Span<const std::string_view> keys,
                             absl::Span<const std::string_view> args) {
  const std::string numkeys = std::to_string(keys.size());
  const std::string_view head[] = {"EVALSHA", script.sha1(), numkeys};
  Queue(head, keys, args, /*reference=*/false, &script, 2);
}

void RedisClient::AppendEvalReferencing(const RedisScript& script, absl::Span<const std::string_view> keys,
                                        absl::Span<const std::string_view> args) {
  const std::string numkeys = std::to_string(keys.size());
  const std::string_view head[] = {"EVALSHA", script.sha1(), numkeys};
  Queue(head, keys, args, /*reference=*/true, &script, 2);
}

absl::StatusOr<std::vector<Reply>> RedisClient::GetReplies() {
  if (pending_.empty()) return std::vector<Reply>{};
  // The queue goes, whatever happens (its storage stays for the next pipeline).
  struct ClearOnReturn {
    RedisClient* client;
    ~ClearOnReturn() { client->ClearQueue(); }
  } clear_on_return{this};

  std::vector<iovec> iov;
  iov.reserve(pieces_.size());
  for (const Pending& pending : pending_) Gather(pending, 0, iov);
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> replies, RoundTrip(iov, pending_.size()));

  // NOSCRIPT: the server's script cache was emptied (restart, SCRIPT FLUSH). The EVALSHA
  // did nothing, so send the same call as EVAL, which runs the script and caches it: its
  // own "*<count>" and "EVAL <source>", then the EVALSHA's bytes from numkeys on.
  std::vector<std::size_t> retried;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    if (pending_[i].script != nullptr && replies[i].is_error() &&
        base::StartsWith(replies[i].str, "NOSCRIPT")) {
      retried.push_back(i);
    }
  }
  if (retried.empty()) return replies;
  std::vector<std::string> heads;
  heads.reserve(retried.size());
  for (const std::size_t i : retried) {
    const Pending& pending = pending_[i];
    const std::string_view first(queued_.data() + pieces_[pending.first_piece].offset,
                                 pieces_[pending.first_piece].size);
    const std::string_view count = first.substr(0, first.find("\r\n") + 2);  // "*N\r\n"
    std::string& head = heads.emplace_back();
    head.reserve(count.size() + 12 + BulkSize(pending.script->source()));
    head.append(count);
    AppendBulk(head, "EVAL");
    AppendBulk(head, pending.script->source());
  }
  iov.clear();
  for (std::size_t k = 0; k < retried.size(); ++k) {
    iov.push_back(iovec{heads[k].data(), heads[k].size()});
    Gather(pending_[retried[k]], pending_[retried[k]].tail, iov);
  }
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> again, RoundTrip(iov, retried.size()));
  for (std::size_t k = 0; k < retried.size(); ++k) replies[retried[k]] = std::move(again[k]);
  return replies;
}

}  // namespace drainmet::store
