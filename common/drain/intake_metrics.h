#pragma once
// Counters of the drain intake beyond SEMANTICS §8: bodies refused for their encoding
// (HTTP senders, FORMATS.md §1.8) and the syslog listeners' problems (FORMATS.md §2).
// Added as new `reason` labels of the families telemetry::Metrics owns, plus the syslog
// connection families, registered on the same registry.

#include <cstdint>
#include <string_view>

#include "common/telemetry/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace drainmet::drain {

/// The intake counters of one process. Thread-safe (prometheus-cpp metrics are atomic).
/// Several instances over one telemetry::Metrics share the same series.
class IntakeMetrics {
 public:
  /// Registers (or finds) the families on `metrics.registry()`; `metrics` must outlive this.
  explicit IntakeMetrics(telemetry::Metrics& metrics);

  /// drainmet_input_rejected_total{reason="inflated_too_large"}: a gzip body over
  /// limits.max_inflated_body_bytes once inflated (answered 413).
  prometheus::Counter& inflated_too_large;
  /// drainmet_input_rejected_total{reason="bad_gzip"}: a body sent as gzip that is not
  /// (corrupt or truncated; answered 400).
  prometheus::Counter& bad_gzip;
  /// drainmet_input_rejected_total{reason="unsupported_encoding"}: another
  /// Content-Encoding than gzip or identity (answered 415).
  prometheus::Counter& unsupported_encoding;
  /// drainmet_input_rejected_total{reason="unknown_drain_token"}: syslog messages whose
  /// HOSTNAME is not a configured drain token (dropped; the connection stays open).
  prometheus::Counter& unknown_drain_token;
  /// drainmet_input_rejected_total{reason="line_too_long"}: syslog messages longer than
  /// syslog.max_line_bytes (skipped).
  prometheus::Counter& line_too_long;
  /// drainmet_input_rejected_total{reason="rate_limited"}: HTTP drain requests answered
  /// 429 for limits.tenant_points_per_second (their points are not stored; Logplex retries).
  prometheus::Counter& rate_limited;
  /// drainmet_input_rejected_total{reason="too_many_frames"}: frames of an HTTP drain
  /// request beyond limits.max_frames_per_request (skipped; the first ones are used).
  prometheus::Counter& too_many_frames;
  /// drainmet_input_rejected_total{reason="auth_delayed"}: 401 answers delayed because
  /// their address failed authentication too often (limits.auth_failures_before_delay).
  prometheus::Counter& auth_delayed;
  /// drainmet_points_dropped_total{reason="store_unavailable"}: syslog points read but
  /// refused by the store and given up at shutdown (no acknowledgement exists to retry).
  prometheus::Counter& store_unavailable;
  /// drainmet_syslog_connections_total{transport="tcp"|"tls",result="accepted"|"refused"}:
  /// refused = over syslog.max_connections or a failed TLS handshake.
  prometheus::Counter& tcp_accepted;
  prometheus::Counter& tcp_refused;
  prometheus::Counter& tls_accepted;
  prometheus::Counter& tls_refused;
  /// drainmet_syslog_open_connections: syslog connections open now (both transports).
  prometheus::Gauge& open_connections;
};

}  // namespace drainmet::drain
