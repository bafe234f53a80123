#pragma once
namespace tailor {
// OpenBLAS and libgomp read their settings from the environment when they load, before main():
// OpenBLAS misdetects some virtual CPUs (e.g. QEMU's "Intel Xeon Processor") as Prescott and runs SSE3
// kernels, and libgomp spin-waits between parallel regions, which on a busy 2-core machine burns
// half the time (measured on the tiny model's training: 98 -> 238 samples/s). When neither is set
// by the user, this sets OPENBLAS_CORETYPE from the CPU's features and OMP_WAIT_POLICY=PASSIVE and
// re-executes the program once (argv from /proc/self/cmdline). Call it first thing in main().
void ensure_runtime_env();
}  // namespace tailor
