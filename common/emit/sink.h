#pragma once
// Where a tenant's Librato request bodies go: the API (LibratoSink, libcurl) or stdout
// (StdoutSink: the embedded default's output, one request body per line).

#include <cstdio>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "common/config/config.h"
#include "common/librato/client.h"

namespace drainmet::emit {

/// Delivers one request body of one tenant. Implementations are used by one outlet
/// thread at a time and must not throw.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual librato::PostResult Post(std::size_t tenant_index, std::string_view json_body) = 0;
  /// The output's name for metrics: "librato" or "stdout".
  virtual std::string_view OutputName(std::size_t tenant_index) const = 0;
};

/// Posts to each tenant's Librato URL with its credentials (one keep-alive client per
/// tenant, created on first use). Not thread-safe: one outlet thread.
class LibratoSink final : public Sink {
 public:
  explicit LibratoSink(const config::Config& config);
  librato::PostResult Post(std::size_t tenant_index, std::string_view json_body) override;
  std::string_view OutputName(std::size_t) const override { return "librato"; }

 private:
  const config::Config& config_;
  std::vector<std::unique_ptr<librato::Client>> clients_;
};

/// Writes each body as one line to a FILE* (stdout by default) and flushes. Thread-safe.
class StdoutSink final : public Sink {
 public:
  explicit StdoutSink(std::FILE* out = stdout) : out_(out) {}
  librato::PostResult Post(std::size_t tenant_index, std::string_view json_body) override;
  std::string_view OutputName(std::size_t) const override { return "stdout"; }

 private:
  std::FILE* out_;
  std::mutex mu_;
};

/// Routes each tenant to its output kind (config::OutputKind): stdout or Librato.
class TenantSink final : public Sink {
 public:
  explicit TenantSink(const config::Config& config, std::FILE* out = stdout);
  librato::PostResult Post(std::size_t tenant_index, std::string_view json_body) override;
  std::string_view OutputName(std::size_t tenant_index) const override;

 private:
  const config::Config& config_;
  LibratoSink librato_;
  StdoutSink stdout_;
};

}  // namespace drainmet::emit
