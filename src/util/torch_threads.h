#pragma once
namespace tailor {
// libtorch starts with one intra-op thread on some machines; use every core unless
// TAILOR_THREADS says otherwise. Call once at the start of any command that runs the model.
void init_torch_threads();
}  // namespace tailor
