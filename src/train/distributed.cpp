#include "train/distributed.h"

#include <torch/version.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>

// c10d is compiled in when CMake found a backend's headers (see CMakeLists.txt); without it a
// distributed run is refused with a clear error and one process trains as before.
#if defined(TAILOR_C10D_GLOO) || defined(TAILOR_C10D_NCCL)
#define TAILOR_C10D 1
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef TAILOR_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef TAILOR_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <nlohmann/json.hpp>

#include "infer/cuda_graph.h"
#include "util/error.h"

namespace tailor {

using torch::Tensor;

#ifdef TAILOR_C10D

// libtorch 2.x split ProcessGroup into a dispatcher over per-device Backends; ProcessGroupGloo and
// ProcessGroupNCCL are Backends there and ProcessGroups in 1.13. Only calls that both share are used:
// allreduce, allgather and broadcast on tensor lists, returning a Work to wait for.
#if TORCH_VERSION_MAJOR >= 2
using PgBase = c10d::Backend;
#else
using PgBase = c10d::ProcessGroup;
#endif

struct DistGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<PgBase> pg;
  std::string backend;
  std::chrono::milliseconds timeout{0};
  std::function<void()> shutdown;  // what torch.distributed.destroy_process_group() does to it (may be empty)
};

struct Distributed::Pending {
  c10::intrusive_ptr<c10d::Work> work;
};

namespace {

// The group's orderly end (torch.distributed.destroy_process_group() calls it): libtorch 2.x's
// ProcessGroupNCCL has shutdown() and warns at exit without it; 1.13 has none.
template <typename Pg>
auto shutdown_of(Pg* pg, int) -> decltype(pg->shutdown(), std::function<void()>()) {
  return [pg] { pg->shutdown(); };
}
template <typename Pg>
std::function<void()> shutdown_of(Pg*, long) {
  return {};
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

}  // namespace

Distributed::Distributed(const WorldInfo& w, const torch::Device& dev)
    : world_(w), dev_(torch::kCPU), g_(std::make_unique<DistGroup>()) {
  g_->timeout = std::chrono::milliseconds(static_cast<int64_t>(w.timeout_s * 1000));
  std::string where = w.master_addr + ":" + std::to_string(w.master_port);
  std::string who = "rank " + std::to_string(w.rank) + " of " + std::to_string(w.world_size);
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(w.master_port);
  so.isServer = w.rank == 0;
  so.numWorkers = static_cast<size_t>(w.world_size);
  so.waitWorkers = true;
  so.timeout = g_->timeout;
  try {
    g_->store = c10::make_intrusive<c10d::TCPStore>(w.master_addr, so);
  } catch (const std::exception& e) {
    throw Error("distributed: " + who + ": rendezvous at " + where + " failed within " +
                std::to_string(static_cast<int64_t>(w.timeout_s)) + " s (" +
                (w.rank == 0 ? "not every rank arrived, or the port is taken" : "rank 0 is not serving there") + "): " +
                e.what());
  }
  try {
#ifdef TAILOR_C10D_NCCL
    if (dev.is_cuda()) {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(dev.has_index() ? dev.index() : w.local_rank));
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = g_->timeout;
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(g_->store, w.rank, w.world_size, opts);
      g_->shutdown = shutdown_of(nccl.get(), 0);
      g_->pg = nccl;
      g_->backend = "nccl";
      dev_ = dev.has_index() ? dev : torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(w.local_rank));
    }
#endif
    if (!g_->pg) {
#ifdef TAILOR_C10D_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(g_->timeout);
      // Bind where the peers can reach us: the named interface, loopback for a loopback master, or the
      // address this host's name resolves to (as torch.distributed does).
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(w.master_addr))
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      g_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g_->store, w.rank, w.world_size, opts);
      g_->backend = "gloo";
#else
      throw Error("this build of tailor has no c10d Gloo support (configure with the gloo headers: libgloo-dev)");
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("distributed: " + who + ": building the process group through " + where + " failed: " + e.what());
  }
}

Distributed::~Distributed() {
  if (!failed_ && g_ && g_->shutdown) {
    try {
      g_->shutdown();
    } catch (const std::exception&) {
      // The job's work is done and written; a failing teardown changes nothing of it.
    }
  }
  if (failed_) {
    // After a failed collective the group may hold work that would wait out the timeout again (or
    // forever) in its destructor: leave it to the process's exit.
    (void)g_->pg.release();
    (void)g_->store.release();
    (void)g_.release();
  }
}

std::string Distributed::backend() const { return g_->backend; }

void Distributed::fail(const std::string& what, const std::string& detail) {
  failed_ = true;
  throw Error("distributed: rank " + std::to_string(world_.rank) + " of " + std::to_string(world_.world_size) + ": " +
              what + " failed (another rank has failed, been killed or hung for " +
              std::to_string(static_cast<int64_t>(world_.timeout_s)) + " s; stopping too): " + detail);
}

std::shared_ptr<Distributed::Pending> Distributed::start_all_reduce(Tensor& t) {
  std::vector<Tensor> v{t};
  c10d::AllreduceOptions opts;
  opts.timeout = g_->timeout;
  try {
    return std::make_shared<Pending>(Pending{g_->pg->allreduce(v, opts)});
  } catch (const std::exception& e) {
    fail("all-reduce", e.what());
  }
}

void Distributed::wait(const std::shared_ptr<Pending>& p, const std::string& what) {
  try {
    if (!p->work->wait(g_->timeout)) fail(what, "timed out");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(what, e.what());
  }
}

void Distributed::all_reduce_sum(Tensor& t) {
  Tensor buf = t.device() == dev_ && t.is_contiguous() ? t : t.to(dev_).contiguous();
  auto p = start_all_reduce(buf);
  wait(p, "all-reduce");
  if (!buf.is_same(t)) t.copy_(buf);
}

void Distributed::all_reduce_sum_queued(Tensor& t) {
  if (t.device() != dev_ || !t.is_contiguous()) throw Error("all_reduce_sum_queued: the tensor must be contiguous on " + dev_.str());
  std::vector<Tensor> v{t};
  try {
    // No timeout for the wait: with one, NCCL would wait on the host, which a capture forbids. A rank
    // that never arrives is caught by wait_for_device; Gloo's collectives time out themselves.
    g_->pg->allreduce(v, c10d::AllreduceOptions())->wait();
  } catch (const std::exception& e) {
    fail("all-reduce", e.what());
  }
}

void Distributed::broadcast_from_rank0(Tensor& t) {
  torch::NoGradGuard ng;
  Tensor buf = t.device() == dev_ && t.is_contiguous() ? t : t.to(dev_).contiguous();
  std::vector<Tensor> v{buf};
  c10d::BroadcastOptions opts;
  opts.rootRank = 0;
  opts.timeout = g_->timeout;
  std::shared_ptr<Pending> p;
  try {
    p = std::make_shared<Pending>(Pending{g_->pg->broadcast(v, opts)});
  } catch (const std::exception& e) {
    fail("broadcast", e.what());
  }
  wait(p, "broadcast");
  if (!buf.is_same(t)) t.copy_(buf);
}

namespace {

std::vector<Tensor> gather_equal(PgBase& pg, const Tensor& in, int world, std::chrono::milliseconds timeout,
                                 c10::intrusive_ptr<c10d::Work>& work) {
  std::vector<std::vector<Tensor>> out(1);
  for (int r = 0; r < world; ++r) out[0].push_back(torch::empty_like(in));
  std::vector<Tensor> inputs{in};
  c10d::AllgatherOptions opts;
  opts.timeout = timeout;
  work = pg.allgather(out, inputs, opts);
  return out[0];
}

}  // namespace

Tensor Distributed::all_gather_rows(const Tensor& local, int64_t rows_per_rank) {
  torch::NoGradGuard ng;
  int64_t k = local.size(0);
  if (k > rows_per_rank) throw Error("all_gather_rows: " + std::to_string(k) + " rows > " + std::to_string(rows_per_rank));
  std::vector<int64_t> shape = local.sizes().vec();
  shape[0] = rows_per_rank;
  Tensor padded = torch::zeros(shape, local.options().device(dev_));
  if (k > 0) padded.narrow(0, 0, k).copy_(local);
  Tensor count = torch::full({1}, k, torch::TensorOptions().dtype(torch::kLong).device(dev_));
  std::vector<Tensor> counts, parts;
  c10d::AllgatherOptions opts;
  try {
    c10::intrusive_ptr<c10d::Work> w1, w2;
    counts = gather_equal(*g_->pg, count, size(), g_->timeout, w1);
    wait(std::make_shared<Pending>(Pending{w1}), "all-gather");
    parts = gather_equal(*g_->pg, padded, size(), g_->timeout, w2);
    wait(std::make_shared<Pending>(Pending{w2}), "all-gather");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("all-gather", e.what());
  }
  std::vector<Tensor> rows;
  for (int r = 0; r < size(); ++r) rows.push_back(parts[r].narrow(0, 0, counts[r].item<int64_t>()));
  return torch::cat(rows).to(local.device());
}

std::vector<std::string> Distributed::all_gather_bytes(const std::string& local) {
  auto bytes = torch::TensorOptions().dtype(torch::kUInt8);
  // Lengths first, then every rank's bytes padded to the longest.
  Tensor len = torch::full({1}, static_cast<int64_t>(local.size()), torch::TensorOptions().dtype(torch::kLong).device(dev_));
  std::vector<Tensor> lens, parts;
  try {
    c10::intrusive_ptr<c10d::Work> w;
    lens = gather_equal(*g_->pg, len, size(), g_->timeout, w);
    wait(std::make_shared<Pending>(Pending{w}), "all-gather");
    int64_t longest = 1;
    for (auto& l : lens) longest = std::max(longest, l.item<int64_t>());
    Tensor mine = torch::zeros({longest}, bytes);
    if (!local.empty()) std::memcpy(mine.data_ptr(), local.data(), local.size());
    mine = mine.to(dev_);
    parts = gather_equal(*g_->pg, mine, size(), g_->timeout, w);
    wait(std::make_shared<Pending>(Pending{w}), "all-gather");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("all-gather", e.what());
  }
  std::vector<std::string> out;
  for (int r = 0; r < size(); ++r) {
    Tensor c = parts[r].cpu().contiguous();
    out.emplace_back(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(lens[r].item<int64_t>()));
  }
  return out;
}

#else  // no c10d in this build

struct DistGroup {};
struct Distributed::Pending {};

Distributed::Distributed(const WorldInfo& w, const torch::Device&) : world_(w), dev_(torch::kCPU) {
  throw Error("WORLD_SIZE=" + std::to_string(w.world_size) +
              ": this build of tailor has no c10d backend (built without the gloo headers or with "
              "-DTAILOR_WITH_C10D=OFF), so it trains in one process only");
}
Distributed::~Distributed() = default;
std::string Distributed::backend() const { return "none"; }
void Distributed::fail(const std::string& what, const std::string& detail) {
  failed_ = true;
  throw Error("distributed: " + what + ": " + detail);
}
std::shared_ptr<Distributed::Pending> Distributed::start_all_reduce(Tensor&) { fail("all-reduce", "no c10d"); }
void Distributed::all_reduce_sum_queued(Tensor&) { fail("all-reduce", "no c10d"); }
void Distributed::wait(const std::shared_ptr<Pending>&, const std::string& what) { fail(what, "no c10d"); }
void Distributed::all_reduce_sum(Tensor&) { fail("all-reduce", "no c10d"); }
void Distributed::broadcast_from_rank0(Tensor&) { fail("broadcast", "no c10d"); }
Tensor Distributed::all_gather_rows(const Tensor&, int64_t) { fail("all-gather", "no c10d"); }
std::vector<std::string> Distributed::all_gather_bytes(const std::string&) { fail("all-gather", "no c10d"); }

#endif  // TAILOR_C10D

void Distributed::wait_for_device(const std::string& what) {
  if (!device_done_within(dev_, world_.timeout_s)) fail(what, "not finished after " + std::to_string(static_cast<int64_t>(world_.timeout_s)) + " s");
}

void Distributed::check_same(const std::string& what, const std::string& text) {
  std::vector<std::string> all = all_gather_bytes(text);
  for (int r = 1; r < size(); ++r)
    if (all[r] != all[0])
      throw Error("distributed: rank " + std::to_string(r) + "'s " + what + " differ from rank 0's (rank 0: " + all[0] +
                  "; rank " + std::to_string(r) + ": " + all[r] + "): start every rank with the same arguments");
}

// ---- GradReducer ------------------------------------------------------------------------------

GradReducer::GradReducer(Distributed& dist, const std::vector<Tensor>& params, int64_t bucket_bytes)
    : dist_(dist), params_(params), slots_(params.size()) {
  // Reverse parameter order: backward produces the last layers' gradients first.
  int64_t fill = 0, bytes = 0;
  for (int64_t i = static_cast<int64_t>(params_.size()) - 1; i >= 0; --i) {
    const Tensor& p = params_[i];
    int64_t b = p.numel() * static_cast<int64_t>(p.element_size());
    bool new_bucket = buckets_.empty() || (bytes + b > bucket_bytes && bytes > 0) ||
                      params_[buckets_.back().params.front()].scalar_type() != p.scalar_type();
    if (new_bucket) {
      buckets_.emplace_back();
      fill = 0;
      bytes = 0;
    }
    slots_[i] = {static_cast<int64_t>(buckets_.size()) - 1, fill, p.numel(), false};
    buckets_.back().params.push_back(i);
    fill += p.numel();
    bytes += b;
  }
  torch::Device dev = dist_.device();
  for (auto& bk : buckets_) {
    int64_t numel = 0;
    for (int64_t i : bk.params) numel += params_[i].numel();
    bk.flat = torch::zeros({numel}, torch::TensorOptions().dtype(params_[bk.params.front()].scalar_type()).device(dev));
    bk.waiting = static_cast<int64_t>(bk.params.size());
  }
  for (int64_t i = 0; i < static_cast<int64_t>(params_.size()); ++i)
    hook_ids_.push_back(params_[i].register_hook([this, i](Tensor g) { on_grad(i, g); }));
}

GradReducer::~GradReducer() {
  for (size_t i = 0; i < hook_ids_.size(); ++i) params_[i].remove_hook(hook_ids_[i]);
}

void GradReducer::arm() { armed_ = true; }

void GradReducer::on_grad(int64_t i, const Tensor& g) {
  if (!armed_ || slots_[i].ready) return;
  torch::NoGradGuard ng;
  Slot& s = slots_[i];
  Bucket& b = buckets_[s.bucket];
  Tensor dst = b.flat.narrow(0, s.offset, s.numel);
  // This hook sees the gradient of this backward before it is added to .grad: the step's gradient
  // is both (earlier micro-batches of a grad-accumulation step are in .grad already).
  const Tensor& before = params_[i].grad();
  if (before.defined()) dst.copy_((g + before).reshape({-1}));
  else dst.copy_(g.reshape({-1}));
  s.ready = true;
  if (--b.waiting == 0) start_ready_buckets();
}

void GradReducer::start_ready_buckets() {
  while (next_bucket_ < static_cast<int64_t>(buckets_.size()) && buckets_[next_bucket_].waiting == 0) {
    buckets_[next_bucket_].pending = dist_.start_all_reduce(buckets_[next_bucket_].flat);
    ++next_bucket_;
    ++started_;
    ++started_in_backward_;
  }
}

void GradReducer::fill_and_start(int64_t bi) {
  torch::NoGradGuard ng;
  Bucket& b = buckets_[bi];
  for (int64_t i : b.params) {
    Slot& s = slots_[i];
    if (s.ready) continue;
    Tensor dst = b.flat.narrow(0, s.offset, s.numel);
    const Tensor& gr = params_[i].grad();
    if (gr.defined()) dst.copy_(gr.reshape({-1}));
    else dst.zero_();
    s.ready = true;
  }
  b.waiting = 0;
  b.pending = dist_.start_all_reduce(b.flat);
  ++started_;
}

double GradReducer::finish(double local_loss) {
  for (; next_bucket_ < static_cast<int64_t>(buckets_.size()); ++next_bucket_) fill_and_start(next_bucket_);
  for (auto& b : buckets_) {
    dist_.wait(b.pending, "gradient all-reduce");
    b.pending.reset();
  }
  torch::NoGradGuard ng;
  for (int64_t i = 0; i < static_cast<int64_t>(params_.size()); ++i) {
    Slot& s = slots_[i];
    Tensor& p = params_[i];
    Tensor sum = buckets_[s.bucket].flat.narrow(0, s.offset, s.numel).view(p.sizes());
    if (p.grad().defined()) p.mutable_grad().copy_(sum);
    else p.mutable_grad() = sum.to(p.device()).clone();
    s.ready = false;
  }
  for (auto& b : buckets_) b.waiting = static_cast<int64_t>(b.params.size());
  armed_ = false;
  next_bucket_ = 0;
  Tensor loss = torch::full({1}, local_loss, torch::TensorOptions().dtype(torch::kDouble).device(dist_.device()));
  dist_.all_reduce_sum(loss);
  return loss.item<double>();
}

// ---- evaluation -------------------------------------------------------------------------------

EvalReport evaluate_distributed(Distributed& dist, Answerer& model, const std::vector<VqaPair>& pairs,
                                const std::vector<VqaPair>& reference, int batch_size, const GenerationOptions& gen,
                                AnswerMode mode, double target_precision, PhotoShift shift) {
  Span part = rank_part({0, static_cast<int64_t>(pairs.size())}, dist.rank(), dist.size());
  nlohmann::json mine = nlohmann::json::array();
  if (part.size() > 0) {
    std::vector<VqaPair> own(pairs.begin() + part.begin, pairs.begin() + part.end);
    EvalReport r = evaluate(model, own, reference, batch_size, gen, false, mode, target_precision, shift);
    for (const auto& p : r.predictions)
      mine.push_back({p.id, p.attribute, p.image, p.truth, p.predicted, p.raw, p.confidence, p.log_likelihoods, p.truth_candidate});
  }
  std::vector<Prediction> all;
  for (const std::string& text : dist.all_gather_bytes(mine.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))) {
    for (const auto& j : nlohmann::json::parse(text))
    {
      Prediction p;
      p.id = j[0].get<std::string>();
      p.attribute = j[1].get<std::string>();
      p.image = j[2].get<std::string>();
      p.truth = j[3].get<std::string>();
      p.predicted = j[4].get<std::string>();
      p.raw = j[5].get<std::string>();
      p.confidence = j[6].get<double>();
      p.log_likelihoods = j[7].get<std::vector<double>>();
      p.truth_candidate = j[8].get<int>();
      all.push_back(std::move(p));
    }
  }
  if (all.size() != pairs.size())
    throw Error("distributed evaluation: gathered " + std::to_string(all.size()) + " predictions for " +
                std::to_string(pairs.size()) + " pairs");
  return summarize_predictions(std::move(all), reference.empty() ? pairs : reference, target_precision);
}

}  // namespace tailor
