// FlatAdam (train/optimizer.h) against libtorch's own torch::optim::AdamW / Adam and
// torch::nn::utils::clip_grad_norm_ on the same parameters and gradients: same values after many
// steps with changing learning rates, two groups and two dtypes; gradients of several backward
// passes accumulate in the flat buffer; the saved state continues a run exactly; bad state is named.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "train/optimizer.h"
#include "util/error.h"

using namespace tailor;
using torch::Tensor;

namespace {

// Parameters of assorted shapes (some float64), and identical copies for the reference optimizer.
std::vector<Tensor> make_params(uint64_t seed, bool mixed_dtypes) {
  torch::manual_seed(seed);
  std::vector<std::vector<int64_t>> shapes = {{8, 4}, {4}, {3, 5, 2}, {1}, {16, 8}};
  std::vector<Tensor> ps;
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto dt = mixed_dtypes && i % 2 == 1 ? torch::kDouble : torch::kFloat;
    ps.push_back(torch::randn(shapes[i], torch::TensorOptions().dtype(dt)).requires_grad_(true));
  }
  return ps;
}

std::vector<Tensor> copies(const std::vector<Tensor>& ps) {
  std::vector<Tensor> out;
  for (const Tensor& p : ps) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

// A loss whose gradients differ per step: sum_k sum(w_k * p_k^2) with step-seeded weights.
Tensor loss_of(const std::vector<Tensor>& ps, int step) {
  torch::manual_seed(1000 + step);
  Tensor loss = torch::zeros({}, torch::kDouble);
  for (const Tensor& p : ps) loss = loss + (torch::randn(p.sizes(), p.options().requires_grad(false)) * p * p).sum().to(torch::kDouble);
  return loss;
}

void expect_same(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double rtol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(a[i], b[i], rtol, 1e-9)) << "parameter " << i << " max diff "
                                                         << (a[i] - b[i]).abs().max().item<double>();
}

}  // namespace

TEST(FlatAdam, AdamWMatchesTorchOptimOverStepsWithChangingLr) {
  auto ps = make_params(1, /*mixed_dtypes=*/true);
  auto ref = copies(ps);
  FlatAdamOptions o;
  o.lr = 1e-2;
  o.beta2 = 0.98;
  o.weight_decay = 0.1;
  FlatAdam flat({ps}, o);
  torch::optim::AdamW torch_opt(ref, torch::optim::AdamWOptions(1e-2).betas({0.9, 0.98}).weight_decay(0.1));
  for (int step = 0; step < 25; ++step) {
    double lr = 1e-2 * (1.0 + step) / 25.0;
    flat.zero_grad();
    loss_of(ps, step).backward();
    flat.set_lr(0, lr);
    flat.step();
    torch_opt.zero_grad();
    loss_of(ref, step).backward();
    static_cast<torch::optim::AdamWOptions&>(torch_opt.param_groups()[0].options()).lr(lr);
    torch_opt.step();
  }
  expect_same(ps, ref, 1e-6);
  EXPECT_EQ(flat.steps_done(), 25);
  // The parameters moved (the comparison above is not between two unchanged sets).
  auto start = make_params(1, true);
  EXPECT_GT((ps[0] - start[0]).abs().max().item<double>(), 1e-2);
}

TEST(FlatAdam, AdamWithL2DecayAndTwoGroupsMatchesTorchOptim) {
  auto ps = make_params(2, false);
  auto ref = copies(ps);
  std::vector<Tensor> g0(ps.begin(), ps.begin() + 2), g1(ps.begin() + 2, ps.end());
  std::vector<Tensor> r0(ref.begin(), ref.begin() + 2), r1(ref.begin() + 2, ref.end());
  FlatAdamOptions o;
  o.lr = 5e-3;
  o.decoupled = false;
  o.weight_decay = 0.05;
  FlatAdam flat({g0, g1}, o);
  std::vector<torch::optim::OptimizerParamGroup> groups = {torch::optim::OptimizerParamGroup(r0),
                                                           torch::optim::OptimizerParamGroup(r1)};
  torch::optim::Adam torch_opt(groups, torch::optim::AdamOptions(5e-3).weight_decay(0.05));
  for (int step = 0; step < 12; ++step) {
    flat.zero_grad();
    loss_of(ps, step).backward();
    flat.set_lr(1, 5e-3 * 0.1);  // the second group at a tenth of the rate
    flat.step();
    torch_opt.zero_grad();
    loss_of(ref, step).backward();
    static_cast<torch::optim::AdamOptions&>(torch_opt.param_groups()[1].options()).lr(5e-3 * 0.1);
    torch_opt.step();
  }
  expect_same(ps, ref, 1e-6);
}

TEST(FlatAdam, ClipGradNormMatchesTorch) {
  auto ps = make_params(3, true);
  auto ref = copies(ps);
  FlatAdam flat({ps}, FlatAdamOptions());
  flat.zero_grad();
  loss_of(ps, 0).backward();
  loss_of(ref, 0).backward();
  double torch_norm = torch::nn::utils::clip_grad_norm_(ref, 0.5);
  Tensor norm = flat.clip_grad_norm(0.5);
  EXPECT_NEAR(norm.item<double>(), torch_norm, 1e-5 * torch_norm);
  ASSERT_GT(torch_norm, 0.5);  // it did clip
  for (size_t i = 0; i < ps.size(); ++i)
    EXPECT_TRUE(torch::allclose(ps[i].grad(), ref[i].grad(), 1e-5, 1e-8)) << "gradient " << i;
  // Under the limit nothing changes.
  Tensor before = ps[0].grad().clone();
  flat.clip_grad_norm(1e9);
  EXPECT_TRUE(torch::equal(ps[0].grad(), before));
}

TEST(FlatAdam, GradientsAccumulateInTheFlatBufferAndSurviveAResetToNone) {
  auto ps = make_params(4, false);
  auto ref = copies(ps);
  FlatAdam flat({ps}, FlatAdamOptions());
  flat.zero_grad();
  loss_of(ps, 0).backward();
  loss_of(ps, 1).backward();
  loss_of(ref, 0).backward();
  loss_of(ref, 1).backward();
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(torch::allclose(ps[i].grad(), ref[i].grad(), 1e-6, 1e-9));
  // Something else (another optimizer's zero_grad on libtorch 2) drops a gradient: the next
  // zero_grad puts the view back, and the step sees the new gradient.
  ps[2].mutable_grad() = Tensor();
  const void* before = ps[2].data_ptr();
  flat.zero_grad();
  ASSERT_TRUE(ps[2].grad().defined());
  loss_of(ps, 2).backward();
  Tensor p2 = ps[2].detach().clone();
  flat.step();
  EXPECT_FALSE(torch::equal(ps[2], p2));
  EXPECT_EQ(ps[2].data_ptr(), before);  // the parameter still lives in the buffer
}

TEST(FlatAdam, SavedStateContinuesExactly) {
  auto a = make_params(5, true);
  auto b = copies(a);
  FlatAdamOptions o;
  o.weight_decay = 0.01;
  FlatAdam oa({a}, o);
  for (int step = 0; step < 4; ++step) {
    oa.zero_grad();
    loss_of(a, step).backward();
    oa.step();
  }
  // b: the same values and the saved state, in a fresh optimizer.
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  FlatAdam ob({b}, o);
  ob.load_state(oa.state(), "saved");
  EXPECT_EQ(ob.steps_done(), 4);
  for (int step = 4; step < 8; ++step) {
    oa.zero_grad();
    loss_of(a, step).backward();
    oa.step();
    ob.zero_grad();
    loss_of(b, step).backward();
    ob.step();
  }
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

TEST(FlatAdam, BadStateIsNamed) {
  auto a = make_params(6, false);
  FlatAdam opt({a}, FlatAdamOptions());
  auto st = opt.state();
  auto missing = st;
  missing.erase(missing.begin() + 1);
  missing.emplace_back("buffer.9.exp_avg", torch::zeros({1}));
  try {
    opt.load_state(missing, "ckpt/optimizer.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt/optimizer.safetensors: optimizer state lacks buffer.0.exp_avg"),
              std::string::npos)
        << e.what();
  }
  auto wrong = st;
  wrong[2].second = torch::zeros({3});
  try {
    opt.load_state(wrong, "x");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("buffer.0.exp_avg_sq has 3 values"), std::string::npos) << e.what();
  }
}
