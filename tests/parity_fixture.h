// The HF parity fixture (tests/fixtures/parity_tiny, tools/parity/make_fixtures.py): its model loaded
// once per test process, with HF's reference tensors. Header-only; for the libtorch tests.
#pragma once
#include <map>
#include <string>

#include "model/model_dir.h"
#include "model/weights.h"
#include "test_util.h"

namespace tailor::test {

struct ParityFixture {
  Blip2Bundle b;
  std::map<std::string, torch::Tensor> ref;
};

inline ParityFixture& parity_fixture() {
  static ParityFixture* f = nullptr;
  if (!f) {
    f = new ParityFixture();
    std::string dir = repo_root() + "/tests/fixtures/parity_tiny";
    f->b = load_model_dir(dir, torch::kCPU, torch::kFloat);
    Checkpoint ck = Checkpoint::open(dir + "/reference.safetensors");
    for (const auto& n : ck.names()) f->ref[n] = tensor_from_view(ck.get(n));
  }
  return *f;
}

}  // namespace tailor::test
