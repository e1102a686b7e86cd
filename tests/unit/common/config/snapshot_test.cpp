// Config <-> drainmet.v1.ConfigSnapshot (common/config/snapshot.h, proto/drainmet/v1/config.proto).

#include "common/config/snapshot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace drainmet::config {
namespace {

const std::string kHashA = "sha256:" + std::string(64, 'a');
const std::string kHashB = "sha256:" + std::string(64, 'b');
const std::string kHashC = "sha256:" + std::string(64, 'c');

// Every field away from its default, every output kind, several tenants and servers.
Config RichConfig() {
  Config c;
  c.listen = "[::1]:9090";
  c.threads = 7;
  c.grace_seconds = 0;
  c.retry_horizon_seconds = 1234;
  c.log_level = "warn";
  c.limits = {.max_body_bytes = 2'000'000,
              .max_header_bytes = 9000,
              .max_open_buckets = 77,
              .dedupe_window_seconds = 42,
              .dedupe_max_entries = 43,
              .read_timeout_seconds = 44,
              .future_tolerance_seconds = 45,
              .max_inflated_body_bytes = 46,
              .tenant_points_per_second = 0,  // off: carried as present (proto3 optional)
              .max_header_count = 47,
              .max_frames_per_request = 48,
              .max_line_bytes = 49,
              .max_series_per_tenant = 50,
              .auth_failures_before_delay = 51,
              .auth_failure_window_seconds = 52,
              .auth_failure_delay_ms = 53};
  c.outlet = {.interval_ms = 11,
              .connect_timeout_ms = 12,
              .request_timeout_ms = 13,
              .max_gauges_per_request = 14,
              .max_inflight_requests = 18,
              .retry_initial_backoff_ms = 15,
              .retry_max_backoff_ms = 16,
              .max_pending_retry_bytes = 19,
              .lease_ttl_ms = 17,
              .lease_renew_ms = 3,
              .seal_interval_ms = 21};
  c.receiver = {.flush_interval_ms = 250,
                .flush_delay_ms = 9,
                .max_series_in_memory = 123456,
                .watermark_interval_ms = 22,
                .watermark_ttl_ms = 23};
  c.redis = {.shards = 4096,
             .servers = {"10.0.0.1:6379", "[::1]:6380", "unix:/run/redis.sock"},
             .connect_timeout_ms = 321,
             .command_timeout_ms = 654};
  Tenant acme;
  acme.id = "acme";
  acme.token_hashes = {kHashA, kHashB};
  acme.default_resolution_seconds = 1;
  acme.librato = {.url = "http://127.0.0.1:1/v1/metrics", .email = "ops@acme.example", .api_token = "s3cret"};
  Tenant local;
  local.id = "local.dev_1";
  local.token_hashes = {kHashC};
  local.default_resolution_seconds = 3600;
  local.output = OutputKind::kStdout;
  local.librato = {.url = "", .email = "", .api_token = ""};
  Tenant quiet;
  quiet.id = "quiet";
  quiet.output = OutputKind::kStdout;
  c.tenants = {acme, local, quiet};
  c.syslog.drains = {{"d.0b2d6f5e-1c1a-4c57-9f3e-2f8e3b6a9d01", "acme", 10, "eu", "web"},
                     {"d.7c3e1b20-5d4f-4a8e-b6c2-9e1f0a3d4b52", "quiet", 0, "", ""}};
  return c;
}

TEST(SnapshotTest, RichConfigRoundTrips) {
  const Config config = RichConfig();
  ASSERT_TRUE(Validate(config).ok()) << Validate(config);
  const v1::ConfigSnapshot snapshot = ToProto(config, 42);
  EXPECT_EQ(snapshot.version(), 42u);
  absl::StatusOr<Config> back = FromProto(snapshot);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, config);
}

TEST(SnapshotTest, RoundTripsThroughTheWire) {
  const Config config = RichConfig();
  std::string bytes;
  ASSERT_TRUE(ToProto(config, 7).SerializeToString(&bytes));
  v1::ConfigSnapshot parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.version(), 7u);
  EXPECT_EQ(parsed.content_hash(), ToProto(config, 7).content_hash());
  absl::StatusOr<Config> back = FromProto(parsed);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, config);
}

TEST(SnapshotTest, DefaultConfigRoundTrips) {
  Config config;
  Tenant t;
  t.id = "t";
  t.output = OutputKind::kStdout;
  config.tenants = {t};
  absl::StatusOr<Config> back = FromProto(ToProto(config, 1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, config);
}

TEST(SnapshotTest, ToProtoFillsTheFieldsAsDocumented) {
  const v1::ConfigSnapshot s = ToProto(RichConfig(), 9);
  EXPECT_EQ(s.listen(), "[::1]:9090");
  EXPECT_EQ(s.threads(), 7);
  EXPECT_EQ(s.grace_seconds(), 0);
  EXPECT_EQ(s.retry_horizon_seconds(), 1234);
  EXPECT_EQ(s.log_level(), "warn");
  EXPECT_EQ(s.limits().max_header_bytes(), 9000u);
  EXPECT_EQ(s.outlet().lease_ttl_ms(), 17);
  EXPECT_EQ(s.outlet().lease_renew_ms(), 3);
  EXPECT_EQ(s.outlet().max_inflight_requests(), 18);
  EXPECT_EQ(s.receiver().flush_interval_ms(), 250);
  EXPECT_EQ(s.receiver().max_series_in_memory(), 123456u);
  EXPECT_EQ(s.receiver().flush_delay_ms(), 9);
  EXPECT_EQ(s.redis().shards(), 4096u);
  EXPECT_THAT(s.redis().servers(),
              testing::ElementsAre("10.0.0.1:6379", "[::1]:6380", "unix:/run/redis.sock"));
  EXPECT_EQ(s.redis().connect_timeout_ms(), 321);
  EXPECT_EQ(s.redis().command_timeout_ms(), 654);
  ASSERT_EQ(s.tenants_size(), 3);
  EXPECT_EQ(s.tenants(0).id(), "acme");
  EXPECT_THAT(s.tenants(0).token_hashes(), testing::ElementsAre(kHashA, kHashB));
  EXPECT_EQ(s.tenants(0).default_resolution_seconds(), 1);
  EXPECT_EQ(s.tenants(0).output(), v1::OUTPUT_KIND_LIBRATO);
  EXPECT_EQ(s.tenants(0).librato().email(), "ops@acme.example");
  EXPECT_EQ(s.tenants(0).librato().api_token(), "s3cret");
  EXPECT_EQ(s.tenants(1).output(), v1::OUTPUT_KIND_STDOUT);
}

TEST(ContentHashTest, IgnoresVersionAndFollowsContent) {
  const Config config = RichConfig();
  const v1::ConfigSnapshot one = ToProto(config, 1);
  const v1::ConfigSnapshot two = ToProto(config, 2);
  EXPECT_THAT(one.content_hash(), testing::MatchesRegex("sha256:[0-9a-f]{64}"));
  EXPECT_EQ(one.content_hash(), two.content_hash());
  EXPECT_EQ(ContentHash(one), one.content_hash());

  Config revoked = config;
  revoked.tenants[0].token_hashes = {kHashA};  // kHashB revoked
  EXPECT_NE(ToProto(revoked, 1).content_hash(), one.content_hash());
  Config rotated = config;
  rotated.tenants[0].librato.api_token = "new-secret";
  EXPECT_NE(ToProto(rotated, 1).content_hash(), one.content_hash());
}

// An absent section is that section's defaults (config.proto: "absent: defaults").
TEST(FromProtoTest, AbsentSectionsTakeDefaults) {
  v1::ConfigSnapshot s;
  s.set_listen("0.0.0.0:8080");
  s.set_grace_seconds(5);
  s.set_retry_horizon_seconds(900);
  s.set_log_level("info");
  v1::Tenant& t = *s.add_tenants();
  t.set_id("t");
  t.set_default_resolution_seconds(60);
  t.set_output(v1::OUTPUT_KIND_LIBRATO);
  t.mutable_librato()->set_url("https://metrics-api.librato.com/v1/metrics");
  t.mutable_librato()->set_email("e@x");
  t.mutable_librato()->set_api_token("k");
  absl::StatusOr<Config> config = FromProto(s);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->limits, Limits{});
  EXPECT_EQ(config->outlet, Outlet{});
  EXPECT_EQ(config->receiver, Receiver{});
  EXPECT_EQ(config->redis, Redis{});
}

// A snapshot of a config service that predates outlet.max_inflight_requests (field absent,
// 0) gives the default, not an invalid 0.
TEST(FromProtoTest, AbsentMaxInflightRequestsTakesTheDefault) {
  v1::ConfigSnapshot s = ToProto(RichConfig(), 1);
  s.mutable_outlet()->clear_max_inflight_requests();
  absl::StatusOr<Config> config = FromProto(s);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->outlet.max_inflight_requests, Outlet{}.max_inflight_requests);
  EXPECT_EQ(config->outlet.max_gauges_per_request, 14);
}

struct BadSnapshotCase {
  std::string title;
  void (*mutate)(v1::ConfigSnapshot&);
  std::string message;
};

TEST(FromProtoTest, InvalidSnapshotsNameTheField) {
  const BadSnapshotCase cases[] = {
      {"UnspecifiedOutput",
       [](v1::ConfigSnapshot& s) { s.mutable_tenants(1)->set_output(v1::OUTPUT_KIND_UNSPECIFIED); },
       "tenants[1].output: unknown output kind 0"},
      {"UnknownOutput",
       [](v1::ConfigSnapshot& s) { s.mutable_tenants(0)->set_output(static_cast<v1::OutputKind>(9)); },
       "tenants[0].output: unknown output kind 9"},
      {"NoTenants", [](v1::ConfigSnapshot& s) { s.clear_tenants(); },
       "tenants: at least one tenant is required"},
      {"ZeroShards", [](v1::ConfigSnapshot& s) { s.mutable_redis()->set_shards(0); },
       "redis.shards: must be between 1 and 4096"},
      {"NoServers", [](v1::ConfigSnapshot& s) { s.mutable_redis()->clear_servers(); },
       "redis.servers: at least one server is required"},
      {"ZeroLimitIsNotADefault", [](v1::ConfigSnapshot& s) { s.mutable_limits()->set_max_body_bytes(0); },
       "limits.max_body_bytes: must be > 0"},
      {"LibratoWithoutAccount", [](v1::ConfigSnapshot& s) { s.mutable_tenants(0)->clear_librato(); },
       "tenants[0].librato.email: required when output is librato"},
      {"SharedTokenHash", [](v1::ConfigSnapshot& s) { s.mutable_tenants(1)->add_token_hashes(kHashA); },
       "tenants[1].token_hashes[1]: also a token hash of tenant \"acme\""},
  };
  for (const BadSnapshotCase& c : cases) {
    SCOPED_TRACE(c.title);
    v1::ConfigSnapshot s = ToProto(RichConfig(), 1);
    c.mutate(s);
    absl::StatusOr<Config> config = FromProto(s);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(config.status().message()), c.message);
  }
}

}  // namespace
}  // namespace drainmet::config
