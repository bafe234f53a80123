// A crash names itself: on SIGSEGV, SIGBUS, SIGFPE or SIGILL tailor writes the signal and a stack
// trace to stderr (async-signal-safe calls only) and then dies of the same signal, so exit statuses
// and core dumps are as without it. Outputs are written atomically elsewhere, so a crash loses
// nothing already saved; this only says where it happened.
#pragma once
namespace tailor {
void install_crash_handler();
}  // namespace tailor
