// `drainmet-loadgen send` (services/loadgen/sender.h) against an in-process HTTP server on
// 127.0.0.1: the Logplex request shape (FORMATS.md §1.1-§1.3), retries with the same frame
// id (§1.6), early answers, tenants, the summary's arithmetic and the record. No timing
// assertions: only the consistency of what was sent, answered and counted.

#include "services/loadgen/sender.h"

#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/http/server.h"
#include "common/logplex/frame_reader.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace drainmet::loadgen {
namespace {

struct Seen {
  std::string target;
  std::string content_type;
  std::string msg_count;
  std::string frame_id;
  std::string authorization;
  std::size_t frames = 0;
  std::size_t body_bytes = 0;
};

/// A drain endpoint double: records every POST, answers from `answer`.
class FakeDrain {
 public:
  using Answer = std::function<http::Response(const Seen&, int copies_of_frame)>;

  explicit FakeDrain(Answer answer, http::HeaderCheck check = nullptr) : answer_(std::move(answer)) {
    http::ServerOptions options;
    options.threads = 2;
    auto server = http::Server::Start(
        options, [this](const http::Request& r) { return Handle(r); }, std::move(check));
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string Url(std::string_view path = "/logs") const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + std::string(path);
  }

  std::vector<Seen> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  http::Response Handle(const http::Request& r) {
    Seen s;
    s.target = r.target;
    s.content_type = std::string(r.Header("Content-Type").value_or(""));
    s.msg_count = std::string(r.Header("Logplex-Msg-Count").value_or(""));
    s.frame_id = std::string(r.Header("Logplex-Frame-Id").value_or(""));
    s.authorization = std::string(r.Header("Authorization").value_or(""));
    s.body_bytes = r.body.size();
    logplex::FrameReader reader(r.body);
    std::string_view frame;
    while (reader.Next(&frame) == logplex::FrameStatus::kFrame) ++s.frames;
    int copies;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(s);
      copies = ++copies_[s.frame_id];
    }
    return answer_(s, copies);
  }

  Answer answer_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
  std::map<std::string, int> copies_;
  std::unique_ptr<http::Server> server_;
};

http::Response Status(unsigned status, std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::Response r;
  r.status = status;
  r.headers = std::move(headers);
  return r;
}

SendOptions Small(const std::string& url) {
  SendOptions o;
  o.url = url;
  o.tokens = {"tok"};
  o.connections = 2;
  o.duration_s = 0.3;
  o.rate = 2000;  // lines/s: 100 requests/s of 20 lines
  o.lines_per_body = 20;
  o.series = 3;
  o.ring = 4;
  o.timeout_s = 10;
  return o;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, false);
}

std::string TempPath(const char* name) { return ::testing::TempDir() + "/" + name; }

// FORMATS.md §1.1-§1.2: every request is a Logplex POST with a unique frame id, the frame
// count, the content type and Basic auth base64(TOKEN + ":"); the summary adds up.
TEST(RunSend, SendsLogplexRequestsAndCountsThem) {
  FakeDrain drain([](const Seen&, int) { return Status(204); });
  SendOptions o = Small(drain.Url("/logs"));
  o.resolution = 1;
  o.record_path = TempPath("send_record.json");
  absl::StatusOr<SendSummary> s = RunSend(o);
  ASSERT_TRUE(s.ok()) << s.status();

  const std::vector<Seen> seen = drain.Requests();
  ASSERT_GT(s->requests, 0u);
  EXPECT_EQ(seen.size(), s->requests);
  EXPECT_EQ(s->attempts, s->requests);
  EXPECT_EQ(s->ok_2xx, s->requests);
  EXPECT_TRUE(s->non_2xx.empty());
  EXPECT_EQ(s->transport_errors, 0u);
  EXPECT_EQ(s->lines, s->requests * 20);
  EXPECT_EQ(s->points, s->lines * 3);  // measure#, sample#, count# per line
  EXPECT_EQ(s->lines_sent, s->lines);
  EXPECT_EQ(s->latency.count(), s->requests);
  std::set<std::string> ids;
  std::uint64_t bytes = 0;
  for (const Seen& r : seen) {
    EXPECT_EQ(r.target, "/logs?resolution=1");
    EXPECT_EQ(r.content_type, "application/logplex-1");
    EXPECT_EQ(r.msg_count, "20");
    EXPECT_EQ(r.frames, 20u);
    EXPECT_EQ(r.authorization, "Basic " + absl::Base64Escape("tok:"));
    EXPECT_EQ(r.frame_id.size(), 32u);
    EXPECT_EQ(r.frame_id.find_first_not_of("0123456789ABCDEF"), std::string::npos) << r.frame_id;
    ids.insert(r.frame_id);
    bytes += r.body_bytes;
  }
  EXPECT_EQ(ids.size(), seen.size()) << "frame ids must be unique";
  EXPECT_EQ(s->bytes, bytes);

  const nlohmann::json record = ReadJson(o.record_path);
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record["format"], "drainmet-loadgen-record/1");
  EXPECT_EQ(record["acknowledged_lines"], s->lines);
  EXPECT_EQ(record["unacknowledged_requests"], 0);
  ASSERT_EQ(record["tenants"].size(), 1u);
  EXPECT_EQ(record["tenants"][0]["tenant"], "tenant-0");
  EXPECT_EQ(record["tenants"][0]["lines"], s->lines);
  std::uint64_t req_sum = 0, points = 0;
  for (const nlohmann::json& series : record["tenants"][0]["series"]) {
    points += series["points"].get<std::uint64_t>();
    if (series["name"] == "req") req_sum += static_cast<std::uint64_t>(series["sum"].get<double>());
  }
  EXPECT_EQ(req_sum, s->lines);
  EXPECT_EQ(points, s->points);
}

// FORMATS.md §1.6: a 503 is retried with the same Logplex-Frame-Id after Retry-After.
TEST(RunSend, RetriesA503WithTheSameFrameId) {
  FakeDrain drain([](const Seen&, int copies) {
    return copies == 1 ? Status(503, {{"Retry-After", "0"}}) : Status(204);
  });
  SendOptions o = Small(drain.Url());
  o.retry = true;
  absl::StatusOr<SendSummary> s = RunSend(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_GT(s->requests, 0u);
  EXPECT_EQ(s->ok_2xx, s->requests);
  EXPECT_EQ(s->retries, s->requests);
  EXPECT_EQ(s->attempts, 2 * s->requests);
  EXPECT_TRUE(s->non_2xx.empty());
  std::map<std::string, int> copies;
  for (const Seen& r : drain.Requests()) ++copies[r.frame_id];
  EXPECT_EQ(copies.size(), s->requests);
  for (const auto& [id, n] : copies) EXPECT_EQ(n, 2) << id;
}

// Without --retry-503 the 503 is final: counted by status, nothing acknowledged.
TEST(RunSend, CountsNon2xxByStatusWithoutRetry) {
  FakeDrain drain([](const Seen&, int) { return Status(503, {{"Retry-After", "1"}}); });
  SendOptions o = Small(drain.Url());
  o.record_path = TempPath("send_record_503.json");
  absl::StatusOr<SendSummary> s = RunSend(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_GT(s->requests, 0u);
  EXPECT_EQ(s->ok_2xx, 0u);
  EXPECT_EQ(s->non_2xx, (std::map<unsigned, std::uint64_t>{{503, s->requests}}));
  EXPECT_EQ(s->lines, 0u);
  const nlohmann::json record = ReadJson(o.record_path);
  EXPECT_EQ(record["unacknowledged_requests"], s->requests);
  EXPECT_TRUE(record["tenants"][0]["series"].empty());
}

// An answer before the body is read (401 from the header check, then the server closes)
// is a non-2xx, not a transport error; the next request reconnects.
TEST(RunSend, EarlyAnswerIsAStatusNotATransportError) {
  FakeDrain drain([](const Seen&, int) { return Status(204); },
                  [](const http::Request&) -> std::optional<http::Response> { return Status(401); });
  SendOptions o = Small(drain.Url());
  o.lines_per_body = 800;  // ~100 KiB, more than a socket buffer takes at once
  o.rate = 40000;
  absl::StatusOr<SendSummary> s = RunSend(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_GT(s->requests, 0u);
  EXPECT_EQ(s->non_2xx[401] + s->transport_errors, s->requests);
  EXPECT_GT(s->non_2xx[401], 0u) << s->first_error;
  EXPECT_TRUE(drain.Requests().empty());
}

// Tenants cycle per request over the tokens; the record keeps one entry per token.
TEST(RunSend, CyclesTokensOverTenants) {
  FakeDrain drain([](const Seen&, int) { return Status(204); });
  SendOptions o = Small(drain.Url());
  o.tokens = {"alpha", "beta"};
  o.tenant_names = {"a", "b"};
  o.tenants = 4;
  o.record_path = TempPath("send_record_tenants.json");
  absl::StatusOr<SendSummary> s = RunSend(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_GE(s->requests, 2u);
  std::map<std::string, std::uint64_t> by_auth;
  for (const Seen& r : drain.Requests()) ++by_auth[r.authorization];
  EXPECT_EQ(by_auth.size(), 2u);
  const std::uint64_t alpha = by_auth["Basic " + absl::Base64Escape("alpha:")];
  const std::uint64_t beta = by_auth["Basic " + absl::Base64Escape("beta:")];
  EXPECT_EQ(alpha + beta, s->requests);
  EXPECT_LE(alpha > beta ? alpha - beta : beta - alpha, 2u);  // round-robin
  const nlohmann::json record = ReadJson(o.record_path);
  ASSERT_EQ(record["tenants"].size(), 2u);
  EXPECT_EQ(record["tenants"][0]["tenant"], "a");
  EXPECT_EQ(record["tenants"][1]["tenant"], "b");
  EXPECT_EQ(record["tenants"][0]["requests"], alpha);
  EXPECT_EQ(record["tenants"][1]["requests"], beta);
}

TEST(RunSend, RejectsBadOptionsByName) {
  const struct {
    const char* what;
    std::function<void(SendOptions&)> change;
    const char* message_part;
  } cases[] = {
      {"https", [](SendOptions& o) { o.url = "https://127.0.0.1:1/logs"; }, "--url"},
      {"userinfo", [](SendOptions& o) { o.url = "http://tok@127.0.0.1:1/logs"; }, "--url"},
      {"resolution", [](SendOptions& o) { o.resolution = 7; }, "--resolution"},
      {"names",
       [](SendOptions& o) {
         o.tenant_names = {"a", "b"};
       },
       "--tenant-names"},
      {"no token", [](SendOptions& o) { o.tokens.clear(); }, "--token"},
      {"template", [](SendOptions& o) { o.line_template = "count#x={nope}"; }, "--template"},
      {"files", [](SendOptions& o) { o.files = {"/nonexistent/x.logplex"}; }, "--files"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    SendOptions o = Small("http://127.0.0.1:1/logs");
    c.change(o);
    absl::StatusOr<SendSummary> s = RunSend(o);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(std::string(s.status().message()).find(c.message_part), std::string::npos) << s.status();
  }
}

TEST(LatencyHistogram, QuantilesWithinOnePercent) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.max(), 100000u);
  for (const auto& [q, want] :
       std::vector<std::pair<double, double>>{{0.5, 50000}, {0.9, 90000}, {0.99, 99000}}) {
    EXPECT_NEAR(static_cast<double>(h.Quantile(q)), want, want * 0.01) << q;
  }
  EXPECT_EQ(h.Quantile(1.0), 100000u);
  LatencyHistogram small;
  small.Record(7);
  EXPECT_EQ(small.Quantile(0.5), 7u);
  LatencyHistogram merged;
  merged.Merge(h);
  merged.Merge(small);
  EXPECT_EQ(merged.count(), 100001u);
  EXPECT_EQ(LatencyHistogram().Quantile(0.99), 0u);
}

}  // namespace
}  // namespace drainmet::loadgen
