// DrainHandler: status codes of FORMATS.md §1.6 / issue "Standalone drainmet" (405, 401,
// 400 for a bad option, 204), tenant from Basic auth, Logplex-Frame-Id de-duplication.

#include "common/drain/handler.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/store/memory_store.h"
#include "gtest/gtest.h"
#include "tests/support/drain_text.h"

namespace drainmet::drain {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kNow = 1709633760;  // 2024-03-05T10:16:00Z

using support::Framed;
std::string Basic(std::string_view user_pass) {
  return "Basic " + absl::Base64Escape(std::string(user_pass));
}

class DrainHandlerTest : public ::testing::Test {
 protected:
  DrainHandlerTest() {
    config::Config c;
    for (const char* id : {"acme", "globex"}) {
      config::Tenant t;
      t.id = id;
      t.token_hashes.push_back(config::HashToken(std::string("token-") + id));
      t.output = config::OutputKind::kStdout;
      c.tenants.push_back(t);
    }
    directory_ = std::make_shared<const TenantDirectory>(std::move(c));
    handler_ = std::make_unique<DrainHandler>(directory_, store_, clock_, metrics_);
  }

  http::Request Drain(std::string auth, std::string body, std::string target = "/logs") {
    http::Request r;
    r.method = "POST";
    r.target = std::move(target);
    if (!auth.empty()) r.headers.emplace_back("Authorization", std::move(auth));
    r.headers.emplace_back("Content-Type", "application/logplex-1");
    r.body = std::move(body);
    return r;
  }

  base::FakeClock clock_{kNow * kSec};
  store::MemoryStore store_{clock_, {}};
  telemetry::Metrics metrics_;
  std::shared_ptr<const TenantDirectory> directory_;
  std::unique_ptr<DrainHandler> handler_;
  const std::string body_ = Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=2");
};

TEST_F(DrainHandlerTest, TokenAsUserIsAccepted) {
  EXPECT_EQ(handler_->Handle(Drain(Basic("token-acme:"), body_)).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().points, 1u);
  auto closed = store_.TakeClosed(true);
  ASSERT_EQ(closed->size(), 1u);
  EXPECT_EQ((*closed)[0].key.tenant, "acme");
}

TEST_F(DrainHandlerTest, TenantAndTokenFormIsAccepted) {
  EXPECT_EQ(handler_->Handle(Drain(Basic("globex:token-globex"), body_)).status, 204u);
  auto closed = store_.TakeClosed(true);
  ASSERT_EQ(closed->size(), 1u);
  EXPECT_EQ((*closed)[0].key.tenant, "globex");
}

TEST_F(DrainHandlerTest, MissingOrWrongCredentialsAre401NeverOther4xx) {
  for (const std::string& auth : {std::string(), Basic("nope:"), Basic("acme:token-globex"),
                                  std::string("Bearer x"), std::string("Basic !!!")}) {
    const http::Response r = handler_->Handle(Drain(auth, body_));
    EXPECT_EQ(r.status, 401u) << auth;
    bool challenge = false;
    for (const auto& [k, v] : r.headers) challenge |= k == "WWW-Authenticate";
    EXPECT_TRUE(challenge);
  }
  EXPECT_EQ(metrics_.Snapshot().points, 0u);
}

TEST_F(DrainHandlerTest, WrongMethodIs405) {
  http::Request r = Drain(Basic("token-acme:"), body_);
  r.method = "GET";
  EXPECT_EQ(handler_->Handle(r).status, 405u);
  EXPECT_EQ(handler_->CheckHeaders(r)->status, 405u);
}

// SEMANTICS §4.7: an unknown resolution answers 400 with a reason.
TEST_F(DrainHandlerTest, UnknownResolutionIs400WithReason) {
  const http::Response r = handler_->Handle(Drain(Basic("token-acme:"), body_, "/logs?resolution=7"));
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.find("resolution"), std::string::npos) << r.body;
}

TEST_F(DrainHandlerTest, CheckHeadersPassesGoodRequests) {
  EXPECT_FALSE(handler_->CheckHeaders(Drain(Basic("token-acme:"), "", "/logs?resolution=5")).has_value());
}

// Malformed frames inside a good request: 2xx, counted (SEMANTICS §1.2).
TEST_F(DrainHandlerTest, MalformedFramesStill204) {
  EXPECT_EQ(handler_->Handle(Drain(Basic("token-acme:"), body_ + "77 short")).status, 204u);
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.frames, 1u);
  EXPECT_EQ(c.bad_frame, 1u);
  EXPECT_EQ(c.points, 1u);
}

// A retried request with the same Logplex-Frame-Id is answered 2xx and not counted twice.
TEST_F(DrainHandlerTest, RetriedFrameIdCountsOnce) {
  http::Request r = Drain(Basic("token-acme:"), body_);
  r.headers.emplace_back("Logplex-Frame-Id", "0F3A9C2E7B4D41A8A1C6E5D4B3A29180");
  EXPECT_EQ(handler_->Handle(r).status, 204u);
  EXPECT_EQ(handler_->Handle(r).status, 204u);
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.duplicate_request, 1u);
  EXPECT_EQ(c.frames, 1u);
  EXPECT_EQ(c.points, 1u);
  auto closed = store_.TakeClosed(true);
  ASSERT_EQ(closed->size(), 1u);
  EXPECT_EQ((*closed)[0].bucket.sum, 2);
}

TEST_F(DrainHandlerTest, SameFrameIdOfAnotherTenantIsNotADuplicate) {
  http::Request a = Drain(Basic("token-acme:"), body_);
  a.headers.emplace_back("Logplex-Frame-Id", "F");
  http::Request b = Drain(Basic("token-globex:"), body_);
  b.headers.emplace_back("Logplex-Frame-Id", "F");
  handler_->Handle(a);
  handler_->Handle(b);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 0u);
  EXPECT_EQ(store_.TakeClosed(true)->size(), 2u);
}

// SEMANTICS §6.5: late and future points are counted through the handler.
TEST_F(DrainHandlerTest, LateAndFuturePointsAreCounted) {
  const std::string body = Framed("<190>1 2024-03-05T10:13:01+00:00 host app web.1 - count#old=1") +
                           Framed("<190>1 2024-03-05T10:18:00+00:00 host app web.1 - count#ahead=1");
  EXPECT_EQ(handler_->Handle(Drain(Basic("token-acme:"), body)).status, 204u);
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.late, 1u);
  EXPECT_EQ(c.future, 1u);
  EXPECT_EQ(c.points, 0u);
}

// A token maps to one tenant whatever the query says: no option selects a tenant.
TEST_F(DrainHandlerTest, QueryCannotSelectAnotherTenant) {
  handler_->Handle(Drain(Basic("token-acme:"), body_, "/logs?tenant=globex&auth=token-globex"));
  auto closed = store_.TakeClosed(true);
  ASSERT_EQ(closed->size(), 1u);
  EXPECT_EQ((*closed)[0].key.tenant, "acme");
}

// A directory swapped at run time (a receiver following the config service; issue
// "Distributed drainmet": "a token revoked in the file stops working within seconds of
// reload"): the next request resolves against the new directory.
std::shared_ptr<const TenantDirectory> DirectoryWithTokens(const std::vector<std::string>& acme_tokens) {
  config::Config c;
  config::Tenant t;
  t.id = "acme";
  for (const std::string& token : acme_tokens) t.token_hashes.push_back(config::HashToken(token));
  t.output = config::OutputKind::kStdout;
  c.tenants.push_back(t);
  return std::make_shared<const TenantDirectory>(std::move(c));
}

TEST_F(DrainHandlerTest, RevokedTokenIs401AfterSet) {
  auto holder = std::make_shared<DirectoryHolder>(DirectoryWithTokens({"token-old"}));
  DrainHandler handler(holder, store_, clock_, metrics_);
  EXPECT_EQ(handler.Handle(Drain(Basic("token-old:"), body_)).status, 204u);
  EXPECT_EQ(handler.Handle(Drain(Basic("token-new:"), body_)).status, 401u);

  holder->Set(DirectoryWithTokens({"token-new"}));
  const http::Response revoked = handler.Handle(Drain(Basic("token-old:"), body_));
  EXPECT_EQ(revoked.status, 401u);
  ASSERT_EQ(revoked.headers.size(), 1u);
  EXPECT_EQ(revoked.headers[0].first, "WWW-Authenticate");
  EXPECT_TRUE(handler.CheckHeaders(Drain(Basic("token-old:"), body_)).has_value());
  EXPECT_EQ(handler.Handle(Drain(Basic("token-new:"), body_)).status, 204u);
  EXPECT_FALSE(handler.CheckHeaders(Drain(Basic("token-new:"), body_)).has_value());
  EXPECT_EQ(handler.directory_holder().get(), holder.get());
}

TEST_F(DrainHandlerTest, SnapshotTakenBeforeSetStaysValid) {
  auto holder = std::make_shared<DirectoryHolder>(DirectoryWithTokens({"token-old"}));
  const std::shared_ptr<const TenantDirectory> held = holder->Get();
  holder->Set(DirectoryWithTokens({"token-new"}));
  holder->Set(nullptr);  // Ignored: the holder is never empty.
  // The old snapshot is still whole for a request that took it before the swap.
  ASSERT_EQ(held->config.tenants.size(), 1u);
  EXPECT_TRUE(held->tokens.Authenticate(config::BasicCredentials{"token-old", ""}).has_value());
  ASSERT_NE(holder->Get(), nullptr);
  EXPECT_FALSE(holder->Get()->tokens.Authenticate(config::BasicCredentials{"token-old", ""}).has_value());
  EXPECT_TRUE(holder->Get()->tokens.Authenticate(config::BasicCredentials{"token-new", ""}).has_value());
}

// Requests on several threads while another thread swaps the directory: every answer is
// 204 or 401 (never a crash nor a mix of two directories).
TEST_F(DrainHandlerTest, ConcurrentSetAndHandle) {
  auto holder = std::make_shared<DirectoryHolder>(DirectoryWithTokens({"token-a"}));
  DrainHandler handler(holder, store_, clock_, metrics_);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const unsigned status = handler.Handle(Drain(Basic("token-a:"), body_)).status;
        if (status != 204u && status != 401u) ++bad;
      }
    });
  }
  for (int i = 0; i < 200; ++i)
    holder->Set(DirectoryWithTokens(i % 2 == 0 ? std::vector<std::string>{"token-b"}
                                               : std::vector<std::string>{"token-a"}));
  stop = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  // The last Set (i = 199) holds token-a.
  EXPECT_EQ(handler.Handle(Drain(Basic("token-a:"), body_)).status, 204u);
}

// Issue 5 "Per-tenant rate limit" (limits.tenant_points_per_second): a token bucket of one
// second's worth per tenant; over it 429 with Retry-After (FORMATS.md §1.6: Logplex retries
// 429), counted rate_limited, the points not stored and the frame id not remembered.
TEST_F(DrainHandlerTest, RateLimitAnswers429WithRetryAfterAndStoresNothing) {
  config::Config c = directory_->config;
  c.limits.tenant_points_per_second = 3;
  DrainHandler handler(std::make_shared<const TenantDirectory>(std::move(c)), store_, clock_, metrics_);
  std::string two;  // two points per request
  two = Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=1 count#b=1");
  http::Request first = Drain(Basic("token-acme:"), two);
  EXPECT_EQ(handler.Handle(first).status, 204u);  // 3 -> 1 left
  http::Request second = Drain(Basic("token-acme:"), two);
  second.headers.emplace_back("Logplex-Frame-Id", "frame-2");
  const http::Response refused = handler.Handle(second);
  EXPECT_EQ(refused.status, 429u);
  std::string retry_after;
  for (const auto& [k, v] : refused.headers)
    if (k == "Retry-After") retry_after = v;
  EXPECT_EQ(retry_after, "1");                // one point missing at 3 points/s: within a second
  EXPECT_EQ(metrics_.Snapshot().points, 2u);  // the refused request's points are not stored
  // Another tenant has its own bucket.
  EXPECT_EQ(handler.Handle(Drain(Basic("token-globex:"), two)).status, 204u);
  // A second later the same frame id is processed (not a duplicate: it was never stored).
  clock_.AdvanceNanos(kSec);
  EXPECT_EQ(handler.Handle(second).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().points, 6u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 0u);
}

TEST_F(DrainHandlerTest, RateLimitLetsARequestLargerThanOneSecondPassWhenTheBucketIsFull) {
  base::FakeClock clock{kNow * kSec};
  TenantRateLimiter limiter(clock);
  EXPECT_EQ(limiter.Acquire("acme", 25, 10, 4), 0);  // full bucket: admitted, 15 in debt
  EXPECT_EQ(limiter.Acquire("acme", 1, 10, 4), 2);   // needs 16 tokens back: 1.6 s -> 2
  clock.AdvanceNanos(2 * kSec);
  EXPECT_EQ(limiter.Acquire("acme", 1, 10, 4), 0);
  EXPECT_EQ(limiter.Acquire("acme", 1'000'000, 0, 4), 0);  // rate 0: no limit
}

// The table is bounded by the tenants: more names than max_tenants clears it (a reloaded
// configuration without some tenants) rather than growing.
TEST_F(DrainHandlerTest, RateLimiterTableIsBounded) {
  base::FakeClock clock{kNow * kSec};
  TenantRateLimiter limiter(clock);
  EXPECT_EQ(limiter.Acquire("t0", 10, 10, 2), 0);
  EXPECT_EQ(limiter.Acquire("t0", 10, 10, 2), 1);
  EXPECT_EQ(limiter.Acquire("t1", 10, 10, 2), 0);
  EXPECT_EQ(limiter.Acquire("t2", 10, 10, 2), 0);  // clears: t0 starts full again
  EXPECT_EQ(limiter.Acquire("t0", 10, 10, 2), 0);
}

// Issue 5 "Limits": limits.max_frames_per_request and limits.max_line_bytes skip frames,
// counted (too_many_frames, line_too_long), and the rest of the request is used: still 204
// (SEMANTICS §1.2: a 4xx would make Logplex drop the whole batch).
TEST_F(DrainHandlerTest, FrameCountAndFrameLengthBoundsSkipFramesAndKeepTheRest) {
  config::Config c = directory_->config;
  c.limits.max_frames_per_request = 3;
  c.limits.max_line_bytes = 90;
  DrainHandler handler(std::make_shared<const TenantDirectory>(std::move(c)), store_, clock_, metrics_);
  std::string body;
  body += Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#a=1");
  body += Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#b=1 x=" + std::string(60, 'y'));
  body += Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#c=1");
  body += Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#d=1");
  body += Framed("<190>1 2024-03-05T10:15:01+00:00 host app web.1 - count#e=1");
  EXPECT_EQ(handler.Handle(Drain(Basic("token-acme:"), body)).status, 204u);
  const telemetry::Counters counters = metrics_.Snapshot();
  EXPECT_EQ(counters.points, 2u);  // a and c: b too long, d and e beyond three frames
  EXPECT_EQ(counters.frames, 3u);
  const std::string text = metrics_.RenderText();
  EXPECT_NE(text.find("drainmet_input_rejected_total{reason=\"too_many_frames\"} 2"), std::string::npos);
  EXPECT_NE(text.find("drainmet_input_rejected_total{reason=\"line_too_long\"} 1"), std::string::npos);
}

// Issue 5, Security: repeated auth failures from one address are slowed down. The counting
// is per address (without its port), within a window, and bounded in memory.
TEST(AuthThrottleTest, DelaysFailuresBeyondTheBoundWithinTheWindow) {
  base::FakeClock clock{kNow * kSec};
  AuthThrottle throttle(clock);
  const std::int64_t window = 60 * kSec;
  EXPECT_FALSE(throttle.Penalized("10.0.0.1", 2, window));
  EXPECT_FALSE(throttle.RecordFailure("10.0.0.1", 2, window));
  EXPECT_FALSE(throttle.RecordFailure("10.0.0.1", 2, window));
  EXPECT_TRUE(throttle.Penalized("10.0.0.1", 2, window));
  EXPECT_TRUE(throttle.RecordFailure("10.0.0.1", 2, window));
  EXPECT_FALSE(throttle.Penalized("10.0.0.2", 2, window));  // another address
  clock.AdvanceNanos(window);                               // the window ends
  EXPECT_FALSE(throttle.Penalized("10.0.0.1", 2, window));
  EXPECT_FALSE(throttle.RecordFailure("10.0.0.1", 2, window));
  EXPECT_EQ(AuthThrottle::HostOf("10.0.0.1:5678"), "10.0.0.1");
  EXPECT_EQ(AuthThrottle::HostOf("[::1]:5678"), "[::1]");
}

TEST(AuthThrottleTest, TableIsBounded) {
  base::FakeClock clock{kNow * kSec};
  AuthThrottle throttle(clock, /*max_addresses=*/3);
  for (int i = 0; i < 50; ++i) throttle.RecordFailure("10.0.0." + std::to_string(i), 2, 60 * kSec);
  EXPECT_EQ(throttle.size(), 3u);
}

// After limits.auth_failures_before_delay failures, the address's next 401 comes after
// limits.auth_failure_delay_ms, answered from a timer: HandleAsync returns at once (no
// server thread held) and another address is still answered at once.
TEST_F(DrainHandlerTest, RepeatedAuthFailuresFromOneAddressAreAnsweredLate) {
  config::Config c = directory_->config;
  c.limits.auth_failures_before_delay = 2;
  c.limits.auth_failure_delay_ms = 1500;
  DrainHandler handler(std::make_shared<const TenantDirectory>(std::move(c)), store_, clock_, metrics_);
  http::Request bad = Drain(Basic("wrong-token:"), body_);
  bad.remote_address = "192.0.2.7:40000";
  for (int i = 0; i < 2; ++i) {  // the first two: early, at once (the HeaderCheck path)
    const std::optional<http::Response> early = handler.CheckHeaders(bad);
    ASSERT_TRUE(early.has_value());
    EXPECT_EQ(early->status, 401u);
  }
  // The third: CheckHeaders leaves it to HandleAsync, which answers late.
  bad.remote_address = "192.0.2.7:40001";  // another connection of the same address
  EXPECT_FALSE(handler.CheckHeaders(bad).has_value());
  std::promise<http::Response> answer;
  std::future<http::Response> answered = answer.get_future();
  const auto start = std::chrono::steady_clock::now();
  handler.HandleAsync(bad, [&answer](http::Response r) { answer.set_value(std::move(r)); });
  EXPECT_EQ(answered.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  ASSERT_EQ(answered.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(answered.get().status, 401u);
  EXPECT_NE(metrics_.RenderText().find("drainmet_input_rejected_total{reason=\"auth_delayed\"} 1"),
            std::string::npos);
  // Another address: answered at once, still within HandleAsync.
  http::Request other = Drain(Basic("wrong-token:"), body_);
  other.remote_address = "192.0.2.8:40000";
  bool at_once = false;
  handler.HandleAsync(other, [&at_once](http::Response r) { at_once = r.status == 401u; });
  EXPECT_TRUE(at_once);
}

// No oracle on token validity (issue 5, Security): every way of being wrong gets the same
// status, headers and body. The timing does not depend on how much of a token matches:
// config::TokenIndex hashes the presented token (SHA-256) and compares digests
// (CRYPTO_memcmp), so a token sharing a long prefix with a valid one is looked up exactly
// as an unrelated one; this test documents that such a prefix gets no different answer.
TEST_F(DrainHandlerTest, EveryAuthFailureLooksTheSame) {
  const std::vector<std::string> wrong = {
      std::string(),                  // no Authorization
      Basic("nobody:token-acme"),     // unknown tenant, valid token of another
      Basic("acme:token-acmX"),       // known tenant, wrong token
      Basic("token-acm:"),            // a prefix of a valid token
      Basic("token-acme-and-more:"),  // a valid token plus a suffix
      "Bearer token-acmf",            // one byte off, as a Bearer token
  };
  std::optional<http::Response> first;
  for (const std::string& auth : wrong) {
    const http::Response r = handler_->Handle(Drain(auth, body_));
    EXPECT_EQ(r.status, 401u) << auth;
    if (!first) {
      first = r;
      continue;
    }
    EXPECT_EQ(r.body, first->body) << auth;
    EXPECT_EQ(r.headers, first->headers) << auth;
  }
  EXPECT_FALSE(directory_->tokens.Find("token-acm").has_value());
  EXPECT_FALSE(directory_->tokens.Find("token-acmf").has_value());
  EXPECT_TRUE(directory_->tokens.Find("token-acme").has_value());
}

}  // namespace
}  // namespace drainmet::drain
