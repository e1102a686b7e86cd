// The Redis layer of the distributed mode against a real, private redis-server: the
// blocking client (commands, pipelines, binary safety, timeouts, NOSCRIPT and reconnect
// after restarts) and the shard protocol of docs/redis-layout.md (ingest with late and
// de-dup, leases with fencing, seal/read/mark-sent/ack, takeover, AOF durability), after
// RELIABILITY.md §3.3. Every wait is bounded; keys are separated by shard number per test.

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/store/redis_client.h"
#include "common/store/redis_scripts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"
#include "tests/support/redis_server.h"

namespace drainmet::store {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using SteadyClock = std::chrono::steady_clock;
using ServerPtr = std::unique_ptr<support::RedisServer>;

constexpr char kSkipMessage[] = "redis-server is not installed (deploy/bootstrap.sh installs it)";

// The binary's shared server: started before the first test, killed after the last.
absl::StatusOr<ServerPtr>& SharedServer() {
  static auto* server = new absl::StatusOr<ServerPtr>(absl::UnknownError("not started"));
  return *server;
}

class SharedServerEnvironment : public testing::Environment {
 public:
  void SetUp() override { SharedServer() = support::RedisServer::Start(); }
  void TearDown() override { SharedServer() = absl::UnknownError("stopped"); }
};
testing::Environment* const kSharedServerEnvironment =
    testing::AddGlobalTestEnvironment(new SharedServerEnvironment);

RedisClient::Options OptionsFor(const support::RedisServer& server,
                                milliseconds command_timeout = milliseconds(2000)) {
  RedisClient::Options options;
  options.unix_socket = server.socket_path();
  options.connect_timeout = milliseconds(1000);
  options.command_timeout = command_timeout;
  return options;
}

// A shard number no other test of this process uses, so tests never see each other's keys.
std::uint32_t NewShard() {
  static std::atomic<std::uint32_t> next{1000};
  return next++;
}

// Polls `done` every 10 ms until it holds or `timeout` passes.

Reply Must(RedisClient& client, std::initializer_list<std::string_view> argv) {
  absl::StatusOr<Reply> reply = client.Command(argv);
  EXPECT_TRUE(reply.ok()) << reply.status();
  return reply.ok() ? *std::move(reply) : Reply::Error(std::string(reply.status().message()));
}

std::int64_t ServerSeconds(RedisClient& client) {
  absl::StatusOr<std::chrono::microseconds> now = ShardProtocol::ServerTime(client);
  EXPECT_TRUE(now.ok()) << now.status();
  return now.ok() ? static_cast<std::int64_t>(now->count() / 1'000'000) : 0;
}

// A close time at least 0.4 s and at most 1.6 s ahead of Redis TIME: records for it are
// accepted now and the window is due soon after.
std::int64_t CloseSoon(RedisClient& client) {
  absl::StatusOr<std::chrono::microseconds> now = ShardProtocol::ServerTime(client);
  EXPECT_TRUE(now.ok()) << now.status();
  if (!now.ok()) return 0;
  std::int64_t close = now->count() / 1'000'000 + 1;
  if (close * 1'000'000 - now->count() < 400'000) ++close;
  return close;
}

// Waits (at most 3 s) until Redis TIME reaches `close`.
bool WaitForServerTime(RedisClient& client, std::int64_t close) {
  return support::Eventually([&] { return ServerSeconds(client) >= close; }, milliseconds(3000));
}

std::string Str(std::int64_t value) { return std::to_string(value); }

class RedisTest : public testing::Test {
 protected:
  void SetUp() override {
    if (absl::IsNotFound(SharedServer().status())) GTEST_SKIP() << kSkipMessage;
    ASSERT_TRUE(SharedServer().ok()) << SharedServer().status();
    client_ = std::make_unique<RedisClient>(OptionsFor(server()));
  }

  support::RedisServer& server() { return **SharedServer(); }

  // A server of the test's own, for fault injection (kill, restart, SCRIPT FLUSH).
  ServerPtr PrivateServer() { return PrivateServer(support::RedisServer::Options()); }
  ServerPtr PrivateServer(support::RedisServer::Options options) {
    absl::StatusOr<ServerPtr> server = support::RedisServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  std::unique_ptr<RedisClient> client_;
};

// --- support::RedisServer -------------------------------------------------------------

TEST(RedisServerTest, NotFoundForMissingBinary) {
  support::RedisServer::Options options;
  options.binary = "/nonexistent/redis-server";
  EXPECT_EQ(support::RedisServer::Start(options).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RedisTest, ServerDestructorLeavesNoProcessAndNoDir) {
  ServerPtr server = PrivateServer();
  ASSERT_NE(server, nullptr);
  const pid_t pid = server->pid();
  const std::string dir = server->dir();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(std::filesystem::exists(server->socket_path()));
  server.reset();
  const int alive = ::kill(pid, 0);
  const int error = errno;
  EXPECT_EQ(alive, -1);
  EXPECT_EQ(error, ESRCH);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

// --- RedisClient ------------------------------------------------------------------------

TEST_F(RedisTest, ClientRepliesOfEveryType) {
  const std::string key = ShardProtocol::Key(NewShard(), "k");
  const std::string list = ShardProtocol::Key(NewShard(), "l");
  EXPECT_EQ(Must(*client_, {"PING"}), Reply::Status("PONG"));
  EXPECT_EQ(Must(*client_, {"SET", key, "v1"}), Reply::Status("OK"));
  EXPECT_EQ(Must(*client_, {"GET", key}), Reply::String("v1"));
  EXPECT_EQ(Must(*client_, {"GET", key + ":missing"}), Reply::Nil());
  EXPECT_EQ(Must(*client_, {"INCR", key + ":n"}), Reply::Integer(1));
  EXPECT_EQ(Must(*client_, {"RPUSH", list, "a", "", "c"}), Reply::Integer(3));
  EXPECT_EQ(Must(*client_, {"LRANGE", list, "0", "-1"}),
            Reply::Array({Reply::String("a"), Reply::String(""), Reply::String("c")}));
  EXPECT_TRUE(client_->connected());
  EXPECT_EQ(Reply::Array({Reply::String("a\n"), Reply::Integer(1), Reply::Nil(), Reply::Error("ERR x"),
                          Reply::Status("OK")})
                .DebugString(),
            R"(["a\n", 1, nil, -"ERR x", +"OK"])");
}

TEST_F(RedisTest, ClientErrorReplyIsFailedPreconditionWithItsCode) {
  const std::string key = ShardProtocol::Key(NewShard(), "k");
  Must(*client_, {"SET", key, "v"});
  absl::StatusOr<Reply> wrong_type = client_->Command({"LPUSH", key, "x"});
  EXPECT_EQ(wrong_type.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RedisErrorCode(wrong_type.status()), "WRONGTYPE");
  absl::StatusOr<Reply> unknown = client_->Command({"NOSUCHCOMMAND"});
  EXPECT_EQ(RedisErrorCode(unknown.status()), "ERR");
  // An error reply leaves the connection usable.
  EXPECT_EQ(Must(*client_, {"GET", key}), Reply::String("v"));
  EXPECT_EQ(RedisErrorCode(absl::UnavailableError("x")), "");
}

TEST_F(RedisTest, ClientIsBinarySafe) {
  const std::string key = ShardProtocol::Key(NewShard(), std::string("k\0ey\r\n", 6));
  const std::string value("\0a\r\nb\xff\0", 7);
  const std::string big(1 << 20, '\0');
  Must(*client_, {"SET", key, value});
  EXPECT_EQ(Must(*client_, {"GET", key}), Reply::String(value));
  EXPECT_EQ(Must(*client_, {"STRLEN", key}), Reply::Integer(7));
  Must(*client_, {"SET", key, big});
  EXPECT_EQ(Must(*client_, {"GET", key}).str, big);

  const RedisScript echo("echo", "return {KEYS[1], ARGV[1]}");
  const std::string_view keys[] = {key};
  const std::string_view args[] = {value};
  absl::StatusOr<Reply> echoed = client_->Eval(echo, keys, args);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, Reply::Array({Reply::String(key), Reply::String(value)}));
}

TEST_F(RedisTest, ClientPipelineKeepsOrderAndErrorsInPlace) {
  const std::string key = ShardProtocol::Key(NewShard(), "n");
  for (int i = 0; i < 100; ++i) client_->Append({"INCR", key});
  client_->Append({"NOSUCHCOMMAND"});
  client_->Append({"GET", key});
  EXPECT_EQ(client_->pending(), 102u);
  absl::StatusOr<std::vector<Reply>> replies = client_->GetReplies();
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 102u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*replies)[i], Reply::Integer(i + 1)) << i;
  EXPECT_TRUE((*replies)[100].is_error());
  EXPECT_EQ((*replies)[101], Reply::String("100"));
  EXPECT_EQ(client_->pending(), 0u);
}

TEST_F(RedisTest, ClientRefusesCommandWhilePipelineIsUncollected) {
  const std::string key = ShardProtocol::Key(NewShard(), "k");
  client_->Append({"SET", key, "1"});
  EXPECT_EQ(client_->Command({"GET", key}).status().code(), absl::StatusCode::kInternal);
  absl::StatusOr<std::vector<Reply>> replies = client_->GetReplies();
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_THAT(*replies, ElementsAre(Reply::Status("OK")));
  EXPECT_EQ(Must(*client_, {"GET", key}), Reply::String("1"));
}

TEST_F(RedisTest, ClientUnavailableWithoutServerAndEmptyPipelineDoesNoIo) {
  RedisClient::Options options;
  options.unix_socket = server().dir() + "/no-such.sock";
  RedisClient client(options);
  EXPECT_EQ(client.endpoint(), "unix:" + options.unix_socket);
  absl::StatusOr<std::vector<Reply>> none = client.GetReplies();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
  EXPECT_EQ(client.Command({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(client.connected());
  EXPECT_EQ(RedisClient::Connect(options).status().code(), absl::StatusCode::kUnavailable);
}

// hiredis writes with write(2): without the client's guard, a server closing the socket
// while a large command is being written would kill this process with SIGPIPE.
TEST_F(RedisTest, ClientSurvivesServerClosingMidWrite) {
  const std::string path = server().dir() + "/closing.sock";
  std::filesystem::remove(path);
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::thread closer([listener] {
    const int connection = ::accept(listener, nullptr, nullptr);
    if (connection < 0) return;
    char buffer[64];
    [[maybe_unused]] const ssize_t n = ::read(connection, buffer, sizeof buffer);
    ::close(connection);
  });

  RedisClient::Options options;
  options.unix_socket = path;
  RedisClient client(options);
  const std::string big(32 << 20, 'x');  // far more than the socket buffers hold
  absl::StatusOr<Reply> reply = client.Command({"SET", "k", big});
  closer.join();
  ::close(listener);
  std::filesystem::remove(path);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_FALSE(client.connected());
}

TEST_F(RedisTest, ClientTimesOutAgainstPausedServerThenRecovers) {
  RedisClient timed(OptionsFor(server(), milliseconds(200)));
  const std::string key = ShardProtocol::Key(NewShard(), "k");
  Must(timed, {"SET", key, "v"});
  Must(*client_, {"CLIENT", "PAUSE", "1200", "ALL"});

  const auto start = SteadyClock::now();
  absl::StatusOr<Reply> reply = timed.Command({"GET", key});
  const auto elapsed = SteadyClock::now() - start;
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_THAT(std::string(reply.status().message()), ::testing::HasSubstr("timed out"));
  EXPECT_GE(elapsed, milliseconds(150));
  EXPECT_LT(elapsed, milliseconds(900));
  EXPECT_FALSE(timed.connected());  // Dropped: its reply may still arrive on the old socket.

  // Once the pause ends, the next call reconnects.
  EXPECT_TRUE(support::Eventually([&] { return timed.Command({"GET", key}).ok(); }, milliseconds(3000)));
  EXPECT_EQ(Must(timed, {"GET", key}), Reply::String("v"));
}

TEST_F(RedisTest, ClientEvalRecoversFromScriptFlush) {
  const RedisScript script("concat", "return KEYS[1] .. ARGV[1]");
  const std::string key = ShardProtocol::Key(NewShard(), "k");
  const std::string_view keys[] = {key};
  const std::string_view args[] = {"+x"};
  ServerPtr own = PrivateServer();  // SCRIPT FLUSH would disturb other tests' scripts.
  ASSERT_NE(own, nullptr);
  RedisClient client(OptionsFor(*own));

  ASSERT_TRUE(client.Eval(script, keys, args).ok());
  EXPECT_EQ(Must(client, {"SCRIPT", "EXISTS", script.sha1()}), Reply::Array({Reply::Integer(1)}));
  Must(client, {"SCRIPT", "FLUSH"});
  EXPECT_EQ(Must(client, {"SCRIPT", "EXISTS", script.sha1()}), Reply::Array({Reply::Integer(0)}));

  absl::StatusOr<Reply> again = client.Eval(script, keys, args);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, Reply::String(key + "+x"));
  EXPECT_EQ(Must(client, {"SCRIPT", "EXISTS", script.sha1()}), Reply::Array({Reply::Integer(1)}));

  // In a pipeline: both EVALSHAs answer NOSCRIPT and are re-sent as EVAL.
  Must(client, {"SCRIPT", "FLUSH"});
  client.AppendEval(script, keys, args);
  client.Append({"PING"});
  client.AppendEval(script, keys, args);
  absl::StatusOr<std::vector<Reply>> replies = client.GetReplies();
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_THAT(*replies,
              ElementsAre(Reply::String(key + "+x"), Reply::Status("PONG"), Reply::String(key + "+x")));
}

// AppendEvalReferencing: arguments at or above kReferenceBytes are written from the
// caller's memory at GetReplies (so a change made before then is what is sent), shorter
// ones are copied at once; the bytes Redis gets are the same either way, also after
// NOSCRIPT re-sends the call as EVAL.
TEST_F(RedisTest, ClientAppendEvalReferencingSendsLargeArgumentsInPlace) {
  const RedisScript script(
      "echo-all", "local out = {KEYS[1]} for _, a in ipairs(ARGV) do out[#out + 1] = a end return out");
  ServerPtr own = PrivateServer();  // SCRIPT FLUSH would disturb other tests' scripts.
  ASSERT_NE(own, nullptr);
  RedisClient client(OptionsFor(*own));
  constexpr std::size_t kAt = RedisClient::kReferenceBytes;
  std::string binary;
  for (int i = 0; i < 70000; ++i) binary.push_back(static_cast<char>(i * 7 % 256));  // NUL, CR, LF
  const std::string key(kAt + 3, 'k');
  std::vector<std::string> values = {"",
                                     "a",
                                     std::string(kAt - 1, 'b'),
                                     std::string(kAt, 'c'),
                                     std::string(kAt + 1, 'd'),
                                     binary,
                                     "\r\n$3\r\nend"};
  std::vector<Reply> expected = {Reply::String(key)};
  for (const std::string& value : values) expected.push_back(Reply::String(value));

  for (const bool flushed : {false, true}) {
    SCOPED_TRACE(flushed ? "after SCRIPT FLUSH (EVAL)" : "EVALSHA");
    if (flushed) Must(client, {"SCRIPT", "FLUSH"});
    std::string changed(kAt, 'x');  // referenced: its bytes at GetReplies are sent
    std::string copied(kAt - 1, 'y');
    std::vector<std::string_view> args(values.begin(), values.end());
    args.push_back(changed);
    args.push_back(copied);
    const std::string_view keys[] = {key};
    client.AppendEvalReferencing(script, keys, args);
    client.Append({"PING"});
    client.AppendEval(script, keys, args);
    client.AppendEvalReferencing(script, keys, args);
    EXPECT_EQ(client.pending(), 4u);
    changed.assign(kAt, 'X');
    copied.assign(kAt - 1, 'Y');
    absl::StatusOr<std::vector<Reply>> replies = client.GetReplies();
    ASSERT_TRUE(replies.ok()) << replies.status();
    ASSERT_EQ(replies->size(), 4u);
    std::vector<Reply> referenced = expected;
    referenced.push_back(Reply::String(std::string(kAt, 'X')));
    referenced.push_back(Reply::String(std::string(kAt - 1, 'y')));
    std::vector<Reply> appended = expected;  // AppendEval copies everything
    appended.push_back(Reply::String(std::string(kAt, 'x')));
    appended.push_back(Reply::String(std::string(kAt - 1, 'y')));
    EXPECT_EQ((*replies)[0], Reply::Array(referenced)) << (*replies)[0].DebugString();
    EXPECT_EQ((*replies)[1], Reply::Status("PONG"));
    EXPECT_EQ((*replies)[2], Reply::Array(appended)) << (*replies)[2].DebugString();
    EXPECT_EQ((*replies)[3], Reply::Array(referenced)) << (*replies)[3].DebugString();
    EXPECT_EQ(client.pending(), 0u);
  }
  // Eval (which references: its arguments outlive the call) and a plain command after.
  const std::string_view keys[] = {key};
  const std::string_view args[] = {binary};
  absl::StatusOr<Reply> echoed = client.Eval(script, keys, args);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, Reply::Array({Reply::String(key), Reply::String(binary)}));
  EXPECT_EQ(Must(client, {"PING"}), Reply::Status("PONG"));
}

TEST_F(RedisTest, ClientScriptErrorIsFailedPrecondition) {
  const RedisScript script("fenced", "return redis.error_reply('FENCED not yours')");
  absl::StatusOr<Reply> reply = client_->Eval(script, {}, {});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RedisErrorCode(reply.status()), "FENCED");
  EXPECT_EQ(reply.status().message(), "FENCED not yours");
}

TEST_F(RedisTest, ClientReconnectsAndReloadsScriptsAfterRestart) {
  ServerPtr own = PrivateServer();
  ASSERT_NE(own, nullptr);
  RedisClient client(OptionsFor(*own));
  const RedisScript script("one", "return 1");
  ASSERT_TRUE(client.Eval(script, {}, {}).ok());

  // Restarted while the client was idle: noticed before sending, so no call fails; the
  // script cache is empty after the restart, so EVALSHA falls back to EVAL.
  ASSERT_TRUE(own->Restart().ok()) << own->Log();
  absl::StatusOr<Reply> after = client.Eval(script, {}, {});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, Reply::Integer(1));

  // Killed: calls fail with Unavailable; once it is back, the next call reconnects.
  own->Kill();
  EXPECT_EQ(client.Command({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client.Command({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(own->Restart().ok()) << own->Log();
  EXPECT_EQ(Must(client, {"PING"}), Reply::Status("PONG"));
  EXPECT_EQ(*client.Eval(script, {}, {}), Reply::Integer(1));
}

TEST_F(RedisTest, ClientOverTcp) {
  absl::StatusOr<int> port = support::RedisServer::PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status();
  support::RedisServer::Options options;
  options.port = *port;
  ServerPtr own = PrivateServer(options);
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->port(), *port);
  RedisClient::Options client_options;
  client_options.host = "127.0.0.1";
  client_options.port = own->port();
  absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Connect(client_options);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->endpoint(), "127.0.0.1:" + std::to_string(*port));
  EXPECT_EQ(Must(**client, {"PING"}), Reply::Status("PONG"));
}

// --- ShardProtocol: ingest --------------------------------------------------------------

class ShardProtocolTest : public RedisTest {
 protected:
  std::vector<std::string> List(std::string_view key) {
    Reply reply = Must(*client_, {"LRANGE", key, "0", "-1"});
    std::vector<std::string> values;
    for (const Reply& element : reply.elements) values.push_back(element.str);
    return values;
  }
  std::string PtsKey(std::uint32_t shard, std::int64_t close) {
    return ShardProtocol::Key(shard, "pts:" + Str(close));
  }
  std::string ProcKey(std::uint32_t shard, std::int64_t close) {
    return ShardProtocol::Key(shard, "proc:" + Str(close));
  }
  bool Exists(const std::string& key) { return Must(*client_, {"EXISTS", key}).integer == 1; }

  // A window that closed in the past, written directly (ingest would call its records late),
  // so seal tests need not wait for a close time to pass.
  void SeedDueWindow(std::uint32_t shard, std::int64_t close,
                     std::initializer_list<std::string_view> records) {
    for (std::string_view record : records) Must(*client_, {"RPUSH", PtsKey(shard, close), record});
    Must(*client_, {"ZADD", ShardProtocol::Key(shard, "pending"), Str(close), Str(close)});
  }

  std::optional<Lease> Acquire(std::uint32_t shard, std::string_view owner,
                               milliseconds ttl = milliseconds(30000)) {
    absl::StatusOr<std::optional<Lease>> lease = protocol_.AcquireLease(*client_, shard, owner, ttl);
    EXPECT_TRUE(lease.ok()) << lease.status();
    return lease.ok() ? *lease : std::nullopt;
  }

  ShardProtocol protocol_;
};

TEST_F(ShardProtocolTest, IngestReportsAppliedLateAndDuplicatePerRequest) {
  const std::uint32_t shard = NewShard();
  const std::int64_t now = ServerSeconds(*client_);
  const std::int64_t open = now + 60;
  const std::int64_t closed = now - 1;  // close <= Redis TIME: late (SEMANTICS §6.5)
  const std::string record_a1("a1\0bytes", 8);
  const std::vector<IngestRecord> a = {{open, record_a1}, {open, "a2"}, {open + 60, "a3"}};
  const std::vector<IngestRecord> b = {{open, "b1"}};
  const std::vector<IngestRecord> c = {{closed, "c1"}, {open, "c2"}};
  const std::vector<IngestRequest> requests = {
      {"acme", "frame-1", a},
      {"acme", "frame-1", b},  // same tenant and frame in the same batch: duplicate
      {"acme", "", c},         // no frame id: never a duplicate
  };
  absl::StatusOr<std::vector<ShardIngestResult>> results = protocol_.Ingest(*client_, shard, requests);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT(*results, ElementsAre(ShardIngestResult{3, 0, false}, ShardIngestResult{0, 0, true},
                                    ShardIngestResult{1, 1, false}));
  EXPECT_THAT(List(PtsKey(shard, open)), ElementsAre(record_a1, "a2", "c2"));
  EXPECT_THAT(List(PtsKey(shard, open + 60)), ElementsAre("a3"));
  EXPECT_FALSE(Exists(PtsKey(shard, closed)));
  absl::StatusOr<std::vector<std::int64_t>> pending = protocol_.PendingCloses(*client_, shard);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_THAT(*pending, ElementsAre(open, open + 60));

  // TTLs: the list expires window_ttl after its close; the de-dup key after dedupe_ttl.
  EXPECT_EQ(Must(*client_, {"EXPIRETIME", PtsKey(shard, open)}), Reply::Integer(open + 7200));
  const std::int64_t dedupe_ttl =
      Must(*client_, {"TTL", ShardProtocol::Key(shard, "dedupe:acme:frame-1")}).integer;
  EXPECT_GT(dedupe_ttl, 3500);
  EXPECT_LE(dedupe_ttl, 3600);

  // The whole request retried: a duplicate, nothing appended.
  const std::vector<IngestRequest> retry = {{"acme", "frame-1", a}};
  results = protocol_.Ingest(*client_, shard, retry);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT(*results, ElementsAre(ShardIngestResult{0, 0, true}));
  EXPECT_EQ(List(PtsKey(shard, open)).size(), 3u);
}

// A receiver's flush: one request carries the merged records of several drain requests
// and all their frame ids; they are applied together or not at all.
TEST_F(ShardProtocolTest, IngestOfMergedRequestsMarksEveryFrameOrAppliesNothing) {
  const std::uint32_t shard = NewShard();
  const std::int64_t open = ServerSeconds(*client_) + 60;
  const std::vector<IngestRecord> merged = {{open, "m1"}, {open, "m2"}};
  const std::vector<FrameRef> more = {{"globex", "g-1"}, {"acme", "a-2"}};
  IngestRequest request{"acme", "a-1", merged};
  request.more_frames = more;
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, std::span(&request, 1)),
              ElementsAre(ShardIngestResult{2, 0, false}));
  for (const char* key : {"dedupe:acme:a-1", "dedupe:globex:g-1", "dedupe:acme:a-2"}) {
    EXPECT_TRUE(Exists(ShardProtocol::Key(shard, key))) << key;
  }

  // A later batch holding one of those frames and a new one: refused whole, the new
  // frame not marked (its retry must still apply).
  const std::vector<IngestRecord> next = {{open, "n1"}};
  const std::vector<FrameRef> seen = {{"globex", "g-1"}};
  IngestRequest conflict{"acme", "a-3", next};
  conflict.more_frames = seen;
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, std::span(&conflict, 1)),
              ElementsAre(ShardIngestResult{0, 0, true}));
  EXPECT_FALSE(Exists(ShardProtocol::Key(shard, "dedupe:acme:a-3")));
  EXPECT_THAT(List(PtsKey(shard, open)), ElementsAre("m1", "m2"));

  // The pre-check sees the same keys, without writing.
  const std::vector<ShardFrame> frames = {
      {shard, "acme", "a-1"}, {shard, "acme", "a-3"}, {shard, "globex", "g-1"}};
  absl::StatusOr<std::vector<bool>> applied = protocol_.FramesApplied(*client_, frames);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_THAT(*applied, ElementsAre(true, false, true));

  // A bad tenant among the extra frames is refused before anything is sent.
  const std::vector<FrameRef> bad = {{"evil:tenant", "x"}};
  IngestRequest refused{"acme", "a-4", next};
  refused.more_frames = bad;
  EXPECT_EQ(protocol_.Ingest(*client_, shard, std::span(&refused, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The pre-check over several shards, interleaved: one EXISTS per shard answers the shards
// where no frame was applied; a shard with some applied is asked frame by frame.
TEST_F(ShardProtocolTest, FramesAppliedAcrossShardsInOrder) {
  const std::uint32_t none = NewShard();
  const std::uint32_t some = NewShard();
  const std::uint32_t all = NewShard();
  const std::int64_t open = ServerSeconds(*client_) + 60;
  const std::vector<IngestRecord> records = {{open, "r"}};
  for (const auto& [shard, frame] : {std::pair{some, "f-2"}, std::pair{all, "f-1"}, std::pair{all, "f-2"}}) {
    const IngestRequest request{"acme", frame, records};
    EXPECT_THAT(*protocol_.Ingest(*client_, shard, std::span(&request, 1)),
                ElementsAre(ShardIngestResult{1, 0, false}));
  }
  std::vector<ShardFrame> frames;
  std::vector<bool> expected;
  for (const char* frame : {"f-1", "f-2", "f-3"}) {
    for (const std::uint32_t shard : {none, some, all}) {
      frames.push_back(ShardFrame{shard, "acme", frame});
      expected.push_back((shard == some && std::string_view(frame) == "f-2") ||
                         (shard == all && std::string_view(frame) != "f-3"));
    }
  }
  frames.push_back(ShardFrame{some, "acme", "f-2"});  // twice
  expected.push_back(true);
  frames.push_back(ShardFrame{some, "globex", "f-2"});  // other tenant
  expected.push_back(false);
  absl::StatusOr<std::vector<bool>> applied = protocol_.FramesApplied(*client_, frames);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(*applied, expected);
  EXPECT_EQ(client_->pending(), 0u);

  applied = protocol_.FramesApplied(*client_, {});
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_THAT(*applied, IsEmpty());
}

TEST_F(ShardProtocolTest, IngestDeduplicatesPerTenantAndPerShard) {
  const std::uint32_t shard = NewShard();
  const std::uint32_t other_shard = NewShard();
  const std::int64_t open = ServerSeconds(*client_) + 60;
  const std::vector<IngestRecord> records = {{open, "r"}};
  const std::vector<IngestRequest> acme = {{"acme", "frame-7", records}};
  const std::vector<IngestRequest> globex = {{"globex", "frame-7", records}};

  EXPECT_THAT(*protocol_.Ingest(*client_, shard, acme), ElementsAre(ShardIngestResult{1, 0, false}));
  // Same frame id, other tenant: its own request.
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, globex), ElementsAre(ShardIngestResult{1, 0, false}));
  // Same tenant and frame id, other shard: that shard has not seen it.
  EXPECT_THAT(*protocol_.Ingest(*client_, other_shard, acme), ElementsAre(ShardIngestResult{1, 0, false}));
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, acme), ElementsAre(ShardIngestResult{0, 0, true}));
  EXPECT_THAT(*protocol_.Ingest(*client_, other_shard, acme), ElementsAre(ShardIngestResult{0, 0, true}));
  EXPECT_EQ(List(PtsKey(shard, open)).size(), 2u);
  EXPECT_EQ(List(PtsKey(other_shard, open)).size(), 1u);
}

// RELIABILITY.md §3.3 crash analysis: a receiver dies after k of n shard scripts; the
// retry (same frame id, maybe another receiver) applies exactly the n - k missing shards.
TEST_F(ShardProtocolTest, RetryAfterPartialFailureAppliesOnlyMissingShards) {
  const std::uint32_t shards[] = {NewShard(), NewShard(), NewShard()};
  const std::int64_t open = ServerSeconds(*client_) + 60;
  std::vector<std::string> payloads;
  for (std::uint32_t shard : shards) payloads.push_back("point-of-" + Str(shard));
  std::vector<std::vector<IngestRecord>> records;
  for (const std::string& payload : payloads) records.push_back({{open, payload}});
  std::vector<std::vector<IngestRequest>> requests;
  for (const auto& shard_records : records) requests.push_back({{"acme", "frame-42", shard_records}});
  std::vector<ShardIngest> batches;
  for (std::size_t i = 0; i < 3; ++i) batches.push_back({shards[i], requests[i]});

  // First attempt: only the first two shards were written before the "crash".
  auto first = protocol_.IngestPipelined(*client_, std::span(batches).first(2));
  ASSERT_EQ(first.size(), 2u);
  for (const auto& result : first) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_THAT(*result, ElementsAre(ShardIngestResult{1, 0, false}));
  }
  // The retry sends all three.
  RedisClient other_receiver(OptionsFor(server()));
  auto retry = protocol_.IngestPipelined(other_receiver, batches);
  ASSERT_EQ(retry.size(), 3u);
  for (const auto& result : retry) ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*retry[0], ElementsAre(ShardIngestResult{0, 0, true}));
  EXPECT_THAT(*retry[1], ElementsAre(ShardIngestResult{0, 0, true}));
  EXPECT_THAT(*retry[2], ElementsAre(ShardIngestResult{1, 0, false}));
  for (std::uint32_t shard : shards) {
    EXPECT_THAT(List(PtsKey(shard, open)), ElementsAre("point-of-" + Str(shard))) << shard;
  }
}

// ShardProtocolOptions::shards_per_ingest_call: the batches of one IngestPipelined go in
// one ingest.lua call (0), or in calls of that many shards, with the same results and
// records either way (per shard: applied, late in a sealed window, a duplicate).
TEST_F(ShardProtocolTest, IngestPipelinedGroupsShardsIntoCallsWithTheSameResults) {
  for (const std::size_t per_call : {0u, 1u, 2u}) {
    SCOPED_TRACE(per_call);
    ShardProtocolOptions options;
    options.shards_per_ingest_call = per_call;
    const ShardProtocol protocol(options);
    const std::uint32_t shards[] = {NewShard(), NewShard(), NewShard()};
    const std::int64_t open = ServerSeconds(*client_) + 60;
    Must(*client_, {"SET", ShardProtocol::Key(shards[1], "sealed:" + Str(open)), "1"});
    const std::vector<IngestRecord> records = {{open, "r1"}, {open, "r2"}};
    const std::vector<IngestRequest> first = {{"acme", "f1", records}};
    // Shard 2 already has frame f1: the retry of a frame applied there before.
    ASSERT_TRUE(protocol.Ingest(*client_, shards[2], first).ok());
    const std::vector<IngestRequest> two = {{"acme", "f1", records}, {"globex", "g1", records}};
    const ShardIngest batches[] = {{shards[0], two}, {shards[1], first}, {shards[2], two}};
    Must(*client_, {"CONFIG", "RESETSTAT"});
    const auto results = protocol.IngestPipelined(*client_, batches);
    ASSERT_EQ(results.size(), 3u);
    for (const auto& result : results) ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_THAT(*results[0], ElementsAre(ShardIngestResult{2, 0, false}, ShardIngestResult{2, 0, false}));
    EXPECT_THAT(*results[1], ElementsAre(ShardIngestResult{0, 2, false}));
    EXPECT_THAT(*results[2], ElementsAre(ShardIngestResult{0, 0, true}, ShardIngestResult{2, 0, false}));
    EXPECT_THAT(List(PtsKey(shards[0], open)), ElementsAre("r1", "r2", "r1", "r2"));
    EXPECT_FALSE(Exists(PtsKey(shards[1], open)));
    EXPECT_THAT(List(PtsKey(shards[2], open)), ElementsAre("r1", "r2", "r1", "r2"));
    // One call for all three shards, or one per `per_call` of them.
    const std::string stats = Must(*client_, {"INFO", "commandstats"}).str;
    const std::size_t at = stats.find("cmdstat_evalsha:calls=");
    ASSERT_NE(at, std::string::npos) << stats;
    const std::size_t calls = std::stoul(stats.substr(at + 22));
    EXPECT_EQ(calls, per_call == 0 ? 1u : (3 + per_call - 1) / per_call);
  }
}

// An error reply fails every batch of its call (here a call for all shards), and only
// those: with one shard per call, the other shards' results stand.
TEST_F(ShardProtocolTest, IngestErrorReplyFailsTheBatchesOfItsCall) {
  for (const std::size_t per_call : {0u, 1u}) {
    SCOPED_TRACE(per_call);
    ShardProtocolOptions options;
    options.shards_per_ingest_call = per_call;
    const ShardProtocol protocol(options);
    const std::uint32_t shards[] = {NewShard(), NewShard()};
    const std::int64_t open = ServerSeconds(*client_) + 60;
    // The second shard's window list is not a list: its RPUSH fails (WRONGTYPE).
    Must(*client_, {"SET", PtsKey(shards[1], open), "not a list"});
    const std::vector<IngestRecord> records = {{open, "r"}};
    const std::vector<IngestRequest> requests = {{"acme", "f", records}};
    const ShardIngest batches[] = {{shards[0], requests}, {shards[1], requests}};
    const auto results = protocol.IngestPipelined(*client_, batches);
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[1].status().code(), absl::StatusCode::kFailedPrecondition) << results[1].status();
    EXPECT_THAT(std::string(results[1].status().message()), ::testing::HasSubstr("WRONGTYPE"));
    if (per_call == 0) {
      EXPECT_EQ(results[0].status(), results[1].status());
    } else {
      ASSERT_TRUE(results[0].ok()) << results[0].status();
      EXPECT_THAT(*results[0], ElementsAre(ShardIngestResult{1, 0, false}));
    }
  }
}

TEST_F(ShardProtocolTest, IngestCallsRecordsOfSealedWindowLate) {
  const std::uint32_t shard = NewShard();
  const std::int64_t open = ServerSeconds(*client_) + 60;
  // Sealed although its close time is ahead (e.g. Redis TIME stepped back after a seal).
  Must(*client_, {"SET", ShardProtocol::Key(shard, "sealed:" + Str(open)), "1"});
  const std::vector<IngestRecord> records = {{open, "x"}, {open, "y"}, {open + 1, "z"}};
  const std::vector<IngestRequest> requests = {{"acme", "f", records}};
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, requests), ElementsAre(ShardIngestResult{1, 2, false}));
  EXPECT_FALSE(Exists(PtsKey(shard, open)));
  EXPECT_THAT(*protocol_.PendingCloses(*client_, shard), ElementsAre(open + 1));
}

TEST_F(ShardProtocolTest, IngestOfNothingIsEmpty) {
  const std::uint32_t shard = NewShard();
  absl::StatusOr<std::vector<ShardIngestResult>> none = protocol_.Ingest(*client_, shard, {});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
  const std::vector<IngestRequest> empty_request = {{"acme", "f", {}}};
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, empty_request), ElementsAre(ShardIngestResult{0, 0, false}));
}

TEST_F(ShardProtocolTest, IngestRefusesTenantsThatCouldCollideInDedupeKeys) {
  const std::uint32_t shard = NewShard();
  const std::vector<IngestRecord> records = {{ServerSeconds(*client_) + 60, "r"}};
  for (std::string_view tenant : {"", "a:b"}) {
    const std::vector<IngestRequest> requests = {{tenant, "c", records}};
    EXPECT_EQ(protocol_.Ingest(*client_, shard, requests).status().code(), absl::StatusCode::kInvalidArgument)
        << tenant;
  }
  EXPECT_THAT(*protocol_.PendingCloses(*client_, shard), IsEmpty());
}

TEST_F(ShardProtocolTest, IngestUnavailableWithoutServer) {
  RedisClient::Options options;
  options.unix_socket = server().dir() + "/no-such.sock";
  RedisClient client(options);
  const std::vector<IngestRecord> records = {{1, "r"}};
  const std::vector<IngestRequest> requests = {{"acme", "f", records}};
  const ShardIngest batches[] = {{1, requests}, {2, requests}};
  for (const auto& result : protocol_.IngestPipelined(client, batches)) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  }
}

// --- ShardProtocol: leases, seal, read, mark sent, ack ------------------------------------

TEST_F(ShardProtocolTest, LeaseIsExclusiveUntilReleased) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> first = Acquire(shard, "outlet-a");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->owner, "outlet-a");
  EXPECT_EQ(Must(*client_, {"GET", ShardProtocol::Key(shard, "lease")}),
            Reply::String("outlet-a:" + Str(first->token)));
  EXPECT_FALSE(Acquire(shard, "outlet-b").has_value());
  EXPECT_FALSE(Acquire(shard, "outlet-a").has_value());  // even its holder: it renews instead

  EXPECT_TRUE(protocol_.RenewLease(*client_, shard, *first, milliseconds(30000)).ok());
  const Lease impostor{"outlet-b", first->token};
  EXPECT_FALSE(*protocol_.ReleaseLease(*client_, shard, impostor));
  EXPECT_TRUE(ShardProtocol::IsFenced(protocol_.RenewLease(*client_, shard, impostor, milliseconds(30000))));
  EXPECT_TRUE(*protocol_.ReleaseLease(*client_, shard, *first));
  EXPECT_FALSE(*protocol_.ReleaseLease(*client_, shard, *first));

  std::optional<Lease> second = Acquire(shard, "outlet-b");
  ASSERT_TRUE(second.has_value());
  EXPECT_GT(second->token, first->token);
}

TEST_F(ShardProtocolTest, ExpiredLeaseFencesItsOldHolder) {
  const std::uint32_t shard = NewShard();
  const std::int64_t close = ServerSeconds(*client_) - 30;
  SeedDueWindow(shard, close, {"r1"});
  std::optional<Lease> old_holder = Acquire(shard, "outlet-a", milliseconds(400));
  ASSERT_TRUE(old_holder.has_value());
  absl::StatusOr<SealResult> sealed = protocol_.Seal(*client_, shard, *old_holder);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_THAT(sealed->ready, ElementsAre(close));

  // outlet-a pauses past its lease; outlet-b takes the shard with a higher token.
  ASSERT_TRUE(
      support::Eventually([&] { return !Exists(ShardProtocol::Key(shard, "lease")); }, milliseconds(3000)));
  std::optional<Lease> new_holder = Acquire(shard, "outlet-b");
  ASSERT_TRUE(new_holder.has_value());
  EXPECT_GT(new_holder->token, old_holder->token);

  // Every fenced call of outlet-a is refused and changes nothing.
  const std::string_view tenants[] = {"acme"};
  const absl::Status renew = protocol_.RenewLease(*client_, shard, *old_holder, milliseconds(150));
  EXPECT_TRUE(ShardProtocol::IsFenced(renew)) << renew;
  EXPECT_EQ(renew.code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(ShardProtocol::IsFenced(protocol_.Seal(*client_, shard, *old_holder).status()));
  EXPECT_TRUE(
      ShardProtocol::IsFenced(protocol_.MarkSent(*client_, shard, *old_holder, close, tenants).status()));
  EXPECT_TRUE(ShardProtocol::IsFenced(protocol_.Ack(*client_, shard, *old_holder, close).status()));
  EXPECT_FALSE(*protocol_.ReleaseLease(*client_, shard, *old_holder));
  EXPECT_FALSE(Exists(ShardProtocol::Key(shard, "sent:" + Str(close))));
  EXPECT_TRUE(Exists(ProcKey(shard, close)));
  EXPECT_EQ(Must(*client_, {"GET", ShardProtocol::Key(shard, "lease")}), Reply::String(new_holder->Value()));

  // outlet-b carries on.
  EXPECT_TRUE(protocol_.RenewLease(*client_, shard, *new_holder, milliseconds(30000)).ok());
  EXPECT_TRUE(*protocol_.Ack(*client_, shard, *new_holder, close));
}

// RELIABILITY.md §3.3 step 4: a request given up on becomes a dead letter, written with
// its tenant's mark (fenced, atomic), read back newest first.
// With a write allowance A (config::ReceiverWriteAllowance), a window is sealed only once
// close + A has passed, and until then (unless sealed) ingest still appends to it.
TEST_F(ShardProtocolTest, WriteAllowanceDelaysSealAndLateness) {
  ShardProtocolOptions options;
  options.write_allowance = std::chrono::seconds(30);
  const ShardProtocol protocol(options);
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::int64_t closed = ServerSeconds(*client_) - 5;  // closed 5 s ago, inside 30 s
  const std::vector<IngestRecord> records = {{closed, "r1"}};
  const std::vector<IngestRequest> requests = {{"acme", "w1", records}};
  EXPECT_THAT(*protocol.Ingest(*client_, shard, requests), ElementsAre(ShardIngestResult{1, 0, false}));
  // Without the allowance the same record is late.
  const std::vector<IngestRequest> strict = {{"acme", "w2", records}};
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, strict), ElementsAre(ShardIngestResult{0, 1, false}));

  absl::StatusOr<SealResult> early = protocol.Seal(*client_, shard, *lease);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_THAT(early->sealed, IsEmpty()) << "close + allowance has not passed";
  absl::StatusOr<SealResult> now = protocol_.Seal(*client_, shard, *lease);  // allowance 0
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_THAT(now->sealed, ElementsAre(closed));
  // Sealed: late whatever the allowance.
  const std::vector<IngestRequest> after = {{"acme", "w3", records}};
  EXPECT_THAT(*protocol.Ingest(*client_, shard, after), ElementsAre(ShardIngestResult{0, 1, false}));
}

// --- Receivers' watermarks (docs/redis-layout.md "Receivers' watermarks") -------------

class WatermarkTest : public ShardProtocolTest {
 protected:
  void SetUp() override {
    ShardProtocolTest::SetUp();
    if (IsSkipped()) return;
    ClearWatermarks();
    options_.write_allowance = std::chrono::seconds(30);
    protocol_ = ShardProtocol(options_);
  }
  void TearDown() override {
    if (client_ != nullptr && !IsSkipped()) ClearWatermarks();
  }
  void ClearWatermarks() { Must(*client_, {"DEL", kWatermarksKey, kWatermarkExpiryKey}); }
  void Publish(std::string_view receiver, std::int64_t ms, milliseconds ttl = milliseconds(60000)) {
    const absl::Status status = protocol_.PublishWatermark(*client_, receiver, ms, ttl);
    ASSERT_TRUE(status.ok()) << status;
  }
  // One record ingested (applied) for a window that closed 5 s ago: inside the 30-s
  // allowance, so only the watermarks can make it due.
  std::int64_t IngestIntoClosedWindow(std::uint32_t shard) {
    const std::int64_t close = ServerSeconds(*client_) - 5;
    const std::vector<IngestRecord> records = {{close, "r"}};
    const std::string frame_id = "f" + Str(shard);  // IngestRequest views it: kept alive here
    const std::vector<IngestRequest> requests = {{"acme", frame_id, records}};
    EXPECT_THAT(*protocol_.Ingest(*client_, shard, requests), ElementsAre(ShardIngestResult{1, 0, false}));
    return close;
  }
  std::int64_t HashLength() { return Must(*client_, {"HLEN", kWatermarksKey}).integer; }
  std::int64_t ExpiryLength() { return Must(*client_, {"ZCARD", kWatermarkExpiryKey}).integer; }

  ShardProtocolOptions options_;
};

TEST_F(WatermarkTest, PublishWritesTheWatermarkAndAnExpiryOnTheServerClock) {
  const std::int64_t before_ms = ServerSeconds(*client_) * 1000;
  Publish("r1", 12345, milliseconds(1000));
  EXPECT_EQ(Must(*client_, {"HGET", kWatermarksKey, "r1"}), Reply::String("12345"));
  const Reply score = Must(*client_, {"ZSCORE", kWatermarkExpiryKey, "r1"});
  ASSERT_TRUE(score.is_string()) << score.DebugString();
  const std::int64_t expiry = std::stoll(score.str);
  EXPECT_GE(expiry, before_ms + 1000);
  EXPECT_LE(expiry, ServerSeconds(*client_) * 1000 + 2000);
  ASSERT_TRUE(protocol_.WithdrawWatermark(*client_, "r1").ok());
  EXPECT_EQ(HashLength(), 0);
  EXPECT_EQ(ExpiryLength(), 0);
  EXPECT_TRUE(protocol_.WithdrawWatermark(*client_, "r1").ok()) << "idempotent";
}

TEST_F(WatermarkTest, SealsEarlyOnceEveryLiveWatermarkReachesTheClose) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::int64_t close = IngestIntoClosedWindow(shard);
  Publish("fast", ServerSeconds(*client_) * 1000);
  Publish("slow", close * 1000 - 1);  // still holds a request received just before the close

  absl::StatusOr<SealResult> held = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_THAT(held->sealed, IsEmpty()) << "one live watermark is below the close";
  EXPECT_EQ(held->sealed_early, 0);

  Publish("slow", close * 1000);  // its last request before the close is written
  absl::StatusOr<SealResult> sealed = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_THAT(sealed->sealed, ElementsAre(close));
  EXPECT_THAT(sealed->ready, ElementsAre(close));
  EXPECT_EQ(sealed->sealed_early, 1);
  EXPECT_EQ(List(ProcKey(shard, close)), std::vector<std::string>{"r"});

  // A record for the window sealed early is late, although close + allowance is ahead.
  const std::vector<IngestRecord> records = {{close, "after"}};
  const std::vector<IngestRequest> requests = {{"acme", "late-one", records}};
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, requests), ElementsAre(ShardIngestResult{0, 1, false}));
  EXPECT_EQ(List(ProcKey(shard, close)), std::vector<std::string>{"r"});
  EXPECT_FALSE(Exists(PtsKey(shard, close)));
}

TEST_F(WatermarkTest, AWatermarkOfZeroBlocksEarlySealing) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::int64_t close = IngestIntoClosedWindow(shard);
  Publish("fast", ServerSeconds(*client_) * 1000);
  Publish("no-offset-yet", 0);
  absl::StatusOr<SealResult> held = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_THAT(held->sealed, IsEmpty());
  EXPECT_THAT(*protocol_.PendingCloses(*client_, shard), ElementsAre(close));
}

TEST_F(WatermarkTest, ExpiredEntriesAreRemovedAndIgnored) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::int64_t close = IngestIntoClosedWindow(shard);
  const std::int64_t now_ms = ServerSeconds(*client_) * 1000;
  Publish("live", now_ms);
  Publish("stalled", close * 1000 - 1000);
  // The stalled receiver's entry expired (as if it had not refreshed it for its ttl).
  Must(*client_, {"ZADD", kWatermarkExpiryKey, Str(now_ms - 1000), "stalled"});

  absl::StatusOr<SealResult> sealed = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_THAT(sealed->sealed, ElementsAre(close)) << "the expired watermark holds nothing back";
  EXPECT_EQ(sealed->sealed_early, 1);
  EXPECT_EQ(Must(*client_, {"HEXISTS", kWatermarksKey, "stalled"}).integer, 0);
  EXPECT_EQ(Must(*client_, {"ZSCORE", kWatermarkExpiryKey, "stalled"}), Reply::Nil());
  EXPECT_EQ(HashLength(), 1);
  EXPECT_EQ(ExpiryLength(), 1);
}

TEST_F(WatermarkTest, OnlyExpiredEntriesFallBackToTheAllowance) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::int64_t close = IngestIntoClosedWindow(shard);
  const std::int64_t now_ms = ServerSeconds(*client_) * 1000;
  Publish("gone", now_ms + 60000);
  Must(*client_, {"ZADD", kWatermarkExpiryKey, Str(now_ms - 1), "gone"});
  absl::StatusOr<SealResult> held = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_THAT(held->sealed, IsEmpty()) << "no live entry: close + allowance (30 s) rules";
  EXPECT_THAT(*protocol_.PendingCloses(*client_, shard), ElementsAre(close));
  EXPECT_EQ(HashLength(), 0);
  EXPECT_EQ(ExpiryLength(), 0);
}

TEST_F(WatermarkTest, WithoutEntriesTheAllowanceStillSeals) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::int64_t recent = IngestIntoClosedWindow(shard);  // 5 s ago: inside the allowance
  const std::int64_t old = ServerSeconds(*client_) - 40;      // past close + 30 s
  SeedDueWindow(shard, old, {"o"});
  absl::StatusOr<SealResult> sealed = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_THAT(sealed->sealed, ElementsAre(old));
  EXPECT_EQ(sealed->sealed_early, 0);
  EXPECT_THAT(*protocol_.PendingCloses(*client_, shard), ElementsAre(recent));
}

TEST_F(WatermarkTest, SealPipelinedSealsEveryShardInOneRoundTripAndKeepsFencing) {
  const std::uint32_t a = NewShard();
  const std::uint32_t b = NewShard();
  std::optional<Lease> lease_a = Acquire(a, "outlet-a");
  std::optional<Lease> lease_b = Acquire(b, "outlet-b");
  ASSERT_TRUE(lease_a.has_value() && lease_b.has_value());
  SeedDueWindow(a, ServerSeconds(*client_) - 40, {"x"});
  SeedDueWindow(b, ServerSeconds(*client_) - 40, {"y"});
  const Lease wrong{"outlet-a", lease_b->token + 1000};
  const ShardSeal seals[] = {{a, &*lease_a}, {b, &wrong}};
  std::vector<absl::StatusOr<SealResult>> results = protocol_.SealPipelined(*client_, seals);
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  EXPECT_EQ(results[0]->sealed.size(), 1u);
  EXPECT_TRUE(ShardProtocol::IsFenced(results[1].status())) << results[1].status();
  EXPECT_EQ(protocol_.PendingCloses(*client_, b)->size(), 1u) << "a fenced shard is not sealed";
}

TEST_F(ShardProtocolTest, MarkSentRecordsDeadLettersWithTheMark) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::string_view tenants[] = {"acme"};
  std::vector<DeadLetter> letters(2);
  letters[0] = {"acme", 0, 400, "rejected", 12, std::string(64, 'a'), "{\"errors\":1}"};
  letters[1] = {"acme", 0, 0, "expired", 3, std::string(64, 'b'), std::string(2000, 'x')};
  EXPECT_EQ(*protocol_.MarkSent(*client_, shard, *lease, 1000, tenants, letters), 1);
  absl::StatusOr<std::vector<DeadLetter>> read = protocol_.DeadLetters(*client_, shard, 10);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].reason, "expired");    // newest first
  EXPECT_EQ((*read)[0].detail.size(), 512u);  // the detail is capped
  EXPECT_EQ((*read)[0].close, 1000);
  EXPECT_EQ((*read)[1],
            (DeadLetter{"acme", 1000, 400, "rejected", 12, std::string(64, 'a'), "{\"errors\":1}"}));

  // A holder whose lease was taken over can neither mark nor dead-letter.
  Lease stale = *lease;
  stale.token += 1000;
  EXPECT_TRUE(
      ShardProtocol::IsFenced(protocol_.MarkSent(*client_, shard, stale, 1000, tenants, letters).status()));
  EXPECT_EQ(protocol_.DeadLetters(*client_, shard, 10)->size(), 2u);
}

TEST_F(ShardProtocolTest, SealReadMarkSentAndAckAWindow) {
  const std::uint32_t shard = NewShard();
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  const std::int64_t close = CloseSoon(*client_);
  const std::string binary_record("r1\0\xff", 4);
  const std::vector<IngestRecord> acme = {{close, binary_record}, {close, "r2"}};
  const std::vector<IngestRecord> globex = {{close, "r3"}};
  const std::vector<IngestRequest> requests = {{"acme", "f1", acme}, {"globex", "f1", globex}};
  ASSERT_THAT(*protocol_.Ingest(*client_, shard, requests),
              ElementsAre(ShardIngestResult{2, 0, false}, ShardIngestResult{1, 0, false}));

  // Not due yet: nothing to seal.
  absl::StatusOr<SealResult> early = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_THAT(early->sealed, IsEmpty());
  EXPECT_THAT(early->ready, IsEmpty());

  ASSERT_TRUE(WaitForServerTime(*client_, close));
  absl::StatusOr<SealResult> sealed = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_THAT(sealed->sealed, ElementsAre(close));
  EXPECT_THAT(sealed->ready, ElementsAre(close));
  EXPECT_THAT(sealed->expired, IsEmpty());
  EXPECT_FALSE(Exists(PtsKey(shard, close)));
  EXPECT_TRUE(Exists(ShardProtocol::Key(shard, "sealed:" + Str(close))));
  EXPECT_THAT(*protocol_.PendingCloses(*client_, shard), IsEmpty());

  // Late records after the seal are refused (counted), the window stays as sealed.
  const std::vector<IngestRecord> late = {{close, "late"}};
  const std::vector<IngestRequest> late_request = {{"acme", "f2", late}};
  EXPECT_THAT(*protocol_.Ingest(*client_, shard, late_request), ElementsAre(ShardIngestResult{0, 1, false}));

  // Read in chunks, in append order.
  EXPECT_THAT(*protocol_.ReadWindow(*client_, shard, close, 0, 2), ElementsAre(binary_record, "r2"));
  EXPECT_THAT(*protocol_.ReadWindow(*client_, shard, close, 2, 2), ElementsAre("r3"));
  EXPECT_THAT(*protocol_.ReadWindow(*client_, shard, close, 4, 2), IsEmpty());

  const std::string_view first[] = {"acme"};
  const std::string_view both[] = {"acme", "globex"};
  EXPECT_EQ(*protocol_.MarkSent(*client_, shard, *lease, close, first), 1);
  EXPECT_EQ(*protocol_.MarkSent(*client_, shard, *lease, close, both), 1);
  EXPECT_THAT(*protocol_.SentTenants(*client_, shard, close), UnorderedElementsAre("acme", "globex"));

  EXPECT_TRUE(*protocol_.Ack(*client_, shard, *lease, close));
  EXPECT_FALSE(*protocol_.Ack(*client_, shard, *lease, close));  // idempotent
  EXPECT_FALSE(Exists(ProcKey(shard, close)));
  EXPECT_FALSE(Exists(ShardProtocol::Key(shard, "sent:" + Str(close))));
  EXPECT_TRUE(Exists(ShardProtocol::Key(shard, "done:" + Str(close))));
  EXPECT_THAT(*protocol_.ReadWindow(*client_, shard, close, 0, 10), IsEmpty());
  absl::StatusOr<SealResult> after = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(after->ready, IsEmpty());
}

// RELIABILITY.md §3.3 outlet crash analysis: killed after seal and part of the emission;
// the next lease holder finds the sealed window, skips tenants already sent, and acks.
TEST_F(ShardProtocolTest, NewHolderFinishesWindowsADeadHolderSealed) {
  const std::uint32_t shard = NewShard();
  const std::int64_t now = ServerSeconds(*client_);
  SeedDueWindow(shard, now - 20, {"a1", "a2"});
  SeedDueWindow(shard, now - 10, {"b1"});
  std::optional<Lease> dead = Acquire(shard, "outlet-a", milliseconds(500));
  ASSERT_TRUE(dead.has_value());
  absl::StatusOr<SealResult> sealed = protocol_.Seal(*client_, shard, *dead);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_THAT(sealed->sealed, ElementsAre(now - 20, now - 10));
  const std::string_view acme[] = {"acme"};
  ASSERT_EQ(*protocol_.MarkSent(*client_, shard, *dead, now - 20, acme), 1);
  // outlet-a is killed here: no ack, no release.

  ASSERT_TRUE(
      support::Eventually([&] { return !Exists(ShardProtocol::Key(shard, "lease")); }, milliseconds(3000)));
  std::optional<Lease> heir = Acquire(shard, "outlet-b");
  ASSERT_TRUE(heir.has_value());
  absl::StatusOr<SealResult> found = protocol_.Seal(*client_, shard, *heir);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(found->sealed, IsEmpty());
  EXPECT_THAT(found->ready, ElementsAre(now - 20, now - 10));
  EXPECT_THAT(*protocol_.SentTenants(*client_, shard, now - 20), ElementsAre("acme"));
  EXPECT_THAT(*protocol_.ReadWindow(*client_, shard, now - 20, 0, 100), ElementsAre("a1", "a2"));
  EXPECT_THAT(*protocol_.ReadWindow(*client_, shard, now - 10, 0, 100), ElementsAre("b1"));
  EXPECT_TRUE(*protocol_.Ack(*client_, shard, *heir, now - 20));
  EXPECT_TRUE(*protocol_.Ack(*client_, shard, *heir, now - 10));
  absl::StatusOr<SealResult> done = protocol_.Seal(*client_, shard, *heir);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(done->ready, IsEmpty());
  EXPECT_THAT(done->expired, IsEmpty());
}

TEST_F(ShardProtocolTest, SealHonoursItsLimitOldestFirst) {
  const std::uint32_t shard = NewShard();
  const std::int64_t now = ServerSeconds(*client_);
  for (std::int64_t close : {now - 3, now - 1, now - 2}) SeedDueWindow(shard, close, {"r"});
  SeedDueWindow(shard, now + 60, {"open"});  // not due
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());

  absl::StatusOr<SealResult> first = protocol_.Seal(*client_, shard, *lease, 2);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->sealed, ElementsAre(now - 3, now - 2));
  EXPECT_THAT(first->ready, ElementsAre(now - 3, now - 2));
  absl::StatusOr<SealResult> second = protocol_.Seal(*client_, shard, *lease, 2);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(second->sealed, ElementsAre(now - 1));
  EXPECT_THAT(second->ready, ElementsAre(now - 3, now - 2));  // oldest unacked first
  EXPECT_THAT(*protocol_.PendingCloses(*client_, shard), ElementsAre(now + 60));
  EXPECT_EQ(protocol_.Seal(*client_, shard, *lease, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ShardProtocolTest, SealReportsWindowsWhoseRecordsExpired) {
  const std::uint32_t shard = NewShard();
  const std::int64_t now = ServerSeconds(*client_);
  SeedDueWindow(shard, now - 5, {"r"});
  SeedDueWindow(shard, now - 4, {"r"});
  std::optional<Lease> lease = Acquire(shard, "outlet-a");
  ASSERT_TRUE(lease.has_value());
  // The list of a pending window expired (window TTL) before any seal.
  Must(*client_, {"DEL", PtsKey(shard, now - 5)});
  absl::StatusOr<SealResult> sealed = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_THAT(sealed->sealed, ElementsAre(now - 4));
  EXPECT_THAT(sealed->expired, ElementsAre(now - 5));
  // A sealed window's list expired before its ack.
  Must(*client_, {"DEL", ProcKey(shard, now - 4)});
  absl::StatusOr<SealResult> again = protocol_.Seal(*client_, shard, *lease);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(again->ready, IsEmpty());
  EXPECT_THAT(again->expired, ElementsAre(now - 4));
  EXPECT_EQ(Must(*client_, {"ZCARD", ShardProtocol::Key(shard, "sealed_index")}), Reply::Integer(0));
}

// The scripts' "#!lua" flag makes a server over maxmemory refuse the whole call (-OOM) up
// front: no de-dup key without its records, so the receiver's 503 and the retry are exact.
TEST_F(ShardProtocolTest, IngestOverMaxmemoryIsRefusedWhole) {
  ServerPtr own = PrivateServer();
  ASSERT_NE(own, nullptr);
  RedisClient client(OptionsFor(*own));
  const std::uint32_t shard = NewShard();
  absl::StatusOr<std::chrono::microseconds> now = ShardProtocol::ServerTime(client);
  ASSERT_TRUE(now.ok()) << now.status();
  const std::vector<IngestRecord> records = {{now->count() / 1'000'000 + 60, "r"}};
  const std::vector<IngestRequest> requests = {{"acme", "frame-1", records}};

  Must(client, {"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  Must(client, {"CONFIG", "SET", "maxmemory", "1"});
  absl::StatusOr<std::vector<ShardIngestResult>> refused = protocol_.Ingest(client, shard, requests);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(RedisErrorCode(refused.status()), "OOM");
  Must(client, {"CONFIG", "SET", "maxmemory", "0"});
  EXPECT_EQ(Must(client, {"EXISTS", ShardProtocol::Key(shard, "dedupe:acme:frame-1")}), Reply::Integer(0));
  EXPECT_THAT(*protocol_.Ingest(client, shard, requests), ElementsAre(ShardIngestResult{1, 0, false}));
}

// --- Durability ---------------------------------------------------------------------------

// RELIABILITY.md §3.3: with appendfsync always, an acknowledged ingest survives kill -9.
TEST_F(ShardProtocolTest, IngestSurvivesKillWithAppendFsyncAlways) {
  support::RedisServer::Options options;
  options.append_only = true;
  options.fsync = support::RedisServer::Fsync::kAlways;
  ServerPtr own = PrivateServer(options);
  ASSERT_NE(own, nullptr);
  RedisClient client(OptionsFor(*own));
  const std::uint32_t shard = NewShard();
  absl::StatusOr<std::chrono::microseconds> now = ShardProtocol::ServerTime(client);
  ASSERT_TRUE(now.ok()) << now.status();
  const std::int64_t open = now->count() / 1'000'000 + 60;
  const std::vector<IngestRecord> records = {{open, std::string_view("p\0q", 3)}, {open, "r"}};
  const std::vector<IngestRequest> requests = {{"acme", "frame-9", records}};
  ASSERT_THAT(*protocol_.Ingest(client, shard, requests), ElementsAre(ShardIngestResult{2, 0, false}));
  absl::StatusOr<std::optional<Lease>> lease =
      protocol_.AcquireLease(client, shard, "outlet-a", milliseconds(60000));
  ASSERT_TRUE(lease.ok() && lease->has_value()) << lease.status();

  own->Kill();
  ASSERT_TRUE(own->Restart().ok()) << own->Log();

  absl::StatusOr<Reply> list = client.Command({"LRANGE", PtsKey(shard, open), "0", "-1"});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(*list, Reply::Array({Reply::String(std::string("p\0q", 3)), Reply::String("r")}));
  EXPECT_THAT(*protocol_.PendingCloses(client, shard), ElementsAre(open));
  // The de-dup key survived too: the retry is recognised.
  EXPECT_THAT(*protocol_.Ingest(client, shard, requests), ElementsAre(ShardIngestResult{0, 0, true}));
  // And the lease with its fencing token.
  EXPECT_TRUE(protocol_.RenewLease(client, shard, **lease, milliseconds(60000)).ok());
}

}  // namespace
}  // namespace drainmet::store
