#include "infer/cuda_graph.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "util/error.h"

#ifdef TAILOR_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace tailor {

bool cuda_graphs_available() {
  const char* env = std::getenv("TAILOR_CUDA_GRAPHS");
  if (env && std::strcmp(env, "0") == 0) return false;
#ifdef TAILOR_CUDA
  return c10::cuda::device_count() > 0;
#else
  return false;
#endif
}

bool device_done_within(const torch::Device& dev, double seconds) {
#ifdef TAILOR_CUDA
  if (!dev.is_cuda()) return true;
  at::cuda::CUDAEvent done;
  done.record(c10::cuda::getCurrentCUDAStream(dev.index()));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  // Polled: a blocking wait could not give up. 50 us between polls is far below a training step.
  while (!done.query()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
#else
  (void)dev;
  (void)seconds;
#endif
  return true;
}

DeviceMemory device_memory(const torch::Device& dev) {
  DeviceMemory m;
#ifdef TAILOR_CUDA
  if (!dev.is_cuda()) return m;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.has_index() ? dev.index() : c10::cuda::current_device());
  m.allocated = stats.allocated_bytes[0].current;  // [0]: all pools together
  m.reserved = stats.reserved_bytes[0].current;
  m.peak_allocated = stats.allocated_bytes[0].peak;
  m.peak_reserved = stats.reserved_bytes[0].peak;
#else
  (void)dev;
#endif
  return m;
}

void release_unused_device_memory() {
#ifdef TAILOR_CUDA
  if (c10::cuda::device_count() > 0) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

struct CudaGraph::Impl {
  std::function<void()> fn;
#ifdef TAILOR_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

CudaGraph::CudaGraph() : impl_(new Impl) {}
CudaGraph::~CudaGraph() = default;

void CudaGraph::capture(std::function<void()> fn, bool use_graph, int warmups) {
  impl_->fn = std::move(fn);
  if (!use_graph) return;
#ifdef TAILOR_CUDA
  // Capture must run on a stream other than the default one; the side stream waits for the work
  // already queued (the inputs' copies) and the default stream for the warm-ups.
  auto main = c10::cuda::getCurrentCUDAStream();
  auto side = c10::cuda::getStreamFromPool();
  side.synchronize();
  main.synchronize();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    for (int i = 0; i < warmups; ++i) impl_->fn();
    side.synchronize();
    // The warm-ups' temporaries (a training step's activations) go back to the driver: the graph
    // gets a pool of its own, and the two would otherwise be held together.
    release_unused_device_memory();
    impl_->graph = std::make_unique<at::cuda::CUDAGraph>();
    impl_->graph->capture_begin();
    impl_->fn();
    impl_->graph->capture_end();
  }
  side.synchronize();
#else
  throw Error("CUDA graphs: this tailor was built against a libtorch without CUDA");
#endif
}

void CudaGraph::replay() {
#ifdef TAILOR_CUDA
  if (impl_->graph) {
    impl_->graph->replay();
    return;
  }
#endif
  if (!impl_->fn) throw Error("CudaGraph::replay before capture");
  impl_->fn();
}

bool CudaGraph::is_graph() const {
#ifdef TAILOR_CUDA
  return impl_->graph != nullptr;
#else
  return false;
#endif
}

}  // namespace tailor
