// The stop signals, SIGTERM and SIGINT.
//
// Serve and review: blocked in the calling thread before any other thread starts (threads inherit
// the mask), so that the one thread that waits for them with sigwaitinfo/sigtimedwait gets them and no
// other thread is interrupted.
//
// Train: SageMaker stops a training job (and a managed-spot interruption ends one) with SIGTERM to the
// container's PID 1, tailor itself, and the kernel drops a signal without a handler sent to PID 1.
// With exit_on_stop_signals() the process ends at once (status 128 + signal, as the default action
// would), except inside a GracefulStop scope (the training loop): there a first signal only sets a
// flag that the loop reads after each step, to checkpoint and stop; a second one ends it at once.
#pragma once
#include <signal.h>

namespace tailor {

// Blocks SIGTERM and SIGINT in this thread; returns the set to wait on.
sigset_t block_stop_signals();

// Handlers for SIGTERM and SIGINT that end the process (outside a GracefulStop).
void exit_on_stop_signals();

// While one lives, a stop signal is recorded rather than ending the process.
class GracefulStop {
 public:
  GracefulStop();
  ~GracefulStop();
  GracefulStop(const GracefulStop&) = delete;
  GracefulStop& operator=(const GracefulStop&) = delete;
  static int requested();  // the signal received (SIGTERM, SIGINT), or 0
};

}  // namespace tailor
