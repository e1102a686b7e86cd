#include "common/health/health_server.h"

#include <mutex>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "common/base/strings.h"
#include "common/config/config.h"
#include "common/telemetry/log.h"
#include "grpc/support/log.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace drainmet::health {

struct HealthServer::Impl {
  // With no other service, gRPC 1.51's builder refuses a server whose only service is the
  // built-in health one ("At least one of the completion queues must be frequently polled"):
  // a callback generic service (every unknown method answers UNIMPLEMENTED, as gRPC's own
  // would) gives it the callback machinery. Declared before `server`, which uses it.
  grpc::CallbackGenericService unimplemented;
  std::unique_ptr<grpc::Server> server;
  grpc::HealthCheckServiceInterface* health = nullptr;  // owned by `server`; never null
  std::vector<std::string> names;

  mutable std::mutex mu;
  bool serving ABSL_GUARDED_BY(mu) = false;
  bool health_shut ABSL_GUARDED_BY(mu) = false;
  bool stopped ABSL_GUARDED_BY(mu) = false;

  // gRPC calls are made under `mu`, so two setters never interleave their updates.
  void Apply(bool status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    health->SetServingStatus("", status);
    for (const std::string& name : names) health->SetServingStatus(name, status);
  }
};

HealthServer::HealthServer(std::unique_ptr<Impl> impl, std::uint16_t port, std::string address)
    : impl_(std::move(impl)), port_(port), address_(std::move(address)) {}

HealthServer::~HealthServer() { Stop(std::chrono::milliseconds(0)); }

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(HealthServerOptions options) {
  absl::StatusOr<config::HostPort> listen = config::ParseHostPort(options.listen);
  if (!listen.ok()) {
    return absl::InvalidArgumentError(
        base::Cat("gRPC listen address \"", options.listen, "\": ", std::string(listen.status().message())));
  }
  // Process-wide, read by every builder made afterwards; setting it again is harmless.
  grpc::EnableDefaultHealthCheckService(true);
  auto impl = std::make_unique<Impl>();
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &selected_port);
  for (grpc::Service* service : options.services) builder.RegisterService(service);
  if (options.services.empty()) builder.RegisterCallbackGenericService(&impl->unimplemented);
  // A taken port is an error, not a second server sharing it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (options.configure) options.configure(builder);
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || selected_port <= 0 || selected_port > 65535) {
    if (impl->server != nullptr) {
      impl->server->Shutdown();
      impl->server->Wait();
    }
    return absl::UnavailableError(base::Cat("cannot listen for gRPC on ", options.listen));
  }
  impl->health = impl->server->GetHealthCheckService();
  if (impl->health == nullptr) {
    // Only when something disabled the default health service after we enabled it.
    impl->server->Shutdown();
    impl->server->Wait();
    return absl::InternalError("gRPC server started without its health service");
  }
  impl->names = std::move(options.service_names);
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->serving = options.initially_serving;
    impl->Apply(options.initially_serving);
  }
  const auto port = static_cast<std::uint16_t>(selected_port);
  const bool v6 = listen->host.find(':') != std::string::npos;
  std::string address = base::Cat(v6 ? "[" : "", listen->host, v6 ? "]" : "", ":", port);
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(impl), port, std::move(address)));
}

void HealthServer::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->health_shut || impl_->serving == serving) return;
  impl_->serving = serving;
  impl_->Apply(serving);
}

bool HealthServer::serving() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->serving;
}

void HealthServer::ShutdownHealth() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->health_shut) return;
  impl_->health_shut = true;
  impl_->serving = false;
  impl_->health->Shutdown();  // NOT_SERVING for every name; later SetServingStatus ignored
}

void HealthServer::Stop(std::chrono::milliseconds grace) {
  ShutdownHealth();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
  impl_->server->Wait();
}

namespace {

void LogGrpc(gpr_log_func_args* args) {
  using telemetry::Level;
  const Level level = args->severity == GPR_LOG_SEVERITY_ERROR  ? Level::kWarn
                      : args->severity == GPR_LOG_SEVERITY_INFO ? Level::kInfo
                                                                : Level::kDebug;
  const std::string where =
      std::string(args->file != nullptr ? args->file : "?") + ":" + std::to_string(args->line);
  telemetry::Log(level, "grpc",
                 {{"message", args->message != nullptr ? args->message : ""}, {"where", where}});
}

}  // namespace

void RouteGrpcLogsToLogfmt() { gpr_set_log_function(LogGrpc); }

}  // namespace drainmet::health
