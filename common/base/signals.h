#pragma once
// Signal handling shared by every binary's main(): block the signals before any thread
// starts, then wait for them on the main thread (sigwait: no async-signal-safety rules).
// SIGTERM/SIGINT stop the process gracefully; SIGHUP (for the binaries that ask for it)
// reloads what can be reloaded in place (the TLS certificates).

#include <functional>

namespace drainmet::base {

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts later.
/// Call first thing in main().
void BlockStopSignals();

/// BlockStopSignals plus SIGHUP: for binaries that wait with the on_reload overload below
/// (a blocked SIGHUP nobody waits for stays pending: the process ignores it).
void BlockStopAndReloadSignals();

/// Waits until SIGTERM or SIGINT arrives (they must be blocked); returns its name
/// ("SIGTERM" or "SIGINT").
const char* WaitForStopSignal();

/// As above, and calls `on_reload` on the calling thread for each SIGHUP that arrives
/// meanwhile (SIGHUP must be blocked too: BlockStopAndReloadSignals). SIGHUPs that arrive
/// while `on_reload` runs are merged into one more call (POSIX keeps one pending signal).
/// `on_reload` may be empty (SIGHUP is then only consumed).
const char* WaitForStopSignal(const std::function<void()>& on_reload);

}  // namespace drainmet::base
