#pragma once
// Conversion between the configuration model (config.h) and the config service's wire
// form, drainmet.v1.ConfigSnapshot (proto/drainmet/v1/config.proto, the reference of every
// field). Used by drainmet-config to serve a loaded file and by ConfigWatcher (watcher.h)
// in the receivers and outlets. A library of its own (drainmet::config_snapshot) so that
// the standalone binary does not link protobuf's config messages nor gRPC.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "proto/drainmet/v1/config.pb.h"

namespace drainmet::config {

/// The snapshot of `config` (every field and section set, tenants in order), with
/// `version` and its ContentHash. `config` should be valid (Validate); it is copied as is.
/// The snapshot holds the tenants' API tokens: never log it. Pure; thread-safe.
v1::ConfigSnapshot ToProto(const Config& config, std::uint64_t version);

/// "sha256:" + 64 lowercase hex digits: SHA-256 of `snapshot` serialized deterministically
/// with `version` = 0 and `content_hash` empty (config.proto, ConfigSnapshot.content_hash).
/// Equal for snapshots of equal configurations, whatever their versions. Pure; thread-safe.
std::string ContentHash(const v1::ConfigSnapshot& snapshot);

/// The configuration in `snapshot`, validated with Validate. An absent section message
/// (limits, outlet, receiver, redis, a tenant's librato) takes that section's defaults;
/// present fields are taken as they are. `version` and `content_hash` are not checked.
/// InvalidArgument naming the field path ("tenants[0].output: unknown output kind 7",
/// or Validate's message). Pure; thread-safe.
absl::StatusOr<Config> FromProto(const v1::ConfigSnapshot& snapshot);

}  // namespace drainmet::config
