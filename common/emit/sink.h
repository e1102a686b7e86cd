#pragma once
// Where a tenant's Librato request bodies go: the API (LibratoSink, libcurl) or stdout
// (StdoutSink: the embedded default's output, one request body per line). Bodies are
// delivered one at a time (Post) or several at once (Start / Poll: LibratoSink keeps them
// in flight concurrently over keep-alive connections, libcurl multi).

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "common/config/config.h"
#include "common/librato/client.h"

namespace drainmet::emit {

/// Delivers request bodies of tenants (indexes into config.tenants). Implementations are
/// used by one outlet thread at a time and must not throw.
///
/// Two ways to deliver: Post blocks until the answer; Start begins a delivery whose result
/// Poll returns later, tagged, so that several bodies may be in flight at once. The base
/// class implements Start by a blocking Post (the result is ready at the next Poll), so a
/// sink that only overrides Post works both ways.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual librato::PostResult Post(std::size_t tenant_index, std::string_view json_body) = 0;
  /// The output's name for metrics: "librato" or "stdout".
  virtual std::string_view OutputName(std::size_t tenant_index) const = 0;

  /// Begins delivering `json_body` for `tenant_index`; its result comes out of Poll with
  /// `tag`. The bytes must stay valid and unchanged until then, or until CancelAll
  /// returned. The caller bounds how many are in flight.
  virtual void Start(std::size_t tenant_index, std::string_view json_body, std::uint64_t tag);
  /// Appends the results of finished deliveries to `out`; when none is finished and some
  /// are in flight, waits up to `timeout` for one. Returns at once when nothing is in
  /// flight.
  virtual void Poll(std::chrono::milliseconds timeout, std::vector<librato::Completion>& out);
  /// Abandons every delivery in flight (a request already sent may still reach the API);
  /// their results are never returned.
  virtual void CancelAll();
  /// Deliveries started and not yet returned by Poll.
  virtual std::size_t InFlight() const { return ready_.size(); }

 private:
  std::vector<librato::Completion> ready_;  // results of the base Start, for Poll
};

/// Posts to each tenant's Librato URL with its credentials: Post over one keep-alive
/// client per tenant; Start/Poll over one libcurl multi handle whose connections (kept
/// alive, at most one per request in flight) are shared by the tenants' requests. Both
/// made on first use. Not thread-safe: one outlet thread.
class LibratoSink final : public Sink {
 public:
  explicit LibratoSink(const config::Config& config);
  librato::PostResult Post(std::size_t tenant_index, std::string_view json_body) override;
  std::string_view OutputName(std::size_t) const override { return "librato"; }
  void Start(std::size_t tenant_index, std::string_view json_body, std::uint64_t tag) override;
  void Poll(std::chrono::milliseconds timeout, std::vector<librato::Completion>& out) override;
  void CancelAll() override;
  std::size_t InFlight() const override;

 private:
  librato::ClientOptions Options(std::size_t tenant_index) const;
  const config::Config& config_;
  std::vector<std::unique_ptr<librato::Client>> clients_;
  std::unique_ptr<librato::MultiClient> multi_;
  std::vector<std::size_t> endpoints_;       // per tenant: 1 + its MultiClient endpoint; 0: none yet
  std::vector<librato::Completion> failed_;  // Start failures, returned by the next Poll
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

/// Routes each tenant to its output kind (config::OutputKind): stdout or Librato. Start
/// writes a stdout tenant's body at once (its result waits for Poll) and hands a Librato
/// tenant's body to LibratoSink::Start.
class TenantSink final : public Sink {
 public:
  explicit TenantSink(const config::Config& config, std::FILE* out = stdout);
  librato::PostResult Post(std::size_t tenant_index, std::string_view json_body) override;
  std::string_view OutputName(std::size_t tenant_index) const override;
  void Start(std::size_t tenant_index, std::string_view json_body, std::uint64_t tag) override;
  void Poll(std::chrono::milliseconds timeout, std::vector<librato::Completion>& out) override;
  void CancelAll() override;
  std::size_t InFlight() const override;

 private:
  const config::Config& config_;
  LibratoSink librato_;
  StdoutSink stdout_;  // its Start/Poll (the base class's) hold the stdout tenants' results
};

}  // namespace drainmet::emit
