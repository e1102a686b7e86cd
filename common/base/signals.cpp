#include "common/base/signals.h"

#include <pthread.h>
#include <signal.h>

namespace drainmet::base {
namespace {

sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

sigset_t StopAndReloadSignals() {
  sigset_t signals = StopSignals();
  sigaddset(&signals, SIGHUP);
  return signals;
}

const char* StopSignalName(int signal_number) { return signal_number == SIGTERM ? "SIGTERM" : "SIGINT"; }

}  // namespace

void BlockStopSignals() {
  const sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

void BlockStopAndReloadSignals() {
  const sigset_t signals = StopAndReloadSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

const char* WaitForStopSignal() {
  const sigset_t signals = StopSignals();
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  return StopSignalName(signal_number);
}

const char* WaitForStopSignal(const std::function<void()>& on_reload) {
  const sigset_t signals = StopAndReloadSignals();
  for (;;) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number != SIGHUP) return StopSignalName(signal_number);
    if (on_reload) on_reload();
  }
}

}  // namespace drainmet::base
