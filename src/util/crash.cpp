#include "util/crash.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <ucontext.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cstdint>
#include <initializer_list>

namespace tailor {

namespace {

void write_str(const char* s) {
  ssize_t r = ::write(2, s, strlen(s));
  (void)r;
}

void write_num(unsigned long long v, int base) {
  char rev[24];
  int i = 0;
  do {
    rev[i++] = "0123456789abcdef"[v % static_cast<unsigned>(base)];
    v /= static_cast<unsigned>(base);
  } while (v > 0 && i < 24);
  char out[26];
  int j = 0;
  if (base == 16) {
    out[j++] = '0';
    out[j++] = 'x';
  }
  while (i > 0) out[j++] = rev[--i];
  out[j] = '\0';
  write_str(out);
}

// "lib+0xoffset (symbol)" for a code address, from the dynamic symbol tables.
void write_where(void* pc) {
  Dl_info info;
  if (dladdr(pc, &info) && info.dli_fname) {
    write_str(info.dli_fname);
    write_str("+");
    write_num(reinterpret_cast<uintptr_t>(pc) - reinterpret_cast<uintptr_t>(info.dli_fbase), 16);
    if (info.dli_sname) {
      write_str(" (");
      write_str(info.dli_sname);
      write_str(")");
    }
  } else {
    write_num(reinterpret_cast<uintptr_t>(pc), 16);
  }
  write_str("\n");
}

void on_fatal_signal(int sig, siginfo_t* si, void* context) {
  write_str("\ntailor: fatal signal ");
  write_num(static_cast<unsigned>(sig), 10);
  write_str(" (");
  write_str(strsignal(sig));  // not formally async-signal-safe, but a table lookup in glibc
  write_str(") at address ");
  write_num(reinterpret_cast<uintptr_t>(si->si_addr), 16);
  write_str("\n  in ");
#if defined(__x86_64__)
  const ucontext_t* uc = static_cast<const ucontext_t*>(context);
  write_where(reinterpret_cast<void*>(uc->uc_mcontext.gregs[REG_RIP]));
  if (uc->uc_mcontext.gregs[REG_RIP] == 0) {  // a call through a null pointer: the caller is on top of the stack
    write_str("  called from ");
    write_where(*reinterpret_cast<void* const*>(uc->uc_mcontext.gregs[REG_RSP]));
  }
#else
  (void)context;
  write_str("?\n");
#endif
  write_str("stack:\n");
  void* frames[64];
  int count = backtrace(frames, 64);
  for (int i = 0; i < count; ++i) {
    write_str("  ");
    write_where(frames[i]);
  }
  raise(sig);  // SA_RESETHAND put the default action back: die of the same signal
}

}  // namespace

void install_crash_handler() {
  // backtrace() loads libgcc on first use, which is not safe inside a handler: warm it up here.
  void* warm[1];
  backtrace(warm, 1);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
    sigaction(sig, &sa, nullptr);
  }
}

}  // namespace tailor
