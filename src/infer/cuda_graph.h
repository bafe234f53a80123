// One captured CUDA graph: a function of fixed shapes and fixed tensor addresses recorded once and
// replayed as a single launch, so libtorch's per-operation dispatch (10-30 us per kernel on the
// host, thousands of kernels per decoding step or training step) leaves the critical path.
// Compiles against a CPU-only libtorch too, where graphs are unavailable: then `capture` merely
// remembers the function and `replay` calls it, so the same code path runs (and is tested) on the CPU.
#pragma once
#include <functional>
#include <memory>

#include <c10/core/Device.h>

namespace tailor {

// A CUDA libtorch and a visible GPU; TAILOR_CUDA_GRAPHS=0 in the environment turns graphs off.
bool cuda_graphs_available();

// Waits until the work queued so far on the current stream of `dev` has finished, at most `seconds`:
// false when it has not by then (the work stays queued). A CPU device has nothing queued: true.
bool device_done_within(const torch::Device& dev, double seconds);

class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // use_graph: run `fn` `warmups` times on a side stream (lazy handles, kernel choices, autograd
  // buffers), then capture one call of it. Otherwise only remember it. Everything `fn` reads or
  // writes between replays must be tensors allocated before capture (their addresses are baked in).
  void capture(std::function<void()> fn, bool use_graph, int warmups = 2);
  void replay();  // on the current stream
  bool is_graph() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tailor
