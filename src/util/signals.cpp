#include "util/signals.h"

#include <pthread.h>
#include <unistd.h>

namespace tailor {

namespace {
volatile sig_atomic_t g_graceful = 0;  // inside a GracefulStop
volatile sig_atomic_t g_stop = 0;      // the signal a GracefulStop recorded

void on_stop_signal(int sig) {
  if (g_graceful && !g_stop) {
    g_stop = sig;
    return;
  }
  ::_exit(128 + sig);  // async-signal-safe; what the default action reports, without a core
}
}  // namespace

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void exit_on_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

GracefulStop::GracefulStop() {
  g_stop = 0;
  g_graceful = 1;
}

GracefulStop::~GracefulStop() { g_graceful = 0; }

int GracefulStop::requested() { return g_stop; }

}  // namespace tailor
