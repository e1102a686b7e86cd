// Live runs of the failure cases of tests/fixtures/cases (README.md there: "Running a
// case", Live): each case's body is POSTed over HTTP to an in-process standalone::Service
// whose clock is a FakeClock pinned at the case's `clock`; the clock is then moved past
// every window's close (SEMANTICS §6.5) and what reached a fake Librato API (FORMATS §5.1)
// is compared with the case's `expect`: the drain answers, the gauges (SEMANTICS §7), the
// counters (SEMANTICS §8), the names and sources that must never be posted, and the shape
// of every request body (SEMANTICS §7.4; C10's and C19's rules).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/base/clock.h"
#include "common/config/auth.h"
#include "common/config/config.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/standalone/service.h"
#include "tests/golden/gauge_compare.h"
#include "tests/support/fake_librato.h"
#include "tests/support/http_client.h"

namespace drainmet::standalone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kCasesDir = fs::path(DRAINMET_FIXTURES_DIR) / "cases";

/// Every case of tests/fixtures/cases, by id. A case added there without a line here fails
/// CasesLive.EveryFixtureCaseRunsLive, so no case is silently left out.
const std::vector<std::string> kCaseIds = {"C01", "C03", "C04", "C05", "C06", "C07", "C09",
                                           "C10", "C11", "C13", "C15", "C16", "C17", "C19"};

/// Moves the fake clock past every window's close: the cases' windows close at most
/// 1 h + 5 s after `clock` (resolution up to 3600 s, grace 5 s; SEMANTICS §4.7, §6.5).
constexpr std::int64_t kPastEveryClose = 2 * 3600 * base::kNanosPerSecond;
/// Real time allowed for the outlet to post what closed.
constexpr auto kEmitTimeout = std::chrono::seconds(5);

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The Authorization header of a drain URL https://TOKEN@host/logs (FORMATS §1.2): Basic
/// with the token as user and an empty password.
std::string DrainAuthorization(std::string_view token) {
  return "Basic " + absl::Base64Escape(std::string(token) + ":");
}

/// One tenant of the test config, with the secrets the test needs to check what is sent.
struct TestTenant {
  std::string id;
  std::string drain_token;
  std::string email;
  std::string api_token;
};

TestTenant MakeTenant(const std::string& id) {
  return TestTenant{id, "drain-token-of-" + id, id + "@example.com", "librato-api-token-of-" + id};
}

/// The §8 counter named `name` (field names of telemetry::Counters); nullopt if unknown.
std::optional<std::uint64_t> CounterNamed(const telemetry::Counters& c, std::string_view name) {
  static const std::pair<std::string_view, std::uint64_t telemetry::Counters::*> kFields[] = {
      {"frames", &telemetry::Counters::frames},
      {"bad_frame", &telemetry::Counters::bad_frame},
      {"bad_timestamp", &telemetry::Counters::bad_timestamp},
      {"bad_value", &telemetry::Counters::bad_value},
      {"bad_name", &telemetry::Counters::bad_name},
      {"name_conflict", &telemetry::Counters::name_conflict},
      {"points", &telemetry::Counters::points},
      {"late", &telemetry::Counters::late},
      {"future", &telemetry::Counters::future},
      {"series_limit", &telemetry::Counters::series_limit},
      {"duplicate_request", &telemetry::Counters::duplicate_request},
      {"posted", &telemetry::Counters::posted},
      {"rejected", &telemetry::Counters::rejected},
      {"expired", &telemetry::Counters::expired},
      {"retried", &telemetry::Counters::retried},
  };
  for (const auto& [field, member] : kFields) {
    if (field == name) return c.*member;
  }
  return std::nullopt;
}

/// Adds to `problems` what makes `value` unfit for the API: a null anywhere, or a number
/// that is not finite (C19's rule: valid JSON without NaN, Infinity or null numbers).
void CheckNoNullOrNonFinite(const json& value, const std::string& path, std::vector<std::string>& problems) {
  if (value.is_null()) {
    problems.push_back(path + " is null");
  } else if (value.is_number_float() && !std::isfinite(value.get<double>())) {
    problems.push_back(path + " is not finite");
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) CheckNoNullOrNonFinite(item, path + "." + key, problems);
  } else if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      CheckNoNullOrNonFinite(value[i], path + "[" + std::to_string(i) + "]", problems);
    }
  }
}

/// A Service on a FakeClock, draining into a FakeLibrato; one per test.
class LiveTest : public ::testing::Test {
 protected:
  /// Starts the fake API and the service with `tenants`, all posting to the fake.
  void StartService(const std::string& clock_rfc3339, std::vector<TestTenant> tenants) {
    const std::optional<std::int64_t> start = logplex::ParseRfc3339Nanos(clock_rfc3339);
    ASSERT_TRUE(start.has_value()) << "bad clock in case.json: " << clock_rfc3339;
    clock_.SetUnixNanos(*start);
    tenants_ = std::move(tenants);

    absl::StatusOr<std::unique_ptr<support::FakeLibrato>> fake = support::FakeLibrato::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);

    config::Config c;
    c.listen = "127.0.0.1:0";
    c.threads = 2;
    c.outlet.interval_ms = 20;
    c.outlet.retry_initial_backoff_ms = 10;
    c.outlet.retry_max_backoff_ms = 100;
    for (const TestTenant& t : tenants_) {
      config::Tenant tenant;
      tenant.id = t.id;
      tenant.token_hashes.push_back(config::HashToken(t.drain_token));
      tenant.output = config::OutputKind::kLibrato;
      tenant.librato.url = fake_->Url();
      tenant.librato.email = t.email;
      tenant.librato.api_token = t.api_token;
      c.tenants.push_back(std::move(tenant));
    }
    ServiceOptions options;
    options.shutdown_timeout_ms = 3000;
    absl::StatusOr<std::unique_ptr<Service>> service = Service::Start(std::move(c), clock_, options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
  }

  /// POSTs a drain body to /logs?`query` as `tenant`, with `headers` (from case.json).
  support::HttpReply PostDrain(const TestTenant& tenant, const std::string& query,
                               const support::Headers& headers, const std::string& body) {
    support::Headers all = headers;
    all.emplace_back("Authorization", DrainAuthorization(tenant.drain_token));
    const std::string target = query.empty() ? std::string("/logs") : "/logs?" + query;
    return support::HttpPost(service_->port(), target, all, body);
  }

  /// Moves the clock past every window's close, waits (real time, bounded) until the fake
  /// API has received at least `expected_gauges` gauges, then stops the service (its
  /// shutdown flush sends whatever else there is, so nothing can arrive afterwards).
  void CloseWindowsAndStop(std::size_t expected_gauges) {
    clock_.AdvanceNanos(kPastEveryClose);
    const auto deadline = std::chrono::steady_clock::now() + kEmitTimeout;
    while (fake_->Gauges().size() < expected_gauges && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    gauges_before_stop_ = fake_->Gauges().size();
    service_->Stop();
  }

  /// Gauges posted with `tenant`'s credentials (answered 2xx).
  std::vector<json> GaugesOf(const TestTenant& tenant) const {
    std::vector<json> gauges;
    for (const support::RecordedRequest& request : fake_->Requests()) {
      if (request.user != tenant.email || request.status < 200 || request.status > 299) continue;
      const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
      if (!body.is_object() || !body.contains("gauges")) continue;
      for (const json& g : body["gauges"]) gauges.push_back(g);
    }
    return gauges;
  }

  /// SEMANTICS §7.4 and FORMATS §5.1 on every request the fake received: POST
  /// /v1/metrics, JSON content type, Basic auth of one of our tenants, a body that is valid
  /// JSON holding only a "gauges" array of at most 300 objects, without null or non-finite
  /// numbers (C10: never "counters"; C19: never NaN, Infinity or null).
  void ExpectWellFormedRequests() const {
    for (const support::RecordedRequest& request : fake_->Requests()) {
      SCOPED_TRACE("Librato request body: " + request.body);
      EXPECT_EQ(request.method, "POST");
      EXPECT_EQ(request.target, "/v1/metrics");
      const std::optional<std::string_view> content_type = request.Header("Content-Type");
      ASSERT_TRUE(content_type.has_value());
      EXPECT_EQ(content_type->substr(0, 16), "application/json");
      EXPECT_TRUE(request.basic_auth) << "HTTP Basic auth with the tenant's credentials (SEMANTICS 7.4)";
      const auto tenant = std::find_if(tenants_.begin(), tenants_.end(),
                                       [&](const TestTenant& t) { return t.email == request.user; });
      ASSERT_NE(tenant, tenants_.end()) << "posted as an unknown user: " << request.user;
      EXPECT_EQ(request.password, tenant->api_token);

      const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
      ASSERT_FALSE(body.is_discarded()) << "not valid JSON (RFC 8259)";
      ASSERT_TRUE(body.is_object());
      EXPECT_EQ(body.size(), 1u) << "only a \"gauges\" key: never \"counters\" (C10)";
      ASSERT_TRUE(body.contains("gauges"));
      ASSERT_TRUE(body["gauges"].is_array());
      EXPECT_GE(body["gauges"].size(), 1u);
      EXPECT_LE(body["gauges"].size(), 300u) << "at most 300 gauges per request (SEMANTICS 7.4)";
      for (const json& g : body["gauges"]) EXPECT_TRUE(g.is_object()) << g.dump();
      std::vector<std::string> problems;
      CheckNoNullOrNonFinite(body, "body", problems);
      EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
    }
  }

  void TearDown() override {
    if (service_) service_->Stop();
    service_.reset();
    if (fake_) fake_->Stop();
  }

  base::FakeClock clock_;
  std::vector<TestTenant> tenants_;
  std::unique_ptr<support::FakeLibrato> fake_;
  std::unique_ptr<Service> service_;
  std::size_t gauges_before_stop_ = 0;
};

/// One fixture case, read from disk.
struct Case {
  std::string id;
  json spec;         // case.json
  std::string body;  // body.logplex, as bytes
  support::Headers headers;
};

Case LoadCase(const std::string& id) {
  Case c;
  c.id = id;
  const fs::path dir = kCasesDir / id;
  c.spec = json::parse(ReadAll(dir / "case.json"));
  c.body = ReadAll(dir / "body.logplex");
  for (const auto& [name, value] : c.spec.at("headers").items())
    c.headers.emplace_back(name, value.get<std::string>());
  return c;
}

std::vector<json> ExpectedGauges(const Case& c) {
  std::vector<json> gauges;
  if (c.spec.at("expect").contains("gauges")) {
    for (const json& g : c.spec["expect"]["gauges"]) gauges.push_back(g);
  }
  return gauges;
}

TEST(CasesLive, EveryFixtureCaseRunsLive) {
  std::vector<std::string> on_disk;
  for (const fs::directory_entry& entry : fs::directory_iterator(kCasesDir)) {
    if (entry.is_directory() && fs::exists(entry.path() / "case.json")) {
      on_disk.push_back(entry.path().filename().string());
    }
  }
  std::sort(on_disk.begin(), on_disk.end());
  EXPECT_EQ(on_disk, kCaseIds) << "add every case of tests/fixtures/cases to kCaseIds";
}

class CaseLiveTest : public LiveTest, public ::testing::WithParamInterface<std::string> {};

// The whole `expect` of a case, live (README.md of the cases, "Running a case").
TEST_P(CaseLiveTest, MatchesExpectation) {
  const Case c = LoadCase(GetParam());
  SCOPED_TRACE(c.id + ": " + c.spec.value("title", ""));
  const json& expect = c.spec.at("expect");
  const TestTenant tenant = MakeTenant("test");
  ASSERT_NO_FATAL_FAILURE(StartService(c.spec.at("clock").get<std::string>(), {tenant}));

  const int repeat = c.spec.value("repeat", 1);
  const std::string status_class = expect.value("status_class", "2xx");
  for (int i = 0; i < repeat; ++i) {
    const support::HttpReply reply = PostDrain(tenant, c.spec.value("query", ""), c.headers, c.body);
    ASSERT_NE(reply.status, 0u) << reply.error;
    EXPECT_EQ(std::to_string(reply.status / 100) + "xx", status_class)
        << "POST " << i + 1 << " of " << repeat << " answered " << reply.status << ": " << reply.body;
  }

  const std::vector<json> want = ExpectedGauges(c);
  CloseWindowsAndStop(want.size());
  const std::vector<json> got = fake_->Gauges();
  const bool complete = expect.value("gauges_complete", false);
  if (complete) {
    EXPECT_EQ(gauges_before_stop_, want.size())
        << "the windows' gauges are posted once they close (SEMANTICS 6.5), "
           "not only by the shutdown flush";
  }

  // Gauges: exactly the expected ones when complete; else at least those.
  std::vector<std::string> diffs = testing::DiffGauges(want, got);
  if (!complete) {
    std::erase_if(diffs, [](const std::string& d) { return d.rfind("unexpected: ", 0) == 0; });
  }
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);

  // Counters (SEMANTICS §8): `stats` and `counters` against the service's metrics.
  const telemetry::Counters counters = service_->metrics().Snapshot();
  for (const char* group : {"stats", "counters"}) {
    if (!expect.contains(group)) continue;
    for (const auto& [name, value] : expect[group].items()) {
      const std::optional<std::uint64_t> actual = CounterNamed(counters, name);
      ASSERT_TRUE(actual.has_value()) << "unknown counter in case.json: " << name;
      EXPECT_EQ(*actual, value.get<std::uint64_t>()) << group << "." << name;
    }
  }
  EXPECT_EQ(counters.posted, got.size()) << "every gauge the fake accepted is counted as posted";
  EXPECT_EQ(counters.rejected + counters.expired + counters.retried, 0u);

  // Names and sources that must never be posted.
  for (const json& g : got) {
    const std::string name = g.value("name", "");
    const std::string source = g.value("source", "");
    for (const json& absent : expect.value("absent_names", json::array())) {
      EXPECT_NE(name, absent.get<std::string>()) << g.dump();
    }
    for (const json& absent : expect.value("absent_sources", json::array())) {
      EXPECT_NE(source, absent.get<std::string>()) << g.dump();
    }
    for (const json& part : expect.value("absent_names_containing", json::array())) {
      EXPECT_EQ(name.find(part.get<std::string>()), std::string::npos) << g.dump();
    }
    for (const json& part : expect.value("absent_sources_containing", json::array())) {
      EXPECT_EQ(source.find(part.get<std::string>()), std::string::npos) << g.dump();
    }
  }
  ExpectWellFormedRequests();
}

INSTANTIATE_TEST_SUITE_P(Cases, CaseLiveTest, ::testing::ValuesIn(kCaseIds),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// C07: Logplex redelivers a request with the same Logplex-Frame-Id; the second copy is
// answered 2xx and ignored (DESIGN rules of the road 3), so the counts are not doubled.
TEST_F(LiveTest, C07RedeliveredFrameIdIsCountedOnce) {
  const Case c = LoadCase("C07");
  const TestTenant tenant = MakeTenant("test");
  ASSERT_NO_FATAL_FAILURE(StartService(c.spec.at("clock").get<std::string>(), {tenant}));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(PostDrain(tenant, "", c.headers, c.body).status, 204u);
  }
  CloseWindowsAndStop(5);

  const telemetry::Counters counters = service_->metrics().Snapshot();
  EXPECT_EQ(counters.duplicate_request, 1u);
  EXPECT_EQ(counters.frames, 1u);
  EXPECT_EQ(counters.points, 2u);
  const std::vector<json> got = fake_->Gauges();
  const auto sent =
      std::find_if(got.begin(), got.end(), [](const json& g) { return g["name"] == "emails.sent"; });
  ASSERT_NE(sent, got.end());
  EXPECT_EQ((*sent)["value"].get<double>(), 3.0) << "never 6";
  EXPECT_TRUE(testing::DiffGauges(ExpectedGauges(c), got).empty());
}

// C07 without Logplex-Frame-Id (as C06 sends): nothing to de-duplicate by, so both
// deliveries count (SEMANTICS 7.1, 7.2): emails.sent 6, emails.render count 2.
TEST_F(LiveTest, C07WithoutFrameIdCountsBothDeliveries) {
  Case c = LoadCase("C07");
  std::erase_if(c.headers, [](const auto& h) { return h.first == "Logplex-Frame-Id"; });
  ASSERT_EQ(c.headers.size(), c.spec["headers"].size() - 1);
  const TestTenant tenant = MakeTenant("test");
  ASSERT_NO_FATAL_FAILURE(StartService(c.spec.at("clock").get<std::string>(), {tenant}));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(PostDrain(tenant, "", c.headers, c.body).status, 204u);
  }
  CloseWindowsAndStop(5);

  std::vector<json> want = ExpectedGauges(c);
  for (json& g : want) {
    if (g["name"] == "emails.sent") g["value"] = 6;
    if (g["name"] == "emails.render") {
      g["count"] = 2;
      g["sum"] = 80;
      g["sum_squares"] = 3200;
    }
  }
  const std::vector<std::string> diffs = testing::DiffGauges(want, fake_->Gauges());
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
  const telemetry::Counters counters = service_->metrics().Snapshot();
  EXPECT_EQ(counters.duplicate_request, 0u);
  EXPECT_EQ(counters.frames, 2u);
  EXPECT_EQ(counters.points, 4u);
}

// C07's frame id sent by two tenants: frame ids are remembered per tenant, so the second
// is not a duplicate; each tenant gets one delivery's gauges, with its own credentials.
TEST_F(LiveTest, C07SameFrameIdFromAnotherTenantIsNotADuplicate) {
  const Case c = LoadCase("C07");
  const TestTenant test = MakeTenant("test");
  const TestTenant other = MakeTenant("other");
  ASSERT_NO_FATAL_FAILURE(StartService(c.spec.at("clock").get<std::string>(), {test, other}));
  EXPECT_EQ(PostDrain(test, "", c.headers, c.body).status, 204u);
  EXPECT_EQ(PostDrain(other, "", c.headers, c.body).status, 204u);
  CloseWindowsAndStop(10);

  const telemetry::Counters counters = service_->metrics().Snapshot();
  EXPECT_EQ(counters.duplicate_request, 0u);
  EXPECT_EQ(counters.frames, 2u);
  EXPECT_EQ(counters.points, 4u);
  for (const TestTenant& tenant : {test, other}) {
    SCOPED_TRACE("tenant " + tenant.id);
    const std::vector<std::string> diffs = testing::DiffGauges(ExpectedGauges(c), GaugesOf(tenant));
    EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
  }
  ExpectWellFormedRequests();
}

}  // namespace
}  // namespace drainmet::standalone
