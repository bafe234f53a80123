// The stop signals of the long-running commands (serve, review): SIGTERM and SIGINT, blocked in the
// calling thread before any other thread starts (threads inherit the mask), so that the one thread
// that waits for them with sigwaitinfo/sigtimedwait gets them and no other thread is interrupted.
#pragma once
#include <signal.h>

namespace tailor {

// Blocks SIGTERM and SIGINT in this thread; returns the set to wait on.
sigset_t block_stop_signals();

}  // namespace tailor
