#pragma once
// Early-return helpers for absl::Status / absl::StatusOr, as in Envoy and Abseil's
// internal macros. Used by every library of drainmet.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DRAINMET_STATUS_CONCAT_INNER_(a, b) a##b
#define DRAINMET_STATUS_CONCAT_(a, b) DRAINMET_STATUS_CONCAT_INNER_(a, b)

/// Evaluates `expr` (an absl::Status); returns it from the caller when not OK.
#define DRAINMET_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::absl::Status drainmet_status_ = (expr);            \
    if (!drainmet_status_.ok()) return drainmet_status_; \
  } while (0)

#define DRAINMET_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                    \
  if (!tmp.ok()) return tmp.status();                    \
  lhs = *std::move(tmp)

/// `DRAINMET_ASSIGN_OR_RETURN(T x, MakeT());` declares x from an absl::StatusOr<T>,
/// returning the status from the caller when it is not OK.
#define DRAINMET_ASSIGN_OR_RETURN(lhs, rexpr) \
  DRAINMET_ASSIGN_OR_RETURN_IMPL_(DRAINMET_STATUS_CONCAT_(drainmet_statusor_, __LINE__), lhs, rexpr)
