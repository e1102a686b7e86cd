// TLS on the drain listener (issue 5, Security): tls_cert_file / tls_key_file beside
// `listen`, both or neither (Validate), the pair checked at load (CheckFiles); and the
// receiver's restart-only keys.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/config/config.h"

namespace drainmet::config {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

EnvLookup NoEnv() {
  return [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

Config MinimalConfig() {
  Config c;
  Tenant t;
  t.id = "a";
  t.output = OutputKind::kStdout;
  c.tenants.push_back(t);
  return c;
}

TEST(ParseConfigTest, TlsKeysBesideListenAreOffByDefault) {
  absl::StatusOr<Config> defaults = ParseConfig("tenants: [{id: a, output: stdout}]", NoEnv());
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->tls_cert_file, "");
  EXPECT_EQ(defaults->tls_key_file, "");

  absl::StatusOr<Config> set = ParseConfig(
      "listen: 0.0.0.0:8443\ntls_cert_file: /etc/drainmet/tls/tls.crt\ntls_key_file: "
      "/etc/drainmet/tls/tls.key\n"
      "tenants: [{id: a, output: stdout}]",
      NoEnv());
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->tls_cert_file, "/etc/drainmet/tls/tls.crt");
  EXPECT_EQ(set->tls_key_file, "/etc/drainmet/tls/tls.key");
  // ParseConfig reads no files (the served copies of drainmet-config go through it).
}

TEST(ValidateTest, TlsCertAndKeyBothOrNeither) {
  struct Case {
    const char* name;
    std::string cert, key;
    std::string message;  // empty: valid
  };
  const Case cases[] = {
      {"neither", "", "", ""},
      {"both", "/c.pem", "/k.pem", ""},
      {"cert only", "/c.pem", "", "tls_key_file: required with tls_cert_file (TLS needs both)"},
      {"key only", "", "/k.pem", "tls_cert_file: required with tls_key_file (TLS needs both)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Config config = MinimalConfig();
    config.tls_cert_file = c.cert;
    config.tls_key_file = c.key;
    const absl::Status status = Validate(config);
    if (c.message.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(Message(status), c.message);
    }
  }
}

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl CLI";
    char pattern[] = "/tmp/drainmet-config-tls-XXXXXX";
    const char* dir = ::mkdtemp(pattern);
    ASSERT_NE(dir, nullptr);
    dir_ = dir;
    for (const char* name : {"one", "two"}) {
      const std::string command =
          std::string("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=") + name + " -keyout " +
          File(std::string(name) + ".key") + " -out " + File(std::string(name) + ".crt") + " >/dev/null 2>&1";
      ASSERT_EQ(std::system(command.c_str()), 0);
    }
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string File(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a config file naming `cert` and `key`; returns its path.
  std::string ConfigFile(const std::string& cert, const std::string& key) {
    const std::string path = File("drainmet.yaml");
    std::ofstream(path, std::ios::trunc)
        << "listen: 127.0.0.1:0\ntls_cert_file: " << cert << "\ntls_key_file: " << key
        << "\ntenants: [{id: a, output: stdout}]\n";
    return path;
  }

  std::filesystem::path dir_;
};

// LoadConfigFile then CheckFiles, as `drainmet run` and drainmet-receiver load their file.
absl::Status LoadAndCheck(const std::string& path) {
  absl::StatusOr<Config> config = LoadConfigFile(path, NoEnv());
  if (!config.ok()) return config.status();
  return CheckFiles(*config);
}

TEST_F(TlsFilesTest, CheckFilesLoadsThePairAndNamesTheKeyAtFault) {
  const std::string ok_path = ConfigFile(File("one.crt"), File("one.key"));
  absl::StatusOr<Config> ok = LoadConfigFile(ok_path, NoEnv());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->tls_cert_file, File("one.crt"));
  EXPECT_TRUE(CheckFiles(*ok).ok());
  // LoadConfigFile itself reads no TLS file: an outlet or drainmet-config loading the
  // same file does not need them.
  EXPECT_TRUE(LoadConfigFile(ConfigFile(File("none.crt"), File("none.key")), NoEnv()).ok());

  std::ofstream(File("garbage.crt")) << "not a certificate\n";
  struct Case {
    const char* name;
    std::string cert, key;
    std::string starts;    // start of the message
    std::string contains;  // also in the message
  };
  const Case cases[] = {
      {"missing certificate", File("none.crt"), File("one.key"),
       "tls_cert_file: cannot read " + File("none.crt"), "No such file or directory"},
      {"missing key", File("one.crt"), File("none.key"), "tls_key_file: cannot read " + File("none.key"),
       "No such file or directory"},
      {"not a certificate", File("garbage.crt"), File("one.key"), "tls_cert_file: " + File("garbage.crt"),
       "no usable PEM certificate chain"},
      {"key of another certificate", File("two.crt"), File("one.key"), "tls_key_file: " + File("one.key"),
       ""},
      {"certificate given as key", File("one.crt"), File("one.crt"), "tls_key_file: ", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const absl::Status status = LoadAndCheck(ConfigFile(c.cert, c.key));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(status), StartsWith(c.starts));
    EXPECT_THAT(Message(status), HasSubstr(c.contains));
  }
}

TEST_F(TlsFilesTest, UnreadableKeyIsNamed) {
  // A directory cannot be read as a file, whoever runs the test.
  const std::string dir = File("not-a-file.key");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  absl::Status status = LoadAndCheck(ConfigFile(File("one.crt"), dir));
  EXPECT_TRUE(absl::StartsWith(Message(status), "tls_key_file: cannot read " + dir + ": "))
      << Message(status);
  // Without permission (root reads any file, so only for other users).
  if (::geteuid() != 0) {
    ASSERT_EQ(::chmod(File("one.key").c_str(), 0), 0);
    status = LoadAndCheck(ConfigFile(File("one.crt"), File("one.key")));
    EXPECT_EQ(Message(status), "tls_key_file: cannot read " + File("one.key") + ": Permission denied");
  }
}

TEST(CheckFilesTest, OkWithoutTls) { EXPECT_TRUE(CheckFiles(MinimalConfig()).ok()); }

// A receiver following drainmet-config keeps what is fixed at start and says so
// (docs/configuration.md "Reloading"); the rest applies live.
TEST(ReceiverRestartOnlyChangesTest, NamesEveryKeyFixedAtStartAndNoLiveOne) {
  struct Case {
    const char* name;
    std::function<void(Config&)> change;
    std::string keys;  // empty: applied live
  };
  const std::vector<Case> cases = {
      {"same", [](Config&) {}, ""},
      {"listen", [](Config& c) { c.listen = "0.0.0.0:9999"; }, "listen"},
      {"tls cert", [](Config& c) { c.tls_cert_file = "/other.crt"; }, "tls_cert_file/tls_key_file"},
      {"tls key", [](Config& c) { c.tls_key_file = "/other.key"; }, "tls_cert_file/tls_key_file"},
      {"threads", [](Config& c) { c.threads = 3; }, "threads"},
      {"max_body_bytes", [](Config& c) { c.limits.max_body_bytes = 7; }, "limits.max_body_bytes"},
      {"max_header_bytes", [](Config& c) { c.limits.max_header_bytes = 7; }, "limits.max_header_bytes"},
      // The HTTP server's option, set once at Frontend::Start.
      {"max_header_count", [](Config& c) { c.limits.max_header_count = 7; }, "limits.max_header_count"},
      // The pre-aggregator's option, set once when the receiver starts.
      {"max_series_per_tenant", [](Config& c) { c.limits.max_series_per_tenant = 7; },
       "limits.max_series_per_tenant"},
      {"read_timeout", [](Config& c) { c.limits.read_timeout_seconds = 7; }, "limits.read_timeout_seconds"},
      {"dedupe window", [](Config& c) { c.limits.dedupe_window_seconds = 7; },
       "limits.dedupe_window_seconds"},
      {"redis", [](Config& c) { c.redis.shards = 7; }, "redis"},
      {"receiver", [](Config& c) { c.receiver.flush_interval_ms = 7; }, "receiver"},
      // The watermark publishers' pace and the entries' lifetime, fixed at start.
      {"watermark", [](Config& c) { c.receiver.watermark_ttl_ms = 5000; }, "receiver"},
      {"syslog listener", [](Config& c) { c.syslog.listen = "0.0.0.0:6514"; },
       "syslog (listeners and bounds)"},
      {"two at once",
       [](Config& c) {
         c.limits.max_header_count = 7;
         c.limits.max_series_per_tenant = 7;
       },
       "limits.max_header_count,limits.max_series_per_tenant"},
      // Read per request from the directory: live.
      {"max_frames_per_request", [](Config& c) { c.limits.max_frames_per_request = 7; }, ""},
      {"max_line_bytes", [](Config& c) { c.limits.max_line_bytes = 7; }, ""},
      {"tenant_points_per_second", [](Config& c) { c.limits.tenant_points_per_second = 7; }, ""},
      {"future_tolerance", [](Config& c) { c.limits.future_tolerance_seconds = 7; }, ""},
      {"auth delay", [](Config& c) { c.limits.auth_failure_delay_ms = 7; }, ""},
      {"log_level", [](Config& c) { c.log_level = "debug"; }, ""},
      {"tenants", [](Config& c) { c.tenants[0].default_resolution_seconds = 10; }, ""},
      {"syslog drains",
       [](Config& c) {
         c.syslog.drains = {{"d.1", "a", 0, "", ""}};
       },
       ""},
  };
  const Config now = MinimalConfig();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Config next = now;
    c.change(next);
    EXPECT_EQ(ReceiverRestartOnlyChanges(now, next), c.keys);
    // Keeping the restart-only values leaves no difference, and the live ones applied.
    Config kept = next;
    KeepReceiverRestartOnly(now, kept);
    EXPECT_EQ(ReceiverRestartOnlyChanges(now, kept), "");
    if (c.keys.empty()) {
      EXPECT_EQ(kept, next);
    }
  }
}

}  // namespace
}  // namespace drainmet::config
