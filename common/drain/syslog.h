#pragma once
// Syslog drains (FORMATS.md §2): Logplex connects to us over TCP (`syslog://`) or TLS
// (`syslog+tls://`) and writes RFC 6587 octet-counted RFC 5424 messages whose HOSTNAME is
// the drain token. The listener splits the stream, maps each token to its tenant and drain
// options (config `syslog.drains`), and hands the points to the same store as POST /logs.
//
// Reliability (RELIABILITY.md §3.2, docs/drains.md "Syslog drains"): a TCP stream has no
// acknowledgements, so syslog drains are best-effort. Bounds: a connection holds at most
// syslog.max_line_bytes + 64 KiB of unparsed bytes, and stops reading while its points
// are being stored (TCP backpressure instead of an unbounded queue). Stop() processes and
// stores every complete message already read before it returns.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/extract/extract.h"
#include "common/store/store.h"
#include "common/telemetry/metrics.h"

namespace drainmet::drain {

class DirectoryHolder;

/// The syslog drain map of one configuration: drain token -> tenant and drain options.
/// Immutable after construction; lookups are thread-safe.
class SyslogDrainIndex {
 public:
  struct Drain {
    std::size_t tenant_index = 0;   ///< Into config.tenants.
    extract::DrainOptions options;  ///< resolution 0 in the config: the tenant's default.
  };

  /// Indexes config.syslog.drains (a validated config; a drain whose tenant is missing is
  /// skipped).
  explicit SyslogDrainIndex(const config::Config& config);

  /// The drain of `token` (the HOSTNAME field as sent), or nullptr when unknown. The
  /// pointer lives as long as the index.
  const Drain* Find(std::string_view token) const;

 private:
  absl::flat_hash_map<std::string, Drain> drains_;
};

/// Splits a syslog byte stream into messages: RFC 6587 §3.4.1 octet counting
/// (`LEN SP MSG`, LEN 1-6 digits: the framing of an application/logplex-1 body, FORMATS.md
/// §1.3), and §3.4.2 non-transparent framing (a message ends at LF) for a message that
/// does not start with `DIGITS SP`. CR, LF and SP before a message are skipped. Messages
/// over `max_message_bytes` are skipped whole (also when they arrive over several reads).
/// Allocation-free. Not thread-safe: one per connection.
class SyslogSplitter {
 public:
  enum class Kind : std::uint8_t {
    kMessage,   ///< `message` is one complete message (octet-counted: the LEN bytes; a
                ///< line: without its LF). May be empty (LEN 0): a bad frame.
    kNeedMore,  ///< No complete message in what is left; read more.
    kTooLong,   ///< A message over the bound started here: it is being skipped (count it).
  };
  struct Result {
    Kind kind = Kind::kNeedMore;
    std::string_view message;  ///< kMessage only; points into `pending`.
    std::size_t consumed = 0;  ///< Bytes of `pending` used up (the caller drops them).
  };

  explicit SyslogSplitter(std::size_t max_message_bytes) : max_(max_message_bytes) {}

  /// The next message at the start of `pending` (the unconsumed bytes of the stream). With
  /// `end_of_stream`, a final line without LF is a message. Call again with the rest after
  /// `consumed` bytes until kNeedMore.
  Result Next(std::string_view pending, bool end_of_stream);

  /// True while the rest of an over-long message is being skipped.
  bool skipping() const { return skip_bytes_ > 0 || skip_line_; }

 private:
  std::size_t max_;
  std::size_t skip_bytes_ = 0;  // octet-counted message being skipped: bytes still to drop
  bool skip_line_ = false;      // line being skipped up to its LF
};

/// Listeners for syslog drains over TCP and TLS, off unless config.syslog.listen or
/// tls_listen is set. Thread-safe: Stop() may be called from any thread but its own.
class SyslogListener {
 public:
  /// Binds the syslog listeners of `holder->Get()->config.syslog` (the listener settings
  /// stay those of that copy for the listener's life; a later Set changes tenants and the
  /// drain map) with `threads` I/O threads (>= 1). The TLS certificate chain and key are
  /// read now (PEM). InvalidArgument for a bad address or an unreadable certificate or
  /// key; Unavailable when an address cannot be bound. With neither listener configured it
  /// returns a listener that listens on nothing. `store`, `clock`, `metrics` must outlive it.
  static absl::StatusOr<std::unique_ptr<SyslogListener>> Start(std::shared_ptr<DirectoryHolder> holder,
                                                               store::Store& store, const base::Clock& clock,
                                                               telemetry::Metrics& metrics, int threads);
  ~SyslogListener();  ///< Stops (10 s at most) if still running.
  SyslogListener(const SyslogListener&) = delete;
  SyslogListener& operator=(const SyslogListener&) = delete;

  /// Bound port of the TCP listener, 0 when off.
  std::uint16_t tcp_port() const;
  /// Bound port of the TLS listener, 0 when off.
  std::uint16_t tls_port() const;

  /// Graceful stop: closes the listeners, stops reading every connection, processes every
  /// complete message already read and waits (up to `timeout_ms`) until the store has
  /// taken their points (a store that refuses them is retried until the timeout; what is
  /// then left is counted store_unavailable), then closes the connections and joins the
  /// threads. An incomplete message at the end of what was read is counted bad_frame.
  /// Idempotent.
  void Stop(std::int64_t timeout_ms = 10000);

  /// Reads syslog.tls_cert_file and tls_key_file again (SIGHUP; http::TlsContextHolder):
  /// new TLS connections use the new pair, open ones keep theirs; a pair that does not
  /// load is logged, counted drainmet_tls_reloads_total{listener="syslog",result="error"}
  /// and returned, and the old pair stays. OK when the TLS listener is off. Thread-safe.
  absl::Status ReloadTls();

  class Impl;

 private:
  explicit SyslogListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drainmet::drain
