#pragma once
// The drain endpoint's request logic (POST /logs), shared by the standalone service and
// the receiver: method and path, tenant from Basic-auth credentials, drain options from
// the query, de-duplication by Logplex-Frame-Id, parsing, and the store's answer.

#include <memory>
#include <optional>
#include <string_view>
#include <variant>

#include "common/base/clock.h"
#include "common/config/auth.h"
#include "common/config/config.h"
#include "common/http/server.h"
#include "common/store/store.h"
#include "common/telemetry/metrics.h"

namespace drainmet::drain {

/// The configuration a handler serves: immutable, shared.
struct TenantDirectory {
  explicit TenantDirectory(config::Config c) : config(std::move(c)), tokens(config) {}
  const config::Config config;
  const config::TokenIndex tokens;
};

/// Answers drain requests. Thread-safe: Handle may run on many server threads at once
/// (the store and metrics are thread-safe; the directory is immutable).
class DrainHandler {
 public:
  DrainHandler(std::shared_ptr<const TenantDirectory> directory, store::Store& store,
               const base::Clock& clock, telemetry::Metrics& metrics);

  /// Checks what the headers decide, before the body is read: 405 for a method other than
  /// POST, 401 (with WWW-Authenticate) for missing or unknown credentials, 400 naming the
  /// option for a bad drain option (FORMATS.md §1.6: only auth failures may be final, and
  /// a bad option is a configuration error the operator must see). std::nullopt: go on.
  std::optional<http::Response> CheckHeaders(const http::Request& request) const;

  /// Processes a whole request: 204 when its points are in the store (or it is a retried
  /// frame id), 503 with Retry-After when the store is unavailable, else as CheckHeaders.
  /// Malformed frames inside a good request still answer 204 (SEMANTICS §1.2).
  http::Response Handle(const http::Request& request);

 private:
  struct Resolved {
    std::size_t tenant_index = 0;
    extract::DrainOptions options;
  };
  /// Auth + options; a response when the request must be refused.
  std::variant<Resolved, http::Response> Resolve(const http::Request& request) const;

  std::shared_ptr<const TenantDirectory> directory_;
  store::Store& store_;
  const base::Clock& clock_;
  telemetry::Metrics& metrics_;
};

/// The path drains POST to.
inline constexpr std::string_view kDrainPath = "/logs";

}  // namespace drainmet::drain
