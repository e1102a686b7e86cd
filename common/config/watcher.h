#pragma once
// The client side of the config service: a receiver or outlet keeps the last good
// configuration served by drainmet-config (proto/drainmet/v1/config.proto, Watch), and
// keeps using it while the service is unreachable (DESIGN.md "config service").
// Library drainmet::config_client; gRPC stays inside watcher.cpp.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/config.h"

namespace drainmet::config {

/// A configuration as served: the validated model, its snapshot version and content hash.
struct ServedConfig {
  std::shared_ptr<const Config> config;  ///< Never null in a ServedConfig handed out.
  /// ConfigSnapshot.version, or 0 for the initial copy read from a local file.
  std::uint64_t version = 0;
  std::string content_hash;  ///< ConfigSnapshot.content_hash form ("sha256:" + 64 hex).
};

struct ConfigWatcherOptions {
  /// gRPC target of drainmet-config, e.g. "127.0.0.1:7070" or "dns:///drainmet-config:7070".
  /// Required. Plaintext: the service is reachable only inside the cluster.
  std::string target;
  /// A config file (config.h's format) loaded at Start as the initial copy, served until
  /// the service answers; empty: none (HasConfig() is false until the first snapshot).
  std::string initial_file;
  /// Resolves `api_token_env` of `initial_file`; unset means ProcessEnv().
  EnvLookup env;
  /// Reconnection after the stream ends or the service cannot be reached: the first wait
  /// is `initial_backoff`, doubled after each failure up to `max_backoff`, each with
  /// ±20 % jitter; reset once a snapshot arrives. Both > 0, initial <= max.
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  /// Called on the watcher's thread after each change of content (a new content_hash),
  /// with the new copy; not for a snapshot equal to the current one. Optional. Must not
  /// call Stop() nor block for long (it delays the next update).
  std::function<void(const ServedConfig&)> on_change;
};

/// Keeps the last good configuration from the config service's Watch stream.
///
/// One background thread holds a Watch stream open and reconnects with backoff whenever
/// it ends. A snapshot that fails FromProto (invalid) is logged and ignored; the copy held
/// is replaced only by a valid snapshot of different content, and never dropped: while the
/// service is down the last good copy keeps being served. Any valid snapshot is taken,
/// whatever its version (after a failover to another replica, versions may differ; the
/// content hash tells whether anything changed). Logs (logfmt) a connection loss once per
/// outage at warn, each change of content at info; never a token.
///
/// Thread-safety: every method is thread-safe. Current() is cheap (a mutex and a
/// shared_ptr copy); hold the returned pointer for the duration of one request.
class ConfigWatcher {
 public:
  /// Validates the options, loads `initial_file` if set (its error is returned as is:
  /// NotFound, InvalidArgument naming the key, ...), and starts watching. Does not wait
  /// for the service: see WaitForConfig.
  static absl::StatusOr<std::unique_ptr<ConfigWatcher>> Start(ConfigWatcherOptions options);

  /// Stop()s.
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  /// The configuration held now; nullptr before the first one (no initial file and no
  /// snapshot yet).
  std::shared_ptr<const Config> Current() const;

  /// The configuration held now with its version and hash; `config` is null before the
  /// first one.
  ServedConfig CurrentServed() const;

  /// Whether a configuration is held (Current() != nullptr).
  bool HasConfig() const;

  /// Whether a Watch stream is open and has delivered a snapshot (valid or not).
  bool Connected() const;

  /// OK while connected and the last snapshot received was valid; otherwise the most
  /// recent failure: how the stream ended (UNAVAILABLE "config service 127.0.0.1:7070:
  /// ...", or the RPC's code) or an invalid snapshot (InvalidArgument "config snapshot N
  /// rejected: ..."). Before the first connection: UNAVAILABLE "not connected yet".
  absl::Status LastError() const;

  /// Blocks until a configuration with version >= `min_version` is held (0: any, the
  /// initial file's included), or `timeout` passes, or Stop(). True if held.
  bool WaitForVersion(std::uint64_t min_version, std::chrono::milliseconds timeout) const;

  /// Blocks until any configuration is held, or `timeout`; WaitForVersion(0, timeout).
  bool WaitForConfig(std::chrono::milliseconds timeout) const { return WaitForVersion(0, timeout); }

  /// Cancels the stream and joins the thread (within about one RPC cancellation). The
  /// copy held stays readable. Idempotent; must not be called from on_change.
  void Stop();

 private:
  struct Impl;
  explicit ConfigWatcher(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace drainmet::config
