#include "common/store/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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

// "EVALSHA|EVAL <sha|source> <numkeys> keys... args..." as RESP; `tail` receives the offset
// of <numkeys>, where the EVAL form continues identically.
std::string EncodeEval(std::string_view verb, std::string_view script,
                       absl::Span<const std::string_view> keys, absl::Span<const std::string_view> args,
                       std::size_t* tail) {
  const std::string numkeys = std::to_string(keys.size());
  std::size_t size = 16 + BulkSize(verb) + BulkSize(script) + BulkSize(numkeys);
  for (std::string_view arg : keys) size += BulkSize(arg);
  for (std::string_view arg : args) size += BulkSize(arg);
  std::string out;
  out.reserve(size);
  AppendCount(out, '*', 3 + keys.size() + args.size());
  AppendBulk(out, verb);
  AppendBulk(out, script);
  *tail = out.size();
  AppendBulk(out, numkeys);
  for (std::string_view arg : keys) AppendBulk(out, arg);
  for (std::string_view arg : args) AppendBulk(out, arg);
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
  pending_.clear();
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

absl::Status RedisClient::WriteAll(const std::vector<const std::string*>& commands) {
  // Straight from the callers' buffers (writev), not copied into hiredis's output buffer
  // first: a flush's pipeline is megabytes. hiredis's buffer stays empty, so its reads
  // below do not write anything.
  std::vector<iovec> iov;
  iov.reserve(commands.size());
  for (const std::string* command : commands) {
    if (!command->empty()) iov.push_back(iovec{const_cast<char*>(command->data()), command->size()});
  }
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

absl::StatusOr<std::vector<Reply>> RedisClient::RoundTrip(const std::vector<const std::string*>& commands) {
  DRAINMET_RETURN_IF_ERROR(EnsureConnected());
  ScopedSigpipeBlock no_sigpipe;
  DRAINMET_RETURN_IF_ERROR(WriteAll(commands));
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    absl::StatusOr<Reply> reply = ReadReply();
    if (!reply.ok()) {
      context_.reset();  // Replies still owed would desynchronise the next call.
      return reply.status();
    }
    replies.push_back(*std::move(reply));
  }
  return replies;
}

absl::StatusOr<Reply> RedisClient::Command(absl::Span<const std::string_view> argv) {
  if (!pending_.empty()) {
    return absl::InternalError(base::Cat("redis ", endpoint_, ": Command() with ", pending_.size(),
                                         " appended commands not collected"));
  }
  const std::string command = EncodeCommand(argv);
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> replies, RoundTrip({&command}));
  if (replies[0].is_error()) return ErrorReplyStatus(replies[0].str);
  return std::move(replies[0]);
}

absl::StatusOr<Reply> RedisClient::Eval(const RedisScript& script, absl::Span<const std::string_view> keys,
                                        absl::Span<const std::string_view> args) {
  if (!pending_.empty()) {
    return absl::InternalError(base::Cat("redis ", endpoint_, ": Eval() with ", pending_.size(),
                                         " appended commands not collected"));
  }
  AppendEval(script, keys, args);
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> replies, GetReplies());
  if (replies[0].is_error()) return ErrorReplyStatus(replies[0].str);
  return std::move(replies[0]);
}

void RedisClient::Append(absl::Span<const std::string_view> argv) {
  pending_.push_back(Pending{EncodeCommand(argv), nullptr, 0});
}

void RedisClient::AppendEval(const RedisScript& script, absl::Span<const std::string_view> keys,
                             absl::Span<const std::string_view> args) {
  Pending pending;
  pending.script = &script;
  pending.command = EncodeEval("EVALSHA", script.sha1(), keys, args, &pending.tail);
  pending_.push_back(std::move(pending));
}

absl::StatusOr<std::vector<Reply>> RedisClient::GetReplies() {
  if (pending_.empty()) return std::vector<Reply>{};
  std::vector<Pending> batch = std::move(pending_);
  pending_.clear();

  std::vector<const std::string*> commands;
  commands.reserve(batch.size());
  for (const Pending& pending : batch) commands.push_back(&pending.command);
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> replies, RoundTrip(commands));

  // NOSCRIPT: the server's script cache was emptied (restart, SCRIPT FLUSH). The EVALSHA
  // did nothing, so send the same call as EVAL, which runs the script and caches it.
  std::vector<std::size_t> retried;
  std::vector<std::string> evals;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].script == nullptr || !replies[i].is_error() ||
        !base::StartsWith(replies[i].str, "NOSCRIPT")) {
      continue;
    }
    std::string eval;
    const std::string_view tail = std::string_view(batch[i].command).substr(batch[i].tail);
    const std::string_view header =
        std::string_view(batch[i].command).substr(0, batch[i].command.find("\r\n") + 2);  // "*N\r\n"
    eval.reserve(header.size() + 12 + BulkSize(batch[i].script->source()) + tail.size());
    eval.append(header);
    AppendBulk(eval, "EVAL");
    AppendBulk(eval, batch[i].script->source());
    eval.append(tail);
    retried.push_back(i);
    evals.push_back(std::move(eval));
  }
  if (!retried.empty()) {
    commands.clear();
    for (const std::string& eval : evals) commands.push_back(&eval);
    DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> again, RoundTrip(commands));
    for (std::size_t k = 0; k < retried.size(); ++k) replies[retried[k]] = std::move(again[k]);
  }
  return replies;
}

}  // namespace drainmet::store
