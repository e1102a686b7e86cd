#pragma once
// SIGTERM/SIGINT handling shared by every binary's main(): block the stop signals before
// any thread starts, then wait for one on the main thread.

namespace drainmet::base {

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts later.
/// Call first thing in main().
void BlockStopSignals();

/// Waits until SIGTERM or SIGINT arrives (they must be blocked); returns its name.
const char* WaitForStopSignal();

}  // namespace drainmet::base
