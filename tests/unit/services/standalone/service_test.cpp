// standalone::Service: start-up failures are errors, not crashes; the non-drain endpoints.

#include "services/standalone/service.h"

#include "common/config/auth.h"
#include "gtest/gtest.h"
#include "tests/support/http_client.h"

namespace drainmet::standalone {
namespace {

config::Config OneTenant(std::string listen = "127.0.0.1:0") {
  config::Config c;
  c.listen = std::move(listen);
  c.threads = 1;
  config::Tenant t;
  t.id = "default";
  t.token_hashes.push_back(config::HashToken("tok"));
  t.output = config::OutputKind::kStdout;
  c.tenants.push_back(t);
  return c;
}

TEST(ServiceTest, BusyPortIsUnavailableNotACrash) {
  auto first = Service::Start(OneTenant(), base::SystemClock::Get());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      Service::Start(OneTenant("127.0.0.1:" + std::to_string((*first)->port())), base::SystemClock::Get());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST(ServiceTest, InvalidConfigIsInvalidArgument) {
  config::Config c = OneTenant();
  c.tenants.clear();
  auto service = Service::Start(c, base::SystemClock::Get());
  ASSERT_FALSE(service.ok());
  EXPECT_EQ(service.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ServiceTest, HealthReadinessMetricsAndUnknownPaths) {
  auto service = Service::Start(OneTenant(), base::SystemClock::Get());
  ASSERT_TRUE(service.ok()) << service.status();
  const std::uint16_t port = (*service)->port();
  EXPECT_EQ(support::HttpGet(port, "/healthz").status, 200u);
  EXPECT_EQ(support::HttpGet(port, "/readyz").status, 200u);
  const support::HttpReply metrics = support::HttpGet(port, "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("drainmet_frames_total"), std::string::npos);
  EXPECT_NE(metrics.body.find("drainmet_http_requests_total{code=\"200\"}"), std::string::npos);
  EXPECT_EQ(support::HttpGet(port, "/nope").status, 404u);
  EXPECT_EQ(support::HttpPost(port, "/healthz", {}, "").status, 405u);
  EXPECT_EQ(support::HttpGet(port, "/logs").status, 405u);
  (*service)->Stop();
  (*service)->Stop();  // idempotent
}

}  // namespace
}  // namespace drainmet::standalone
