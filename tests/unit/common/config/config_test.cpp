#include "common/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace drainmet::config {
namespace {

const std::string kHashA = "sha256:" + std::string(64, 'a');
const std::string kHashB = "sha256:" + std::string(64, 'b');
const std::string kHashC = "sha256:" + std::string(64, 'c');

// An environment holding exactly `vars`.
EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

const char kFullYaml[] = R"(# every key, none at its default
listen: "127.0.0.1:9090"
threads: 4
grace_seconds: 10
retry_horizon_seconds: 1800
log_level: debug
limits:
  max_body_bytes: 2097152
  max_header_bytes: 8192
  max_open_buckets: 5000
  dedupe_window_seconds: 300
  dedupe_max_entries: 1000
  read_timeout_seconds: 15
  future_tolerance_seconds: 120
outlet:
  interval_ms: 250
  connect_timeout_ms: 1000
  request_timeout_ms: 5000
  max_gauges_per_request: 100
  retry_initial_backoff_ms: 200
  retry_max_backoff_ms: 30000
  max_pending_retry_bytes: 1048576
  lease_ttl_ms: 20000
  lease_renew_ms: 4000
  seal_interval_ms: 50
receiver:
  flush_interval_ms: 250
  flush_delay_ms: 7
  max_series_in_memory: 5000
  watermark_interval_ms: 40
  watermark_ttl_ms: 400
redis:
  shards: 16
  servers: ["10.0.0.1:6379", "[::1]:6380", unix:/run/redis/redis.sock]
  connect_timeout_ms: 500
  command_timeout_ms: 750
tenants:
  - id: acme
    token_hashes:
      - sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
      - sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
    default_resolution_seconds: 10
    output: librato
    librato:
      url: https://librato.example/v1/metrics
      email: ops@acme.example
      api_token_env: ACME_LIBRATO_TOKEN
  - id: local.dev_1
    token_hashes: [sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc]
    output: stdout
  - id: beta
    librato:
      email: beta@example.com
      api_token: "inline-secret"
)";

const char kFullJson[] = R"({
  "listen": "127.0.0.1:9090", "threads": 4, "grace_seconds": 10,
  "retry_horizon_seconds": 1800, "log_level": "debug",
  "limits": {"max_body_bytes": 2097152, "max_header_bytes": 8192, "max_open_buckets": 5000,
             "dedupe_window_seconds": 300, "dedupe_max_entries": 1000,
             "read_timeout_seconds": 15, "future_tolerance_seconds": 120},
  "outlet": {"interval_ms": 250, "connect_timeout_ms": 1000, "request_timeout_ms": 5000,
             "max_gauges_per_request": 100, "retry_initial_backoff_ms": 200,
             "retry_max_backoff_ms": 30000, "max_pending_retry_bytes": 1048576, "lease_ttl_ms": 20000,
             "lease_renew_ms": 4000, "seal_interval_ms": 50},
  "receiver": {"flush_interval_ms": 250, "flush_delay_ms": 7, "max_series_in_memory": 5000,
               "watermark_interval_ms": 40, "watermark_ttl_ms": 400},
  "redis": {"shards": 16, "servers": ["10.0.0.1:6379", "[::1]:6380", "unix:/run/redis/redis.sock"],
            "connect_timeout_ms": 500, "command_timeout_ms": 750},
  "tenants": [
    {"id": "acme",
     "token_hashes": ["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                      "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"],
     "default_resolution_seconds": 10, "output": "librato",
     "librato": {"url": "https://librato.example/v1/metrics", "email": "ops@acme.example",
                 "api_token_env": "ACME_LIBRATO_TOKEN"}},
    {"id": "local.dev_1",
     "token_hashes": ["sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"],
     "output": "stdout"},
    {"id": "beta", "librato": {"email": "beta@example.com", "api_token": "inline-secret"}}
  ]
})";

Config ExpectedFull() {
  Config c;
  c.listen = "127.0.0.1:9090";
  c.threads = 4;
  c.grace_seconds = 10;
  c.retry_horizon_seconds = 1800;
  c.log_level = "debug";
  c.limits = {.max_body_bytes = 2097152,
              .max_header_bytes = 8192,
              .max_open_buckets = 5000,
              .dedupe_window_seconds = 300,
              .dedupe_max_entries = 1000,
              .read_timeout_seconds = 15,
              .future_tolerance_seconds = 120};
  c.outlet = {.interval_ms = 250,
              .connect_timeout_ms = 1000,
              .request_timeout_ms = 5000,
              .max_gauges_per_request = 100,
              .retry_initial_backoff_ms = 200,
              .retry_max_backoff_ms = 30000,
              .max_pending_retry_bytes = 1048576,
              .lease_ttl_ms = 20000,
              .lease_renew_ms = 4000,
              .seal_interval_ms = 50};
  c.receiver = {.flush_interval_ms = 250,
                .flush_delay_ms = 7,
                .max_series_in_memory = 5000,
                .watermark_interval_ms = 40,
                .watermark_ttl_ms = 400};
  c.redis = {.shards = 16,
             .servers = {"10.0.0.1:6379", "[::1]:6380", "unix:/run/redis/redis.sock"},
             .connect_timeout_ms = 500,
             .command_timeout_ms = 750};
  Tenant acme;
  acme.id = "acme";
  acme.token_hashes = {kHashA, kHashB};
  acme.default_resolution_seconds = 10;
  acme.librato = {
      .url = "https://librato.example/v1/metrics", .email = "ops@acme.example", .api_token = "from-env"};
  Tenant local;
  local.id = "local.dev_1";
  local.token_hashes = {kHashC};
  local.output = OutputKind::kStdout;
  Tenant beta;
  beta.id = "beta";
  beta.librato.email = "beta@example.com";
  beta.librato.api_token = "inline-secret";
  c.tenants = {acme, local, beta};
  return c;
}

TEST(ParseConfigTest, FullYaml) {
  absl::StatusOr<Config> config = ParseConfig(kFullYaml, FakeEnv({{"ACME_LIBRATO_TOKEN", "from-env"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, ExpectedFull());
}

TEST(ParseConfigTest, FullJsonSameAsYaml) {
  absl::StatusOr<Config> config = ParseConfig(kFullJson, FakeEnv({{"ACME_LIBRATO_TOKEN", "from-env"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, ExpectedFull());
}

TEST(ParseConfigTest, EveryDefault) {
  absl::StatusOr<Config> config = ParseConfig("tenants:\n  - id: solo\n    output: stdout\n", FakeEnv({}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "0.0.0.0:8080");
  EXPECT_EQ(config->threads, 0);
  EXPECT_EQ(config->grace_seconds, 5);
  EXPECT_EQ(config->retry_horizon_seconds, 900);
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->limits.max_body_bytes, 1048576u);
  EXPECT_EQ(config->limits.max_header_bytes, 16384u);
  EXPECT_EQ(config->limits.max_open_buckets, 1000000u);
  EXPECT_EQ(config->limits.dedupe_window_seconds, 600);
  EXPECT_EQ(config->limits.dedupe_max_entries, 1000000u);
  EXPECT_EQ(config->limits.read_timeout_seconds, 30);
  EXPECT_EQ(config->limits.future_tolerance_seconds, 60);
  EXPECT_EQ(config->outlet.interval_ms, 500);
  EXPECT_EQ(config->outlet.connect_timeout_ms, 3000);
  EXPECT_EQ(config->outlet.request_timeout_ms, 10000);
  EXPECT_EQ(config->outlet.max_gauges_per_request, 300);
  EXPECT_EQ(config->outlet.retry_initial_backoff_ms, 500);
  EXPECT_EQ(config->outlet.retry_max_backoff_ms, 60000);
  EXPECT_EQ(config->outlet.lease_ttl_ms, 15000);
  EXPECT_EQ(config->outlet.lease_renew_ms, 5000);
  EXPECT_EQ(config->outlet.max_pending_retry_bytes, 64u << 20);
  EXPECT_EQ(config->outlet.seal_interval_ms, 100);
  EXPECT_EQ(config->receiver.watermark_interval_ms, 100);
  EXPECT_EQ(config->receiver.watermark_ttl_ms, 1000);
  EXPECT_EQ(config->receiver.flush_interval_ms, 1000);
  EXPECT_EQ(config->receiver.flush_delay_ms, 2);
  EXPECT_EQ(config->receiver.max_series_in_memory, 200000u);
  EXPECT_EQ(config->redis.shards, 64u);
  EXPECT_EQ(config->redis.servers, std::vector<std::string>{"127.0.0.1:6379"});
  EXPECT_EQ(config->redis.connect_timeout_ms, 1000);
  EXPECT_EQ(config->redis.command_timeout_ms, 2000);
  ASSERT_EQ(config->tenants.size(), 1u);
  const Tenant& tenant = config->tenants[0];
  EXPECT_EQ(tenant.id, "solo");
  EXPECT_TRUE(tenant.token_hashes.empty());
  EXPECT_EQ(tenant.default_resolution_seconds, 60);
  EXPECT_EQ(tenant.output, OutputKind::kStdout);
  EXPECT_EQ(tenant.librato.url, "https://metrics-api.librato.com/v1/metrics");
  EXPECT_EQ(tenant.librato.email, "");
  EXPECT_EQ(tenant.librato.api_token, "");

  // output defaults to librato.
  config = ParseConfig("tenants: [{id: t, librato: {email: e@x, api_token: k}}]", FakeEnv({}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tenants[0].output, OutputKind::kLibrato);
}

TEST(ParseConfigTest, NullSectionsAreEmpty) {
  absl::StatusOr<Config> config = ParseConfig(
      "limits:\noutlet: null\nreceiver:\nredis:\ntenants:\n  - id: t\n    output: stdout\n    "
      "token_hashes:\n",
      FakeEnv({}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->limits, Limits{});
  EXPECT_EQ(config->outlet, Outlet{});
  EXPECT_EQ(config->receiver, Receiver{});
  EXPECT_EQ(config->redis, Redis{});
}

struct ErrorCase {
  std::string title;
  std::string text;
  std::string message;
};

void ExpectErrors(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.title);
    absl::StatusOr<Config> config = ParseConfig(c.text, FakeEnv({}));
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Message(config.status()), c.message);
  }
}

// A valid tenant list to append after the key under test.
const std::string kTenants = "tenants: [{id: t, output: stdout}]\n";

TEST(ParseConfigTest, UnknownKeysNamedByPath) {
  ExpectErrors({
      {"TopLevel", "bogus: 1\n" + kTenants, "bogus: unknown key"},
      {"InLimits", "limits: {max_body_byte: 1}\n" + kTenants, "limits.max_body_byte: unknown key"},
      {"InOutlet", "outlet:\n  interval: 5\n" + kTenants, "outlet.interval: unknown key"},
      {"InTenant", "tenants: [{id: t, colour: red}]", "tenants[0].colour: unknown key"},
      {"InSecondTenantsLibrato",
       "tenants:\n  - {id: a, output: stdout}\n  - id: b\n    librato:\n      emial: x@y\n",
       "tenants[1].librato.emial: unknown key"},
      {"CaseMatters", "Listen: x\n" + kTenants, "Listen: unknown key"},
      {"InReceiver", "receiver: {flush_ms: 5}\n" + kTenants, "receiver.flush_ms: unknown key"},
      {"InRedis", "redis:\n  server: [a:1]\n" + kTenants, "redis.server: unknown key"},
      {"LeaseInOutlet", "outlet: {lease_ttl: 5}\n" + kTenants, "outlet.lease_ttl: unknown key"},
  });
}

TEST(ParseConfigTest, TypeErrorsNamedByPath) {
  ExpectErrors({
      {"Negative", "limits: {max_body_bytes: -1}\n" + kTenants,
       "limits.max_body_bytes: must be a non-negative integer"},
      {"Fraction", "limits: {max_body_bytes: 1.5}\n" + kTenants,
       "limits.max_body_bytes: must be a non-negative integer"},
      {"Quoted", "limits: {max_body_bytes: \"100\"}\n" + kTenants,
       "limits.max_body_bytes: must be a non-negative integer"},
      {"Word", "limits: {max_body_bytes: lots}\n" + kTenants,
       "limits.max_body_bytes: must be a non-negative integer"},
      {"Null", "limits: {max_body_bytes: null}\n" + kTenants,
       "limits.max_body_bytes: must be a non-negative integer"},
      {"List", "limits: {max_body_bytes: [1]}\n" + kTenants,
       "limits.max_body_bytes: must be a non-negative integer"},
      {"PlusSign", "limits: {max_open_buckets: +5}\n" + kTenants,
       "limits.max_open_buckets: must be a non-negative integer"},
      {"Hex", "limits: {dedupe_max_entries: 0x10}\n" + kTenants,
       "limits.dedupe_max_entries: must be a non-negative integer"},
      {"Uint64Overflow", "limits: {max_body_bytes: 18446744073709551616}\n" + kTenants,
       "limits.max_body_bytes: must be a non-negative integer"},
      {"Uint32Overflow", "limits: {max_header_bytes: 4294967296}\n" + kTenants,
       "limits.max_header_bytes: must be a non-negative integer below 2^32"},
      {"SignedWord", "limits: {read_timeout_seconds: soon}\n" + kTenants,
       "limits.read_timeout_seconds: must be an integer"},
      {"IntOverflow", "threads: 3000000000\n" + kTenants, "threads: must be an integer"},
      {"OutletInt", "outlet: {max_gauges_per_request: many}\n" + kTenants,
       "outlet.max_gauges_per_request: must be an integer"},
      {"StringIsMapping", "listen: {a: 1}\n" + kTenants, "listen: must be a string"},
      {"SectionNotMapping", "limits: 5\n" + kTenants, "limits: must be a mapping"},
      {"RootNotMapping", "- 1\n- 2\n", "top level: must be a mapping"},
      {"TenantsNotList", "tenants: acme\n", "tenants: must be a list of tenants"},
      {"TenantNotMapping", "tenants: [5]\n", "tenants[0]: must be a mapping"},
      {"TenantEmpty", "tenants:\n  -\n", "tenants[0]: must be a mapping"},
      {"HashesNotList", "tenants: [{id: t, token_hashes: abc}]\n",
       "tenants[0].token_hashes: must be a list of strings"},
      {"HashNotString", "tenants: [{id: t, token_hashes: [[1]]}]\n",
       "tenants[0].token_hashes[0]: must be a string"},
      {"ResolutionWord", "tenants: [{id: t, default_resolution_seconds: minute}]\n",
       "tenants[0].default_resolution_seconds: must be an integer"},
      {"UnknownOutput", "tenants: [{id: t, output: ftp}]\n",
       "tenants[0].output: must be \"librato\" or \"stdout\""},
      {"LibratoNotMapping", "tenants: [{id: t, librato: yes}]\n", "tenants[0].librato: must be a mapping"},
      {"DuplicateKey", "threads: 1\nthreads: 2\n" + kTenants, "threads: duplicate key"},
      {"ShardsNegative", "redis: {shards: -1}\n" + kTenants,
       "redis.shards: must be a non-negative integer below 2^32"},
      {"ServersNotList", "redis: {servers: 127.0.0.1:6379}\n" + kTenants,
       "redis.servers: must be a list of strings"},
      {"ServerNotString", "redis: {servers: [{a: 1}]}\n" + kTenants, "redis.servers[0]: must be a string"},
      {"RedisTimeoutWord", "redis: {command_timeout_ms: fast}\n" + kTenants,
       "redis.command_timeout_ms: must be an integer"},
      {"FlushIntervalQuoted", "receiver: {flush_interval_ms: \"5\"}\n" + kTenants,
       "receiver.flush_interval_ms: must be an integer"},
      {"FlushDelayOverInterval", "receiver: {flush_interval_ms: 100, flush_delay_ms: 101}\n" + kTenants,
       "receiver.flush_delay_ms: must be between 0 and receiver.flush_interval_ms"},
      {"MaxSeriesNegative", "receiver: {max_series_in_memory: -5}\n" + kTenants,
       "receiver.max_series_in_memory: must be a non-negative integer"},
      {"LeaseTtlWord", "outlet: {lease_ttl_ms: long}\n" + kTenants,
       "outlet.lease_ttl_ms: must be an integer"},
      {"ReceiverNotMapping", "receiver: [1]\n" + kTenants, "receiver: must be a mapping"},
      {"NonScalarKey", "? [a]\n: 1\n" + kTenants, "top level: keys must be strings"},
  });
}

TEST(ParseConfigTest, SyntaxErrorNamesLine) {
  absl::StatusOr<Config> config = ParseConfig("threads: 1\nlimits: [1,\n", FakeEnv({}));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(config.status()), testing::StartsWith("line "));

  config = ParseConfig("{\"threads\": 1,", FakeEnv({}));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseConfigTest, EmptyDocumentFailsValidation) {
  absl::StatusOr<Config> config = ParseConfig("", FakeEnv({}));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(Message(config.status()), "tenants: at least one tenant is required");
}

const char kEnvTenant[] = R"(tenants:
  - id: acme
    librato: {email: ops@acme.example, api_token_env: ACME_TOKEN}
)";

TEST(ParseConfigTest, ApiTokenEnvResolved) {
  absl::StatusOr<Config> config = ParseConfig(kEnvTenant, FakeEnv({{"ACME_TOKEN", "s3cret"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tenants[0].librato.api_token, "s3cret");
}

TEST(ParseConfigTest, ApiTokenEnvMissingNamesTenantAndVariable) {
  absl::StatusOr<Config> config = ParseConfig(kEnvTenant, FakeEnv({{"OTHER", "x"}}));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(
      Message(config.status()),
      "tenants[0].librato.api_token_env: environment variable ACME_TOKEN of tenant \"acme\" is not set");

  config = ParseConfig(kEnvTenant, FakeEnv({{"ACME_TOKEN", ""}}));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(Message(config.status()),
            "tenants[0].librato.api_token_env: environment variable ACME_TOKEN of tenant \"acme\" is empty");

  // The tenant id may come after the librato section.
  config = ParseConfig("tenants:\n  - librato: {email: e@x, api_token_env: T}\n    id: late\n", FakeEnv({}));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(Message(config.status()),
            "tenants[0].librato.api_token_env: environment variable T of tenant \"late\" is not set");
}

TEST(ParseConfigTest, ApiTokenAndApiTokenEnvAreExclusive) {
  absl::StatusOr<Config> config = ParseConfig(
      "tenants: [{id: a, librato: {email: e@x, api_token: k, api_token_env: K}}]", FakeEnv({{"K", "v"}}));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(Message(config.status()), "tenants[0].librato: api_token and api_token_env are exclusive");
}

TEST(ParseConfigTest, ProcessEnvReadsEnvironment) {
  ::setenv("DRAINMET_CONFIG_TEST_VAR", "value-1", 1);
  EnvLookup env = ProcessEnv();
  EXPECT_EQ(env("DRAINMET_CONFIG_TEST_VAR"), std::optional<std::string>("value-1"));
  EXPECT_EQ(env("DRAINMET_CONFIG_TEST_SURELY_UNSET"), std::nullopt);
}

// A valid configuration with two librato tenants, for the validation rules to break.
Config ValidConfig() {
  Config c;
  Tenant a;
  a.id = "a";
  a.token_hashes = {kHashA};
  a.librato.email = "a@example.com";
  a.librato.api_token = "tok-a";
  Tenant b = a;
  b.id = "b";
  b.token_hashes = {kHashB};
  c.tenants = {a, b};
  return c;
}

struct RuleCase {
  std::string rule;
  std::function<void(Config&)> mutate;
  std::string message;  // empty: still valid
};

// One case per rule of Validate (docs/configuration.md "Validation"), with the edges that
// stay valid.
TEST(ValidateTest, EveryRule) {
  const std::vector<RuleCase> cases = {
      {"ValidAsIs", [](Config&) {}, ""},
      {"AtLeastOneTenant", [](Config& c) { c.tenants.clear(); }, "tenants: at least one tenant is required"},
      {"IdRequired", [](Config& c) { c.tenants[1].id = ""; }, "tenants[1].id: required"},
      {"IdCharset", [](Config& c) { c.tenants[0].id = "a b"; },
       "tenants[0].id: may hold only A-Z a-z 0-9 . _ -"},
      {"IdNoColon", [](Config& c) { c.tenants[0].id = "a:b"; },
       "tenants[0].id: may hold only A-Z a-z 0-9 . _ -"},
      {"IdCharsetAllowed", [](Config& c) { c.tenants[0].id = "Az09._-"; }, ""},
      {"IdUnique", [](Config& c) { c.tenants[1].id = "a"; }, "tenants[1].id: duplicate of tenants[0].id"},
      {"HashPrefix", [](Config& c) { c.tenants[0].token_hashes = {"sha1:" + std::string(64, 'a')}; },
       "tenants[0].token_hashes[0]: must be \"sha256:\" and 64 lowercase hex digits"},
      {"HashUppercase",
       [](Config& c) {
         c.tenants[0].token_hashes = {kHashA, "sha256:" + std::string(64, 'A')};
       },
       "tenants[0].token_hashes[1]: must be \"sha256:\" and 64 lowercase hex digits"},
      {"HashLength", [](Config& c) { c.tenants[0].token_hashes = {"sha256:" + std::string(63, 'a')}; },
       "tenants[0].token_hashes[0]: must be \"sha256:\" and 64 lowercase hex digits"},
      {"HashNotShared", [](Config& c) { c.tenants[1].token_hashes.push_back(kHashA); },
       "tenants[1].token_hashes[1]: also a token hash of tenant \"a\""},
      {"HashRepeatedWithinTenantIsFine", [](Config& c) { c.tenants[0].token_hashes.push_back(kHashA); }, ""},
      {"Resolution", [](Config& c) { c.tenants[0].default_resolution_seconds = 7; },
       "tenants[0].default_resolution_seconds: must be one of 1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, "
       "1800, "
       "3600"},
      {"ResolutionAllowed", [](Config& c) { c.tenants[0].default_resolution_seconds = 3600; }, ""},
      {"LibratoEmail", [](Config& c) { c.tenants[1].librato.email = ""; },
       "tenants[1].librato.email: required when output is librato"},
      {"LibratoToken", [](Config& c) { c.tenants[0].librato.api_token = ""; },
       "tenants[0].librato.api_token: required when output is librato (api_token or api_token_env)"},
      {"LibratoUrlScheme", [](Config& c) { c.tenants[0].librato.url = "ftp://x/v1/metrics"; },
       "tenants[0].librato.url: must be an http:// or https:// URL"},
      {"LibratoUrlHost", [](Config& c) { c.tenants[0].librato.url = "https:///v1/metrics"; },
       "tenants[0].librato.url: must be an http:// or https:// URL"},
      {"LibratoUrlBlank", [](Config& c) { c.tenants[0].librato.url = "https://a b/"; },
       "tenants[0].librato.url: must be an http:// or https:// URL"},
      {"LibratoUrlHttpAllowed",
       [](Config& c) { c.tenants[0].librato.url = "http://127.0.0.1:9000/v1/metrics"; }, ""},
      {"StdoutNeedsNoLibrato",
       [](Config& c) {
         c.tenants[0].output = OutputKind::kStdout;
         c.tenants[0].librato = {.url = "", .email = "", .api_token = ""};
       },
       ""},
      {"MaxBodyBytes", [](Config& c) { c.limits.max_body_bytes = 0; }, "limits.max_body_bytes: must be > 0"},
      {"MaxHeaderBytes", [](Config& c) { c.limits.max_header_bytes = 0; },
       "limits.max_header_bytes: must be > 0"},
      {"MaxOpenBuckets", [](Config& c) { c.limits.max_open_buckets = 0; },
       "limits.max_open_buckets: must be > 0"},
      {"DedupeWindow", [](Config& c) { c.limits.dedupe_window_seconds = -1; },
       "limits.dedupe_window_seconds: must be > 0"},
      {"DedupeMaxEntries", [](Config& c) { c.limits.dedupe_max_entries = 0; },
       "limits.dedupe_max_entries: must be > 0"},
      {"ReadTimeout", [](Config& c) { c.limits.read_timeout_seconds = 0; },
       "limits.read_timeout_seconds: must be > 0"},
      {"FutureTolerance", [](Config& c) { c.limits.future_tolerance_seconds = 0; },
       "limits.future_tolerance_seconds: must be > 0"},
      {"OutletInterval", [](Config& c) { c.outlet.interval_ms = 0; }, "outlet.interval_ms: must be > 0"},
      {"ConnectTimeout", [](Config& c) { c.outlet.connect_timeout_ms = -5; },
       "outlet.connect_timeout_ms: must be > 0"},
      {"RequestTimeout", [](Config& c) { c.outlet.request_timeout_ms = 0; },
       "outlet.request_timeout_ms: must be > 0"},
      {"RetryInitial", [](Config& c) { c.outlet.retry_initial_backoff_ms = 0; },
       "outlet.retry_initial_backoff_ms: must be > 0"},
      {"RetryMax", [](Config& c) { c.outlet.retry_max_backoff_ms = 0; },
       "outlet.retry_max_backoff_ms: must be > 0"},
      {"RetryMaxBelowInitial",
       [](Config& c) {
         c.outlet.retry_initial_backoff_ms = 1000;
         c.outlet.retry_max_backoff_ms = 999;
       },
       "outlet.retry_max_backoff_ms: must be >= outlet.retry_initial_backoff_ms"},
      {"RetryHorizon", [](Config& c) { c.retry_horizon_seconds = 0; }, "retry_horizon_seconds: must be > 0"},
      {"GaugesPerRequestZero", [](Config& c) { c.outlet.max_gauges_per_request = 0; },
       "outlet.max_gauges_per_request: must be between 1 and 300"},
      {"GaugesPerRequest301", [](Config& c) { c.outlet.max_gauges_per_request = 301; },
       "outlet.max_gauges_per_request: must be between 1 and 300"},
      {"GaugesPerRequestEdges", [](Config& c) { c.outlet.max_gauges_per_request = 1; }, ""},
      {"GraceNegative", [](Config& c) { c.grace_seconds = -1; }, "grace_seconds: must be between 0 and 3600"},
      {"GraceTooLong", [](Config& c) { c.grace_seconds = 3601; },
       "grace_seconds: must be between 0 and 3600"},
      {"GraceEdges", [](Config& c) { c.grace_seconds = 0; }, ""},
      {"GraceUpperEdge", [](Config& c) { c.grace_seconds = 3600; }, ""},
      {"ThreadsNegative", [](Config& c) { c.threads = -1; }, "threads: must be between 0 and 1024"},
      {"LogLevel", [](Config& c) { c.log_level = "verbose"; },
       "log_level: must be one of debug, info, warn, error"},
      {"ListenNoPort", [](Config& c) { c.listen = "localhost"; }, "listen: must be HOST:PORT"},
      {"ListenBadPort", [](Config& c) { c.listen = "localhost:http"; },
       "listen: port must be a decimal number 0..65535"},
      {"ListenPortRange", [](Config& c) { c.listen = "0.0.0.0:65536"; },
       "listen: port must be a decimal number 0..65535"},
      {"ListenNoHost", [](Config& c) { c.listen = ":8080"; }, "listen: host is empty"},
      {"ListenBareIpv6", [](Config& c) { c.listen = "::1:8080"; },
       "listen: host may hold only A-Z a-z 0-9 . - (IPv6 goes in brackets)"},
      {"ListenIpv6", [](Config& c) { c.listen = "[::1]:8080"; }, ""},
      {"LeaseTtl", [](Config& c) { c.outlet.lease_ttl_ms = 0; }, "outlet.lease_ttl_ms: must be > 0"},
      {"PendingRetryBytes", [](Config& c) { c.outlet.max_pending_retry_bytes = 0; },
       "outlet.max_pending_retry_bytes: must be > 0"},
      {"SealInterval", [](Config& c) { c.outlet.seal_interval_ms = 0; },
       "outlet.seal_interval_ms: must be > 0"},
      {"WatermarkInterval", [](Config& c) { c.receiver.watermark_interval_ms = 0; },
       "receiver.watermark_interval_ms: must be > 0"},
      {"WatermarkTtl", [](Config& c) { c.receiver.watermark_ttl_ms = -1; },
       "receiver.watermark_ttl_ms: must be > 0"},
      {"WatermarkTtlNotAboveInterval",
       [](Config& c) {
         c.receiver.watermark_interval_ms = 500;
         c.receiver.watermark_ttl_ms = 500;
       },
       "receiver.watermark_ttl_ms: must be > receiver.watermark_interval_ms"},
      {"LeaseRenew", [](Config& c) { c.outlet.lease_renew_ms = -1; }, "outlet.lease_renew_ms: must be > 0"},
      {"LeaseRenewNotBelowTtl",
       [](Config& c) {
         c.outlet.lease_ttl_ms = 5000;
         c.outlet.lease_renew_ms = 5000;
       },
       "outlet.lease_renew_ms: must be < outlet.lease_ttl_ms"},
      {"LeaseRenewJustBelowTtl",
       [](Config& c) {
         c.outlet.lease_ttl_ms = 5000;
         c.outlet.lease_renew_ms = 4999;
       },
       ""},
      {"FlushInterval", [](Config& c) { c.receiver.flush_interval_ms = 0; },
       "receiver.flush_interval_ms: must be > 0"},
      {"MaxSeriesInMemory", [](Config& c) { c.receiver.max_series_in_memory = 0; },
       "receiver.max_series_in_memory: must be > 0"},
      {"ShardsZero", [](Config& c) { c.redis.shards = 0; }, "redis.shards: must be between 1 and 4096"},
      {"ShardsTooMany", [](Config& c) { c.redis.shards = 4097; }, "redis.shards: must be between 1 and 4096"},
      {"ShardsEdges", [](Config& c) { c.redis.shards = 4096; }, ""},
      {"ShardsOne", [](Config& c) { c.redis.shards = 1; }, ""},
      {"ServersEmpty", [](Config& c) { c.redis.servers.clear(); },
       "redis.servers: at least one server is required"},
      {"ServerNoPort", [](Config& c) { c.redis.servers = {"redis-0"}; },
       "redis.servers[0]: must be HOST:PORT (want HOST:PORT, [IPv6]:PORT or unix:/path)"},
      {"ServerPortZero",
       [](Config& c) {
         c.redis.servers = {"a:6379", "b:0"};
       },
       "redis.servers[1]: port must be 1..65535"},
      {"ServerUnixRelative", [](Config& c) { c.redis.servers = {"unix:redis.sock"}; },
       "redis.servers[0]: unix: must be followed by an absolute path"},
      {"ServerDuplicate",
       [](Config& c) {
         c.redis.servers = {"a:6379", "b:6379", "a:6379"};
       },
       "redis.servers[2]: duplicate of redis.servers[0]"},
      {"ServersMixed",
       [](Config& c) {
         c.redis.servers = {"a:6379", "[::1]:1", "unix:/tmp/r.sock"};
       },
       ""},
      {"RedisConnectTimeout", [](Config& c) { c.redis.connect_timeout_ms = 0; },
       "redis.connect_timeout_ms: must be > 0"},
      {"RedisCommandTimeout", [](Config& c) { c.redis.command_timeout_ms = -1; },
       "redis.command_timeout_ms: must be > 0"},
  };
  for (const RuleCase& c : cases) {
    SCOPED_TRACE(c.rule);
    Config config = ValidConfig();
    c.mutate(config);
    absl::Status status = Validate(config);
    if (c.message.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(Message(status), c.message);
    }
  }
}

struct HostPortCase {
  std::string text;
  bool ok;
  std::string host;
  std::uint16_t port;
};

TEST(ParseHostPortTest, Forms) {
  const HostPortCase cases[] = {
      {"0.0.0.0:8080", true, "0.0.0.0", 8080},
      {"localhost:0", true, "localhost", 0},
      {"drain.example-1.com:443", true, "drain.example-1.com", 443},
      {"[::]:65535", true, "::", 65535},
      {"[::ffff:10.0.0.1]:80", true, "::ffff:10.0.0.1", 80},
      {"host:", false, "", 0},
      {"host:-1", false, "", 0},
      {"host:080800", false, "", 0},
      {"[]:80", false, "", 0},
      {"[zz]:80", false, "", 0},
      {"[::1:80", false, "", 0},
      {"ho st:80", false, "", 0},
      {"", false, "", 0},
  };
  for (const HostPortCase& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<HostPort> parsed = ParseHostPort(c.text);
    EXPECT_EQ(parsed.ok(), c.ok) << parsed.status();
    if (parsed.ok() && c.ok) {
      EXPECT_EQ(parsed->host, c.host);
      EXPECT_EQ(parsed->port, c.port);
    }
  }
}

struct RedisAddressCase {
  std::string text;
  bool ok;
  RedisAddress address;
};

TEST(ParseRedisAddressTest, Forms) {
  const RedisAddressCase cases[] = {
      {"127.0.0.1:6379", true, {.unix_socket = "", .host = "127.0.0.1", .port = 6379}},
      {"redis-0.redis:6380", true, {.unix_socket = "", .host = "redis-0.redis", .port = 6380}},
      {"[::1]:1", true, {.unix_socket = "", .host = "::1", .port = 1}},
      {"unix:/run/redis.sock", true, {.unix_socket = "/run/redis.sock", .host = "", .port = 0}},
      {"unix:/", true, {.unix_socket = "/", .host = "", .port = 0}},
      {"unix:", false, {}},
      {"unix:tmp/r.sock", false, {}},
      {"redis:0", false, {}},
      {"redis:65536", false, {}},
      {"redis", false, {}},
      {"", false, {}},
  };
  for (const RedisAddressCase& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<RedisAddress> parsed = ParseRedisAddress(c.text);
    EXPECT_EQ(parsed.ok(), c.ok) << parsed.status();
    if (parsed.ok() && c.ok) {
      EXPECT_EQ(*parsed, c.address);
    }
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

// The shard map: shard s lives on servers[s % servers.size()] (docs/configuration.md "redis").
TEST(ServerOfShardTest, ShardModuloServerCount) {
  Config c;
  c.redis.shards = 8;
  c.redis.servers = {"a:1", "b:1", "c:1"};
  const std::size_t expected[] = {0, 1, 2, 0, 1, 2, 0, 1};
  for (std::uint32_t shard = 0; shard < 8; ++shard)
    EXPECT_EQ(ServerOfShard(c, shard), expected[shard]) << shard;

  c.redis.servers = {"only:1"};
  EXPECT_EQ(ServerOfShard(c, 0), 0u);
  EXPECT_EQ(ServerOfShard(c, 4095), 0u);
}

TEST(IsValidResolutionTest, SemanticsSection47Values) {
  for (int r : {1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600})
    EXPECT_TRUE(IsValidResolution(r)) << r;
  for (int r : {0, -60, 2, 45, 90, 7200}) EXPECT_FALSE(IsValidResolution(r)) << r;
}

std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(LoadConfigFileTest, ReadsAndParses) {
  const std::string path = WriteTempFile("drainmet_config_ok.yaml", kTenants);
  absl::StatusOr<Config> config = LoadConfigFile(path, FakeEnv({}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tenants[0].id, "t");
}

TEST(LoadConfigFileTest, MissingFileIsNotFoundNamingPath) {
  const std::string path = testing::TempDir() + "drainmet_config_missing.yaml";
  absl::StatusOr<Config> config = LoadConfigFile(path, FakeEnv({}));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(config.status()), testing::StartsWith(path + ": "));
}

TEST(LoadConfigFileTest, InvalidContentNamesPathAndKey) {
  const std::string path = WriteTempFile("drainmet_config_bad.yaml", "treads: 4\n" + kTenants);
  absl::StatusOr<Config> config = LoadConfigFile(path, FakeEnv({}));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(config.status()), path + ": treads: unknown key");
}

TEST(LoadConfigFileTest, DirectoryIsAnError) {
  absl::StatusOr<Config> config = LoadConfigFile(testing::TempDir(), FakeEnv({}));
  EXPECT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), testing::StartsWith(testing::TempDir()));
}

// The YAML and JSON examples of docs/configuration.md load, and to the same Config.
TEST(ParseConfigTest, DocumentationExamplesAgree) {
  std::ifstream in(DRAINMET_FIXTURES_DIR "/../../docs/configuration.md");
  ASSERT_TRUE(in.good());
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto block = [&](const std::string& fence) {
    const std::size_t start = doc.find("```" + fence + "\n");
    if (start == std::string::npos) return std::string();
    const std::size_t body = start + fence.size() + 4;
    return doc.substr(body, doc.find("```", body) - body);
  };
  const EnvLookup env = FakeEnv({{"ACME_LIBRATO_TOKEN", "t"}});
  absl::StatusOr<Config> yaml = ParseConfig(block("yaml"), env);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  absl::StatusOr<Config> json = ParseConfig(block("json"), env);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*yaml, *json);
  EXPECT_EQ(yaml->tenants.size(), 2u);
}

}  // namespace
}  // namespace drainmet::config

namespace drainmet::config {
namespace {

// Issue 7: syslog drains (FORMATS.md §2) and the inflated-body bound of HTTP senders.
TEST(ParseConfigTest, SyslogSectionAndInflatedLimit) {
  const char yaml[] = R"(
limits:
  max_inflated_body_bytes: 1000
syslog:
  listen: "127.0.0.1:6514"
  tls_listen: "[::1]:6515"
  tls_cert_file: /etc/drainmet/cert.pem
  tls_key_file: /etc/drainmet/key.pem
  max_line_bytes: 4096
  max_connections: 10
  idle_timeout_seconds: 30
  drains:
    - token: d.01234567-89ab-cdef-0123-456789abcdef
      tenant: acme
      resolution_seconds: 10
      prefix: eu
      source_prefix: prod
    - {token: d.2, tenant: acme}
tenants:
  - {id: acme, output: stdout}
)";
  absl::StatusOr<Config> c = ParseConfig(yaml, FakeEnv({}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.max_inflated_body_bytes, 1000u);
  EXPECT_EQ(c->syslog.listen, "127.0.0.1:6514");
  EXPECT_EQ(c->syslog.tls_listen, "[::1]:6515");
  EXPECT_EQ(c->syslog.tls_cert_file, "/etc/drainmet/cert.pem");
  EXPECT_EQ(c->syslog.tls_key_file, "/etc/drainmet/key.pem");
  EXPECT_EQ(c->syslog.max_line_bytes, 4096u);
  EXPECT_EQ(c->syslog.max_connections, 10u);
  EXPECT_EQ(c->syslog.idle_timeout_seconds, 30);
  ASSERT_EQ(c->syslog.drains.size(), 2u);
  EXPECT_EQ(c->syslog.drains[0],
            (SyslogDrain{"d.01234567-89ab-cdef-0123-456789abcdef", "acme", 10, "eu", "prod"}));
  EXPECT_EQ(c->syslog.drains[1], (SyslogDrain{"d.2", "acme", 0, "", ""}));

  absl::StatusOr<Config> defaults = ParseConfig("tenants: [{id: a, output: stdout}]", FakeEnv({}));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->limits.max_inflated_body_bytes, 8u << 20);
  EXPECT_EQ(defaults->syslog, Syslog{});
  EXPECT_TRUE(defaults->syslog.listen.empty());  // off by default

  absl::StatusOr<Config> unknown = ParseConfig(
      "syslog: {drains: [{token: d.1, tenant: a, colour: red}]}\ntenants: [{id: a, output: stdout}]",
      FakeEnv({}));
  EXPECT_EQ(Message(unknown.status()), "syslog.drains[0].colour: unknown key");
}

// Issue 5 "Limits and overload", "Security": the new limits keys and their defaults.
TEST(ParseConfigTest, Issue5LimitsKeysAndDefaults) {
  const char yaml[] = R"(
limits:
  tenant_points_per_second: 5000
  max_header_count: 50
  max_frames_per_request: 2000
  max_line_bytes: 10000
  max_series_per_tenant: 300
  auth_failures_before_delay: 3
  auth_failure_window_seconds: 30
  auth_failure_delay_ms: 500
tenants:
  - {id: acme, output: stdout}
)";
  absl::StatusOr<Config> c = ParseConfig(yaml, FakeEnv({}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.tenant_points_per_second, 5000u);
  EXPECT_EQ(c->limits.max_header_count, 50u);
  EXPECT_EQ(c->limits.max_frames_per_request, 2000u);
  EXPECT_EQ(c->limits.max_line_bytes, 10000u);
  EXPECT_EQ(c->limits.max_series_per_tenant, 300u);
  EXPECT_EQ(c->limits.auth_failures_before_delay, 3u);
  EXPECT_EQ(c->limits.auth_failure_window_seconds, 30);
  EXPECT_EQ(c->limits.auth_failure_delay_ms, 500);
  absl::StatusOr<Config> defaults = ParseConfig("tenants: [{id: a, output: stdout}]", FakeEnv({}));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->limits.tenant_points_per_second, 1'000'000u);
  EXPECT_EQ(defaults->limits.max_header_count, 100u);
  EXPECT_EQ(defaults->limits.max_frames_per_request, 100'000u);
  EXPECT_EQ(defaults->limits.max_line_bytes, 65536u);
  EXPECT_EQ(defaults->limits.max_series_per_tenant, 100'000u);
  EXPECT_EQ(defaults->limits.auth_failures_before_delay, 10u);
  EXPECT_EQ(defaults->limits.auth_failure_window_seconds, 60);
  EXPECT_EQ(defaults->limits.auth_failure_delay_ms, 2000);
}

TEST(ValidateTest, SyslogRules) {
  const std::vector<RuleCase> cases = {
      {"ListenOffByDefault", [](Config&) {}, ""},
      {"ListenHostPort", [](Config& c) { c.syslog.listen = "nope"; }, "syslog.listen: must be HOST:PORT"},
      {"TlsListenHostPort", [](Config& c) { c.syslog.tls_listen = "x:99999"; },
       "syslog.tls_listen: port must be a decimal number 0..65535"},
      {"TlsNeedsCert",
       [](Config& c) {
         c.syslog.tls_listen = "127.0.0.1:0";
         c.syslog.tls_key_file = "k";
       },
       "syslog.tls_cert_file: required with syslog.tls_listen"},
      {"TlsNeedsKey",
       [](Config& c) {
         c.syslog.tls_listen = "127.0.0.1:0";
         c.syslog.tls_cert_file = "c";
       },
       "syslog.tls_key_file: required with syslog.tls_listen"},
      {"MaxLineZero", [](Config& c) { c.syslog.max_line_bytes = 0; },
       "syslog.max_line_bytes: must be between 1 and 999999"},
      {"MaxLineSixDigits", [](Config& c) { c.syslog.max_line_bytes = 1'000'000; },
       "syslog.max_line_bytes: must be between 1 and 999999"},
      {"MaxConnections", [](Config& c) { c.syslog.max_connections = 0; },
       "syslog.max_connections: must be > 0"},
      {"IdleTimeout", [](Config& c) { c.syslog.idle_timeout_seconds = 0; },
       "syslog.idle_timeout_seconds: must be > 0"},
      {"InflatedLimit", [](Config& c) { c.limits.max_inflated_body_bytes = 0; },
       "limits.max_inflated_body_bytes: must be > 0"},
      // Issue 5 limits.
      {"HttpLineZero", [](Config& c) { c.limits.max_line_bytes = 0; },
       "limits.max_line_bytes: must be between 1 and 999999"},
      {"HttpLineSixDigits", [](Config& c) { c.limits.max_line_bytes = 1'000'000; },
       "limits.max_line_bytes: must be between 1 and 999999"},
      {"HeaderCount", [](Config& c) { c.limits.max_header_count = 0; },
       "limits.max_header_count: must be > 0"},
      {"FramesPerRequest", [](Config& c) { c.limits.max_frames_per_request = 0; },
       "limits.max_frames_per_request: must be > 0"},
      {"SeriesPerTenant", [](Config& c) { c.limits.max_series_per_tenant = 0; },
       "limits.max_series_per_tenant: must be > 0"},
      {"AuthDelay", [](Config& c) { c.limits.auth_failure_delay_ms = 0; },
       "limits.auth_failure_delay_ms: must be > 0"},
      {"RateLimitOff", [](Config& c) { c.limits.tenant_points_per_second = 0; }, ""},
      {"DrainTokenEmpty",
       [](Config& c) {
         c.syslog.drains = {{"", "a", 0, "", ""}};
       },
       "syslog.drains[0].token: must be 1..255 printable ASCII bytes without blanks (e.g. d.<uuid>)"},
      {"DrainTokenBlank",
       [](Config& c) {
         c.syslog.drains = {{"d. 1", "a", 0, "", ""}};
       },
       "syslog.drains[0].token: must be 1..255 printable ASCII bytes without blanks (e.g. d.<uuid>)"},
      {"DrainTokenUnique",
       [](Config& c) {
         c.syslog.drains = {{"d.1", "a", 0, "", ""}, {"d.1", "b", 0, "", ""}};
       },
       "syslog.drains[1].token: duplicate of syslog.drains[0].token"},
      {"DrainTenantKnown",
       [](Config& c) {
         c.syslog.drains = {{"d.1", "zz", 0, "", ""}};
       },
       "syslog.drains[0].tenant: no tenant \"zz\""},
      {"DrainResolution",
       [](Config& c) {
         c.syslog.drains = {{"d.1", "a", 7, "", ""}};
       },
       "syslog.drains[0].resolution_seconds: must be 0 (the tenant's default) or one of 1, 5, 10, 15, 20, "
       "30, "
       "60, 120, 300, 600, 900, 1800, 3600"},
      {"DrainValid",
       [](Config& c) {
         c.syslog.drains = {{"d.1", "a", 5, "p", "s"}, {"d.2", "b", 0, "", ""}};
       },
       ""},
  };
  for (const RuleCase& rule : cases) {
    SCOPED_TRACE(rule.rule);
    Config c = ValidConfig();
    rule.mutate(c);
    const absl::Status status = Validate(c);
    if (rule.message.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(Message(status), rule.message);
    }
  }
}

}  // namespace
}  // namespace drainmet::config
