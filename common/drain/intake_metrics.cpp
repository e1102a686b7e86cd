#include "common/drain/intake_metrics.h"

namespace drainmet::drain {
namespace {

prometheus::Family<prometheus::Counter>& InputRejected(prometheus::Registry& r) {
  // Same name and help as telemetry::Metrics: the registry merges them into one family.
  return prometheus::BuildCounter()
      .Name("drainmet_input_rejected_total")
      .Help(
          "Frames, values and names rejected while parsing, by reason "
          "(SEMANTICS 1.2, 1.4, 1.5, 3.3, 4.1, 5.1). bad_timestamp frames are "
          "still used, at the receive time.")
      .Register(r);
}

prometheus::Family<prometheus::Counter>& PointsDropped(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("drainmet_points_dropped_total")
      .Help(
          "Points dropped before reaching a bucket, by reason (SEMANTICS 6.5; "
          "series_limit: the store's open-bucket bound).")
      .Register(r);
}

prometheus::Family<prometheus::Counter>& Connections(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("drainmet_syslog_connections_total")
      .Help("Syslog drain connections by transport (tcp, tls) and result (accepted, refused).")
      .Register(r);
}

prometheus::Gauge& OpenConnections(prometheus::Registry& r) {
  return prometheus::BuildGauge()
      .Name("drainmet_syslog_open_connections")
      .Help("Syslog drain connections open now.")
      .Register(r)
      .Add({});
}

}  // namespace

IntakeMetrics::IntakeMetrics(telemetry::Metrics& metrics)
    : inflated_too_large(InputRejected(metrics.registry()).Add({{"reason", "inflated_too_large"}})),
      bad_gzip(InputRejected(metrics.registry()).Add({{"reason", "bad_gzip"}})),
      unsupported_encoding(InputRejected(metrics.registry()).Add({{"reason", "unsupported_encoding"}})),
      unknown_drain_token(InputRejected(metrics.registry()).Add({{"reason", "unknown_drain_token"}})),
      line_too_long(InputRejected(metrics.registry()).Add({{"reason", "line_too_long"}})),
      rate_limited(InputRejected(metrics.registry()).Add({{"reason", "rate_limited"}})),
      too_many_frames(InputRejected(metrics.registry()).Add({{"reason", "too_many_frames"}})),
      auth_delayed(InputRejected(metrics.registry()).Add({{"reason", "auth_delayed"}})),
      store_unavailable(PointsDropped(metrics.registry()).Add({{"reason", "store_unavailable"}})),
      tcp_accepted(Connections(metrics.registry()).Add({{"transport", "tcp"}, {"result", "accepted"}})),
      tcp_refused(Connections(metrics.registry()).Add({{"transport", "tcp"}, {"result", "refused"}})),
      tls_accepted(Connections(metrics.registry()).Add({{"transport", "tls"}, {"result", "accepted"}})),
      tls_refused(Connections(metrics.registry()).Add({{"transport", "tls"}, {"result", "refused"}})),
      open_connections(OpenConnections(metrics.registry())) {}

}  // namespace drainmet::drain
