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

// The caching allocator's view of a GPU's memory, in bytes (zeros on the CPU): allocated now, held
// from the driver now, and the largest of each since the process started.
struct DeviceMemory {
  int64_t allocated = 0, reserved = 0, peak_allocated = 0, peak_reserved = 0;
};
DeviceMemory device_memory(const torch::Device& dev);
// Gives the blocks the caching allocator holds but nothing uses back to the driver, so that one
// phase's transient memory (loading, the feature cache, a graph's warm-ups) is not held beside the
// next phase's.
void release_unused_device_memory();

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
