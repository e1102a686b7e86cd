// `drainmet run` as a real child process (docs/cli.md): a YAML config, drains over HTTP
// stamped with the system clock, gauges posted to an in-test fake Librato API (FORMATS
// §5.1), retries (SEMANTICS §7.5), the HTTP answers of every endpoint, the flush at SIGTERM,
// and what the process writes on stderr (logfmt; never a secret).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/substitute.h"
#include "common/config/auth.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/golden/gauge_compare.h"
#include "tests/support/child_process.h"
#include "tests/support/fake_librato.h"
#include "tests/support/http_client.h"

extern char** environ;

namespace drainmet::standalone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char kDrainmetBinary[] = DRAINMET_BINARY_DIR "/services/standalone/drainmet";
constexpr char kApiTokenEnv[] = "DRAINMET_TEST_LIBRATO_TOKEN";
constexpr char kEmail[] = "ops@acme.example";
constexpr std::int64_t kMicrosPerSecond = 1'000'000;

/// `drainmet run` in a child process (its stderr kept for assertions).
using DrainmetProcess = support::ChildProcess;

/// "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" for Unix microseconds (RFC 3339, as Logplex stamps).
std::string Rfc3339Micros(std::int64_t unix_micros) {
  const std::time_t seconds = static_cast<std::time_t>(unix_micros / kMicrosPerSecond);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld+00:00", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(unix_micros % kMicrosPerSecond));
  return buffer;
}

std::int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

enum class Kind { kMeasure, kCount, kSample };

/// One point a test line must yield (SEMANTICS §4.1, §4.2).
struct Point {
  Kind kind;
  std::string name;
  std::string source;  // empty: none
  double value;
  std::string units;
};

/// One drain line: its MSG and the points it must yield.
struct Line {
  std::int64_t offset_micros;  // its timestamp, relative to the drain's base time
  std::string message;
  std::vector<Point> points;
};

/// A drain body (application/logplex-1, FORMATS §1.3): one octet-counted RFC 5424 frame
/// per line, HTTPS-drain form (no STRUCTURED-DATA), the count including the trailing LF.
std::string DrainBody(std::int64_t base_micros, const std::vector<Line>& lines) {
  std::string body;
  for (const Line& line : lines) {
    const std::string msg = "<190>1 " + Rfc3339Micros(base_micros + line.offset_micros) +
                            " host app web.1 - " + line.message + "\n";
    body += std::to_string(msg.size()) + " " + msg;
  }
  return body;
}

/// The gauges SEMANTICS §6-§7 make of `lines` stamped at `base_micros`, at `resolution`
/// seconds: a small independent model (exact values only; no sketch, no conflicts).
std::vector<json> ExpectedGauges(std::int64_t base_micros, const std::vector<Line>& lines, int resolution) {
  struct Bucket {
    std::vector<double> values;
    std::string units;
    std::int64_t latest_micros = INT64_MIN;
    double latest = 0;
  };
  std::map<std::tuple<int, std::string, std::string, std::int64_t>, Bucket> buckets;
  for (const Line& line : lines) {
    const std::int64_t micros = base_micros + line.offset_micros;
    const std::int64_t window = micros / kMicrosPerSecond / resolution * resolution;  // micros > 0
    for (const Point& p : line.points) {
      Bucket& b = buckets[{static_cast<int>(p.kind), p.name, p.source, window}];
      b.values.push_back(p.value);
      if (!p.units.empty() && (b.units.empty() || p.units < b.units)) b.units = p.units;
      if (micros >= b.latest_micros) {
        b.latest_micros = micros;
        b.latest = p.value;
      }
    }
  }
  std::vector<json> gauges;
  for (auto& [key, b] : buckets) {
    const auto& [kind, name, source, window] = key;
    json base = {{"name", name}, {"measure_time", window}, {"period", resolution}};
    if (!source.empty()) base["source"] = source;
    if (!b.units.empty()) base["attributes"] = {{"display_units_long", b.units}};
    if (kind == static_cast<int>(Kind::kMeasure)) {
      std::vector<double> v = b.values;
      std::sort(v.begin(), v.end());
      double sum = 0, sum_squares = 0;
      for (double x : v) {
        sum += x;
        sum_squares += x * x;
      }
      json g = base;
      g["count"] = v.size();
      g["sum"] = sum;
      g["min"] = v.front();
      g["max"] = v.back();
      g["sum_squares"] = sum_squares;
      gauges.push_back(g);
      for (const auto& [suffix, p] :
           {std::pair<const char*, std::size_t>{"median", 50}, {"perc95", 95}, {"perc99", 99}}) {
        json q = base;
        q["name"] = name + "." + suffix;
        q["value"] = v[(p * v.size() + 99) / 100 - 1];  // nearest rank (SEMANTICS 6.4)
        gauges.push_back(q);
      }
    } else if (kind == static_cast<int>(Kind::kCount)) {
      double sum = 0;
      for (double x : b.values) sum += x;
      json g = base;
      g["value"] = sum;
      gauges.push_back(g);
    } else {
      json g = base;
      g["value"] = b.latest;
      gauges.push_back(g);
    }
  }
  return gauges;
}

/// The value of one Prometheus sample, e.g. `drainmet_gauges_total{result="retried"}`, in
/// a text exposition; nullopt when absent.
std::optional<double> MetricValue(const std::string& exposition, std::string_view series) {
  std::size_t start = 0;
  while (start < exposition.size()) {
    std::size_t end = exposition.find('\n', start);
    if (end == std::string::npos) end = exposition.size();
    const std::string_view line(exposition.data() + start, end - start);
    if (line.size() > series.size() && line.substr(0, series.size()) == series &&
        line[series.size()] == ' ') {
      return std::strtod(std::string(line.substr(series.size() + 1)).c_str(), nullptr);
    }
    start = end + 1;
  }
  return std::nullopt;
}

/// `"`-escaped as telemetry::LogfmtValue writes a quoted value (no control bytes here).
std::string LogfmtQuoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

class RunProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    drain_token_ = config::NewToken();
    api_token_ = "librato-secret-" + config::NewToken();
    absl::StatusOr<std::unique_ptr<support::FakeLibrato>> fake = support::FakeLibrato::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
    std::string dir_template = (fs::path(::testing::TempDir()) / "drainmet-run-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
  }

  void TearDown() override {
    // Whatever happened, no secret may have reached the log (DESIGN rule 6).
    ExpectNoSecretsLogged();
    if (::testing::Test::HasFailure() && process_) {
      for (const std::string& line : process_->Lines()) std::cerr << "drainmet stderr: " << line << "\n";
    }
    process_.reset();
    fake_->Stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// The YAML config of the child: one tenant posting to the fake, the API token through
  /// api_token_env, small limits and fast pacing for the tests.
  virtual std::string ConfigYaml() const {
    // `listen` is overridden by --listen 127.0.0.1:0 (docs/cli.md).
    return absl::Substitute(R"(listen: "127.0.0.1:8080"
threads: 2
grace_seconds: 2
limits:
  max_body_bytes: 4096
outlet:
  interval_ms: 50
  retry_initial_backoff_ms: 100
  retry_max_backoff_ms: 1000
tenants:
  - id: acme
    token_hashes: ["$0"]
    output: librato
    librato:
      url: "$1"
      email: "$2"
      api_token_env: $3
)",
                            config::HashToken(drain_token_), fake_->Url(), kEmail, kApiTokenEnv);
  }

  /// Writes the config, starts `drainmet run --config FILE --listen 127.0.0.1:0 [extra]`
  /// and learns its port from the `msg="drainmet listening"` line.
  void StartDrainmet(const std::vector<std::string>& extra_args = {}) {
    const std::string config_path = (dir_ / "drainmet.yaml").string();
    {
      std::ofstream out(config_path);
      out << ConfigYaml();
      ASSERT_TRUE(out.good());
    }
    std::vector<std::string> args = {"run", "--config", config_path, "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    // The parent's environment (ASAN_OPTIONS and the like), with the API token added.
    const std::string token_var = std::string(kApiTokenEnv) + "=";
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (!std::string_view(*e).starts_with(token_var)) env.push_back(*e);
    }
    env.push_back(token_var + api_token_);

    process_ = std::make_unique<DrainmetProcess>();
    args.insert(args.begin(), kDrainmetBinary);
    const absl::Status started = process_->Start(args, env);
    ASSERT_TRUE(started.ok()) << started;
    const std::optional<std::string> listening =
        process_->WaitForLine("msg=\"drainmet listening\"", milliseconds(10000));
    ASSERT_TRUE(listening.has_value()) << "drainmet did not report listening";
    const std::string& line = *listening;
    constexpr std::string_view kListen = " listen=127.0.0.1:";
    const std::size_t at = line.find(kListen);
    ASSERT_NE(at, std::string::npos) << line;
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(at + kListen.size())));
    ASSERT_NE(port_, 0) << line;
  }

  support::Headers DrainHeaders(std::size_t frames) const {
    return {{"Content-Type", "application/logplex-1"},
            {"Logplex-Msg-Count", std::to_string(frames)},
            {"Logplex-Frame-Id", "F" + config::NewToken().substr(0, 31)},
            {"User-Agent", "Logplex/v123"},
            {"Authorization", "Basic " + absl::Base64Escape(drain_token_ + ":")}};
  }

  support::HttpReply PostDrain(const std::string& target, const std::string& body, std::size_t frames) {
    return support::HttpPost(port_, target, DrainHeaders(frames), body);
  }

  /// Polls until the fake API accepted at least `count` gauges or `timeout` passes.
  bool WaitForGauges(std::size_t count, milliseconds timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (fake_->Gauges().size() < count) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return true;
  }

  /// Polls GET /metrics until `series` has `value` (or `timeout` passes); the last value.
  std::optional<double> WaitForMetric(std::string_view series, double value, milliseconds timeout) const {
    const auto deadline = Clock::now() + timeout;
    std::optional<double> got;
    for (;;) {
      const support::HttpReply reply = support::HttpGet(port_, "/metrics");
      got = MetricValue(reply.body, series);
      if ((got && *got == value) || Clock::now() >= deadline) return got;
      std::this_thread::sleep_for(milliseconds(20));
    }
  }

  /// SIGTERM, then the exit status within `timeout` (nullopt: still running).
  std::optional<int> Terminate(milliseconds timeout) {
    process_->Signal(SIGTERM);
    return process_->WaitExit(timeout);
  }

  /// No line of the child's stderr holds any of `secrets`.
  void ExpectNoneLogged(const std::vector<std::string>& secrets) const {
    if (!process_) return;
    for (const std::string& line : process_->Lines()) {
      for (const std::string& secret : secrets) {
        EXPECT_EQ(line.find(secret), std::string::npos) << "secret logged: " << line;
      }
    }
  }

  void ExpectNoSecretsLogged() const {
    if (!process_) return;
    const std::string basic_librato = absl::Base64Escape(std::string(kEmail) + ":" + api_token_);
    const std::string basic_drain = absl::Base64Escape(drain_token_ + ":");
    for (const std::string& line : process_->Lines()) {
      EXPECT_EQ(line.find(drain_token_), std::string::npos) << "drain token logged: " << line;
      EXPECT_EQ(line.find(api_token_), std::string::npos) << "Librato API token logged: " << line;
      EXPECT_EQ(line.find("Authorization"), std::string::npos) << "Authorization header logged: " << line;
      EXPECT_EQ(line.find(basic_librato), std::string::npos) << "Librato credentials logged: " << line;
      EXPECT_EQ(line.find(basic_drain), std::string::npos) << "drain credentials logged: " << line;
    }
  }

  std::string drain_token_;
  std::string api_token_;
  std::unique_ptr<support::FakeLibrato> fake_;
  fs::path dir_;
  std::unique_ptr<DrainmetProcess> process_;
  std::uint16_t port_ = 0;
};

// measure#, count# and sample# lines at resolution=1 (SEMANTICS §4.1, §4.2, §4.7) stamped
// with the system clock reach the API once their windows close (§6.5), one gauge set per
// one-second window (§6.2, §7.1-7.3): period 1, measure_time = the second.
TEST_F(RunProcessTest, DrainAtResolution1PostsEachSecondsGauges) {
  ASSERT_NO_FATAL_FAILURE(StartDrainmet());
  // Offsets down to -1 s: the oldest window closes >= 1 s after `base` (grace 2 s).
  const std::vector<Line> lines = {
      {-1'000'000,
       "measure#db.query=12ms count#orders=2 sample#queue.depth=4",
       {{Kind::kMeasure, "db.query", "", 12, "ms"},
        {Kind::kCount, "orders", "", 2, ""},
        {Kind::kSample, "queue.depth", "", 4, ""}}},
      {-600'000,
       "measure#db.query=30ms measure#db.query=20ms count#orders=3 sample#queue.depth=7 source=worker.1",
       {{Kind::kMeasure, "db.query", "worker.1", 30, "ms"},
        {Kind::kMeasure, "db.query", "worker.1", 20, "ms"},
        {Kind::kCount, "orders", "worker.1", 3, ""},
        {Kind::kSample, "queue.depth", "worker.1", 7, ""}}},
      {-300'000,
       "sample#queue.depth=9 source=worker.1 count#orders=1 measure#db.query=5ms",
       {{Kind::kSample, "queue.depth", "worker.1", 9, ""},
        {Kind::kCount, "orders", "worker.1", 1, ""},
        {Kind::kMeasure, "db.query", "worker.1", 5, "ms"}}},
      {-1,
       "measure#db.query=8ms count#orders=4 sample#queue.depth=11 measure#db.query=40ms",
       {{Kind::kMeasure, "db.query", "", 8, "ms"},
        {Kind::kCount, "orders", "", 4, ""},
        {Kind::kSample, "queue.depth", "", 11, ""},
        {Kind::kMeasure, "db.query", "", 40, "ms"}}},
      {0,
       "measure#db.query=1.5ms count#orders=-2 sample#queue.depth=2.25 measure#db.query=100ms",
       {{Kind::kMeasure, "db.query", "", 1.5, "ms"},
        {Kind::kCount, "orders", "", -2, ""},
        {Kind::kSample, "queue.depth", "", 2.25, ""},
        {Kind::kMeasure, "db.query", "", 100, "ms"}}},
  };
  const std::int64_t base = NowUnixMicros();
  const std::string body = DrainBody(base, lines);
  const support::HttpReply reply = PostDrain("/logs?resolution=1", body, lines.size());
  ASSERT_EQ(reply.status, 204u) << reply.body << reply.error;

  const std::vector<json> want = ExpectedGauges(base, lines, 1);
  ASSERT_GE(want.size(), 12u);
  EXPECT_TRUE(WaitForGauges(want.size(), milliseconds(10000)))
      << "got " << fake_->Gauges().size() << " of " << want.size() << " gauges";
  // Stop the process: its shutdown flush sends anything left, so extra gauges show too.
  const std::optional<int> status = Terminate(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;

  const std::vector<std::string> diffs = testing::DiffGauges(want, fake_->Gauges());
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
  for (const support::RecordedRequest& request : fake_->Requests()) {
    EXPECT_EQ(request.status, 200u);
    EXPECT_EQ(request.user, kEmail);
    EXPECT_EQ(request.password, api_token_);
    EXPECT_EQ(request.Header("Content-Type").value_or("").substr(0, 16), "application/json");
  }
}

// SEMANTICS §7.5: a 500, then a 429 with Retry-After: 1, then a 200: the same body is
// sent three times, the third accepted; the wait after the 429 honours Retry-After.
TEST_F(RunProcessTest, RetriesOn5xxAnd429HonouringRetryAfter) {
  fake_->Script({{500, R"({"errors":"internal"})", std::nullopt, 0},
                 {429, R"({"errors":"slow down"})", std::string("1"), 0},
                 {200, "{}", std::nullopt, 0}});
  ASSERT_NO_FATAL_FAILURE(StartDrainmet());
  const std::vector<Line> lines = {{0, "count#retry.probe=5", {{Kind::kCount, "retry.probe", "", 5, ""}}}};
  const std::int64_t base = NowUnixMicros();
  ASSERT_EQ(PostDrain("/logs?resolution=1", DrainBody(base, lines), 1).status, 204u);

  ASSERT_TRUE(fake_->WaitForRequests(3, milliseconds(12000))) << fake_->Requests().size() << " requests";
  const std::vector<support::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].status, 500u);
  EXPECT_EQ(requests[1].status, 429u);
  EXPECT_EQ(requests[2].status, 200u);
  EXPECT_EQ(requests[1].body, requests[0].body);
  EXPECT_EQ(requests[2].body, requests[0].body);
  EXPECT_GE(requests[2].received - requests[1].received, milliseconds(1000)) << "Retry-After: 1 not honoured";
  const std::vector<std::string> diffs = testing::DiffGauges(ExpectedGauges(base, lines, 1), fake_->Gauges());
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);

  EXPECT_EQ(WaitForMetric(R"(drainmet_output_requests_total{output="librato",result="2xx"})", 1,
                          milliseconds(5000)),
            1.0);
  const std::string metrics = support::HttpGet(port_, "/metrics").body;
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_output_requests_total{output="librato",result="5xx"})"), 1.0);
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_output_requests_total{output="librato",result="429"})"), 1.0);
  // One gauge, sent again twice: `retried` counts gauges per repeated send (SEMANTICS 8).
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_gauges_total{result="retried"})"), 2.0);
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_gauges_total{result="posted"})"), 1.0);
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_gauges_total{result="expired"})"), 0.0);
}

// SEMANTICS §7.5: another 4xx is final: the API's body is logged at level=error, the
// gauges are counted `rejected` and the body is not sent again.
TEST_F(RunProcessTest, Rejected400IsLoggedAndNotRetried) {
  const std::string error_body = R"({"errors":{"params":{"name":["is not present"]}}})";
  fake_->Script({{400, error_body, std::nullopt, 0}});
  ASSERT_NO_FATAL_FAILURE(StartDrainmet());
  const std::vector<Line> lines = {{0, "count#reject.probe=1", {{Kind::kCount, "reject.probe", "", 1, ""}}}};
  ASSERT_EQ(PostDrain("/logs?resolution=1", DrainBody(NowUnixMicros(), lines), 1).status, 204u);

  ASSERT_TRUE(fake_->WaitForRequests(1, milliseconds(10000)));
  const std::string logged = process_
                                 ->WaitForLine(
                                     [&](const std::string& l) {
                                       return l.find("level=error") != std::string::npos &&
                                              l.find(LogfmtQuoted(error_body)) != std::string::npos;
                                     },
                                     milliseconds(5000))
                                 .value_or("");
  EXPECT_FALSE(logged.empty()) << "the API's error body is logged at level=error";
  EXPECT_NE(logged.find("status=400"), std::string::npos) << logged;
  // A retry would come within ~110 ms (backoff 100 ms with jitter) plus one 50 ms pass.
  EXPECT_FALSE(fake_->WaitForRequests(2, milliseconds(1000))) << "a 400 must not be retried";
  EXPECT_EQ(fake_->Requests().size(), 1u);

  EXPECT_EQ(WaitForMetric(R"(drainmet_gauges_total{result="rejected"})", 1, milliseconds(5000)), 1.0);
  const std::string metrics = support::HttpGet(port_, "/metrics").body;
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_output_requests_total{output="librato",result="4xx"})"), 1.0);
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_gauges_total{result="retried"})"), 0.0);
  EXPECT_EQ(MetricValue(metrics, R"(drainmet_gauges_total{result="posted"})"), 0.0);
}

// The answers of the drain endpoint (FORMATS §1.6, SEMANTICS §4.7) and of the health and
// metrics endpoints.
TEST_F(RunProcessTest, HttpAnswers) {
  ASSERT_NO_FATAL_FAILURE(StartDrainmet());
  const std::string body = DrainBody(NowUnixMicros(), {{0, "count#http.probe=1", {}}});

  // Wrong method on the drain path, and on a GET-only path.
  support::Headers authorized = DrainHeaders(1);
  {
    auto connection = support::HttpConnection::Open(port_);
    ASSERT_TRUE(connection.ok()) << connection.status();
    const support::HttpReply reply = (*connection)->Send("GET", "/logs", authorized, "");
    EXPECT_EQ(reply.status, 405u) << reply.body << reply.error;
    EXPECT_EQ(reply.Header("Allow").value_or(""), "POST");
  }
  {
    const support::HttpReply reply = support::HttpPost(port_, "/metrics", {}, "x");
    EXPECT_EQ(reply.status, 405u) << reply.body << reply.error;
  }

  // No credentials, wrong token: 401 with a Basic challenge.
  {
    support::Headers anonymous = authorized;
    std::erase_if(anonymous, [](const auto& h) { return h.first == "Authorization"; });
    const support::HttpReply reply = support::HttpPost(port_, "/logs", anonymous, body);
    EXPECT_EQ(reply.status, 401u) << reply.body << reply.error;
    EXPECT_EQ(reply.Header("WWW-Authenticate").value_or("").substr(0, 5), "Basic");
  }
  {
    support::Headers wrong = authorized;
    for (auto& [name, value] : wrong) {
      if (name == "Authorization") value = "Basic " + absl::Base64Escape(config::NewToken() + ":");
    }
    const support::HttpReply reply = support::HttpPost(port_, "/logs", wrong, body);
    EXPECT_EQ(reply.status, 401u) << reply.body << reply.error;
  }

  // A body over limits.max_body_bytes (4096): 413.
  {
    std::string big;
    while (big.size() <= 5000) big += body;
    const support::HttpReply reply = support::HttpPost(port_, "/logs", authorized, big);
    EXPECT_EQ(reply.status, 413u) << reply.body << reply.error;
  }

  // A resolution outside SEMANTICS §4.7's list: 400 with a reason.
  {
    const support::HttpReply reply = support::HttpPost(port_, "/logs?resolution=7", authorized, body);
    EXPECT_EQ(reply.status, 400u) << reply.body << reply.error;
    EXPECT_NE(reply.body.find("resolution"), std::string::npos) << reply.body;
  }

  // A good drain: 204.
  EXPECT_EQ(support::HttpPost(port_, "/logs?resolution=60", authorized, body).status, 204u);

  EXPECT_EQ(support::HttpGet(port_, "/healthz").status, 200u);
  EXPECT_EQ(support::HttpGet(port_, "/readyz").status, 200u);
  EXPECT_EQ(support::HttpGet(port_, "/nowhere").status, 404u);
  const support::HttpReply metrics = support::HttpGet(port_, "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_EQ(metrics.Header("Content-Type").value_or("").substr(0, 10), "text/plain");
  EXPECT_EQ(MetricValue(metrics.body, "drainmet_frames_total"), 1.0) << metrics.body;
}

// SIGTERM: the process stops accepting, flushes the windows still open (here a 60 s
// window that would close only later) to the API, and exits 0 (docs/operations.md).
TEST_F(RunProcessTest, SigtermFlushesOpenWindowsAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(StartDrainmet());
  const std::vector<Line> lines = {
      {0,
       "measure#shutdown.latency=5ms count#shutdown.events=2 sample#shutdown.level=3 source=web.1",
       {{Kind::kMeasure, "shutdown.latency", "web.1", 5, "ms"},
        {Kind::kCount, "shutdown.events", "web.1", 2, ""},
        {Kind::kSample, "shutdown.level", "web.1", 3, ""}}},
      {0, "measure#shutdown.latency=7ms", {{Kind::kMeasure, "shutdown.latency", "", 7, "ms"}}},
  };
  const std::int64_t base = NowUnixMicros();
  ASSERT_EQ(PostDrain("/logs?resolution=60", DrainBody(base, lines), lines.size()).status, 204u);
  EXPECT_TRUE(fake_->Requests().empty()) << "the 60 s window is still open";

  const auto signalled = Clock::now();
  const std::optional<int> status = Terminate(milliseconds(10000));
  ASSERT_TRUE(status.has_value()) << "still running 10 s after SIGTERM";
  EXPECT_LT(Clock::now() - signalled, milliseconds(5000));
  EXPECT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);

  // Checked at once: the gauges arrived before the process exited.
  const std::vector<std::string> diffs =
      testing::DiffGauges(ExpectedGauges(base, lines, 60), fake_->Gauges());
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
  const std::vector<std::string> stderr_lines = process_->Lines();
  EXPECT_TRUE(std::any_of(stderr_lines.begin(), stderr_lines.end(), [](const std::string& l) {
    return l.find("signal=SIGTERM") != std::string::npos;
  }));
}

// DESIGN rule 6: over a run with every kind of event logged (debug level, a refused
// token, a drain, a rejected POST, the shutdown), stderr never holds the drain token, the
// Librato API token, or an Authorization header. (TearDown checks this after every test.)
TEST_F(RunProcessTest, SecretsNeverReachTheLog) {
  fake_->Script({{500, "{}", std::nullopt, 0}, {422, R"({"errors":"bad"})", std::nullopt, 0}});
  ASSERT_NO_FATAL_FAILURE(StartDrainmet({"--log-level", "debug"}));
  support::Headers wrong = DrainHeaders(1);
  for (auto& [name, value] : wrong) {
    if (name == "Authorization") value = "Basic " + absl::Base64Escape("acme:" + config::NewToken());
  }
  const std::string body = DrainBody(NowUnixMicros(), {{0, "count#secret.probe=1 token=abc", {}}});
  EXPECT_EQ(support::HttpPost(port_, "/logs?resolution=1", wrong, body).status, 401u);
  EXPECT_EQ(PostDrain("/logs?resolution=1", body, 1).status, 204u);
  ASSERT_TRUE(fake_->WaitForRequests(2, milliseconds(10000)));
  EXPECT_TRUE(process_->WaitForLine("status=422", milliseconds(5000)).has_value());
  // Nor any metric's name or label.
  const support::HttpReply metrics = support::HttpGet(port_, "/metrics");
  ASSERT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("drainmet_http_requests_total"), std::string::npos);
  for (const std::string& secret : {drain_token_, api_token_, absl::Base64Escape(drain_token_ + ":"),
                                    absl::Base64Escape(std::string(kEmail) + ":" + api_token_)}) {
    EXPECT_EQ(metrics.body.find(secret), std::string::npos) << "secret in /metrics";
  }
  EXPECT_EQ(metrics.body.find("Authorization"), std::string::npos);
  const std::optional<int> status = Terminate(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
  EXPECT_GT(process_->Lines().size(), 3u);
  ExpectNoSecretsLogged();
}

// Issue "Hostile input" (Security): a token maps to one tenant. Two tenants, each with its
// own Librato account (its own fake API): whatever a request holding acme's token says in
// its query, headers or body, its points are acme's and are posted with acme's
// credentials only; globex's account receives exactly what globex's own token sent.
class TenantIsolationTest : public RunProcessTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(RunProcessTest::SetUp());
    globex_token_ = config::NewToken();
    globex_api_token_ = "globex-secret-" + config::NewToken();
    absl::StatusOr<std::unique_ptr<support::FakeLibrato>> fake = support::FakeLibrato::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    globex_fake_ = *std::move(fake);
  }

  void TearDown() override {
    ExpectNoneLogged({globex_token_, globex_api_token_,
                      absl::Base64Escape(std::string(kGlobexEmail) + ":" + globex_api_token_)});
    RunProcessTest::TearDown();
    globex_fake_->Stop();
  }

  std::string ConfigYaml() const override {
    return RunProcessTest::ConfigYaml() + absl::Substitute(R"(  - id: globex
    token_hashes: ["$0"]
    output: librato
    librato:
      url: "$1"
      email: "$2"
      api_token: "$3"
)",
                                                           config::HashToken(globex_token_),
                                                           globex_fake_->Url(), kGlobexEmail,
                                                           globex_api_token_);
  }

  /// One frame with the given HOSTNAME and APP-NAME (RFC 5424 §6), stamped now.
  static std::string Frame(std::string_view host, std::string_view app, std::string_view message) {
    const std::string msg = "<190>1 " + Rfc3339Micros(NowUnixMicros()) + " " + std::string(host) + " " +
                            std::string(app) + " web.1 - " + std::string(message) + "\n";
    return std::to_string(msg.size()) + " " + msg;
  }

  /// The names of the gauges `fake` accepted.
  static std::set<std::string> Names(const support::FakeLibrato& fake) {
    std::set<std::string> names;
    for (const json& g : fake.Gauges()) names.insert(g.value("name", ""));
    return names;
  }

  static constexpr char kGlobexEmail[] = "ops@globex.example";
  std::string globex_token_;
  std::string globex_api_token_;
  std::unique_ptr<support::FakeLibrato> globex_fake_;
};

TEST_F(TenantIsolationTest, NoRequestReachesAnotherTenantsSeriesOrCredentials) {
  ASSERT_NO_FATAL_FAILURE(StartDrainmet());
  const std::string acme_basic = "Basic " + absl::Base64Escape(drain_token_ + ":");
  struct Attempt {
    std::string name;  // the count it posts: attack.<name>
    std::string target;
    support::Headers extra;          // added to the drain headers
    std::string authorization = "";  // replaces acme's Basic header when not empty
    std::string host = "host";       // the frames' HOSTNAME
    std::string app = "app";         // and APP-NAME
    std::string words = "";          // more logfmt pairs on the line
  };
  const std::vector<Attempt> attempts = {
      {"query", "/logs?resolution=1&tenant=globex&user=globex&token=globex&auth=globex", {}, ""},
      {"headers",
       "/logs?resolution=1",
       {{"X-Tenant", "globex"}, {"Logplex-Drain-Token", "d.globex"}, {"X-Forwarded-User", "globex"}},
       ""},
      // The tenant-and-token URL form naming the other tenant with acme's token.
      {"user", "/logs?resolution=1", {}, "Basic " + absl::Base64Escape("globex:" + drain_token_)},
      // A second Authorization header with made-up credentials of the other tenant.
      {"second_auth",
       "/logs?resolution=1",
       {{"Authorization", "Basic " + absl::Base64Escape("globex:" + config::NewToken())}},
       ""},
      {"bearer", "/logs?resolution=1&tenant=globex", {}, "Bearer " + drain_token_},
      {"body", "/logs?resolution=1", {}, "", "d.globex", "globex", "tenant=globex user=globex source=globex"},
      {"prefix", "/logs?resolution=1&prefix=globex&source-prefix=globex", {}, ""},
  };
  std::set<std::string> accepted;  // acme's gauge names that must arrive
  for (const Attempt& a : attempts) {
    support::Headers headers = DrainHeaders(1);
    for (auto& [name, value] : headers) {
      if (name == "Authorization" && !a.authorization.empty()) value = a.authorization;
    }
    headers.insert(headers.end(), a.extra.begin(), a.extra.end());
    const std::string body = Frame(a.host, a.app, "count#attack." + a.name + "=1 " + a.words);
    const support::HttpReply reply = support::HttpPost(port_, a.target, headers, body);
    // Refused (401) or taken as acme's: never anything else.
    EXPECT_TRUE(reply.status == 204 || reply.status == 401) << a.name << ": " << reply.status;
    if (reply.status == 204)
      accepted.insert((a.name == "prefix" ? "globex." : "") + std::string("attack.") + a.name);
  }
  EXPECT_TRUE(accepted.contains("attack.query"));
  EXPECT_TRUE(accepted.contains("attack.headers"));
  EXPECT_TRUE(accepted.contains("attack.body"));
  // globex's own drain, with its own token.
  support::Headers globex = DrainHeaders(1);
  for (auto& [name, value] : globex) {
    if (name == "Authorization") value = "Basic " + absl::Base64Escape(globex_token_ + ":");
  }
  ASSERT_EQ(support::HttpPost(port_, "/logs?resolution=1", globex, Frame("host", "app", "count#globex.own=1"))
                .status,
            204u);

  // Windows of 1 s, grace 2 s: everything is posted within a few seconds.
  const auto deadline = Clock::now() + milliseconds(15000);
  while (Clock::now() < deadline &&
         (Names(*fake_).size() < accepted.size() || Names(*globex_fake_).empty())) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  std::this_thread::sleep_for(milliseconds(1500));  // anything posted late would show now
  EXPECT_EQ(Names(*fake_), accepted);
  EXPECT_EQ(Names(*globex_fake_), std::set<std::string>{"globex.own"});
  for (const support::RecordedRequest& r : fake_->Requests()) {
    EXPECT_EQ(r.user, kEmail);
    EXPECT_EQ(r.password, api_token_) << "acme's gauges posted with other credentials";
  }
  for (const support::RecordedRequest& r : globex_fake_->Requests()) {
    EXPECT_EQ(r.user, kGlobexEmail);
    EXPECT_EQ(r.password, globex_api_token_);
  }
  EXPECT_FALSE(globex_fake_->Requests().empty());
}

// Issue "Hostile input" (Slow clients): 1,000 connections that send half a header and then
// nothing (slowloris) do not stop the service answering others at once, and each is closed
// once limits.read_timeout_seconds has passed.
class SlowClientTest : public RunProcessTest {
 protected:
  std::string ConfigYaml() const override {
    std::string yaml = RunProcessTest::ConfigYaml();
    const std::string limits = "limits:\n";
    yaml.insert(yaml.find(limits) + limits.size(), "  read_timeout_seconds: 2\n");
    return yaml;
  }

  /// A connected TCP socket to the service, or -1.
  int Connect() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port_);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
};

TEST_F(SlowClientTest, ThousandSlowlorisConnectionsDoNotStopOthersAndAreClosed) {
  constexpr int kSlow = 1000;
  // Both ends of 1,000 connections: this process and the child (which inherits the limit)
  // each need more than 1,000 descriptors.
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  ASSERT_GE(files.rlim_max, rlim_t{2 * kSlow}) << "the hard limit of open files is too low for this test";
  if (files.rlim_cur < rlim_t{2 * kSlow}) {
    files.rlim_cur = std::min<rlim_t>(files.rlim_max, 4 * kSlow);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &files), 0);
  }
  ASSERT_NO_FATAL_FAILURE(StartDrainmet());
  std::vector<int> slow;
  const std::string half = "POST /logs HTTP/1.1\r\nHost: drainmet\r\nContent-Type: application/logplex-1\r\n";
  for (int i = 0; i < kSlow; ++i) {
    const int fd = Connect();
    ASSERT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
    ASSERT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
    slow.push_back(fd);
  }
  const auto opened = Clock::now();
  // Meanwhile a drain and a scrape are answered at once.
  const std::string body = DrainBody(NowUnixMicros(), {{0, "count#served=1", {}}});
  const auto sent = Clock::now();
  EXPECT_EQ(PostDrain("/logs?resolution=1", body, 1).status, 204u);
  EXPECT_EQ(support::HttpGet(port_, "/metrics").status, 200u);
  EXPECT_LT(Clock::now() - sent, milliseconds(1000));

  // Each slow connection is closed by the service (EOF or reset) after the read timeout.
  int closed = 0;
  const auto deadline = opened + milliseconds(8000);
  std::vector<bool> done(slow.size(), false);
  while (closed < kSlow && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < slow.size(); ++i) {
      if (done[i]) continue;
      fds.push_back(pollfd{slow[i], POLLIN, 0});
      index.push_back(i);
    }
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      char byte;
      const ssize_t n = ::recv(fds[k].fd, &byte, 1, MSG_DONTWAIT);
      if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
        done[index[k]] = true;
        ++closed;
      }
    }
  }
  const auto elapsed = Clock::now() - opened;
  EXPECT_EQ(closed, kSlow);
  EXPECT_GE(elapsed, milliseconds(1500)) << "closed before the read timeout";
  for (int fd : slow) ::close(fd);
  ASSERT_TRUE(WaitForGauges(1, milliseconds(10000)));
  EXPECT_EQ(fake_->Gauges()[0].value("name", ""), "served");
}

}  // namespace
/// The environment of this process without DRAINMET_TOKEN (the embedded default then
/// generates a token).
std::vector<std::string> EnvironmentWithoutDrainToken() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!std::string_view(*e).starts_with("DRAINMET_TOKEN=")) env.push_back(*e);
  }
  return env;
}

// The embedded default's generated token is printed once the service has started: a
// start-up error prints none (a token nobody can use), a good start prints it once.
TEST(EmbeddedDefaultTokenTest, PrintedOnlyAfterASuccessfulStart) {
  DrainmetProcess bad;
  ASSERT_TRUE(
      bad.Start({kDrainmetBinary, "run", "--listen", "127.0.0.1:99999"}, EnvironmentWithoutDrainToken())
          .ok());
  EXPECT_EQ(bad.WaitExitCode(milliseconds(10000)), 1);
  const std::string bad_log = bad.Stderr();
  EXPECT_NE(bad_log.find("listen: port must be a decimal number"), std::string::npos) << bad_log;
  EXPECT_EQ(bad_log.find("generated a drain token"), std::string::npos) << bad_log;

  DrainmetProcess good;
  ASSERT_TRUE(
      good.Start({kDrainmetBinary, "run", "--listen", "127.0.0.1:0"}, EnvironmentWithoutDrainToken()).ok());
  const std::optional<std::string> token_line =
      good.WaitForLine("generated a drain token", milliseconds(10000));
  ASSERT_TRUE(token_line.has_value()) << good.Stderr();
  const std::size_t at = token_line->find(" token=");
  ASSERT_NE(at, std::string::npos) << *token_line;
  EXPECT_GE(token_line->size() - at - 7, 32u) << *token_line;  // a real token follows
  good.Signal(SIGTERM);
  EXPECT_EQ(good.WaitExitCode(milliseconds(10000)), 0);
  const std::string good_log = good.Stderr();
  // Printed once, after the listener is up.
  EXPECT_EQ(good_log.find("generated a drain token"), good_log.rfind("generated a drain token"));
  EXPECT_LT(good_log.find("msg=\"drainmet listening\""), good_log.find("generated a drain token"))
      << good_log;
}

}  // namespace drainmet::standalone
