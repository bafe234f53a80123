// --quantize on the GPU (issue 19): for each weight format, the model directory loaded as `tailor
// serve` loads it (load_answerer: bf16, CUDA graphs for greedy answers), then on real photos and
// questions (a prepared data set's val pairs):
//   - teacher-forced logits against the unquantized bf16 model's: relative error, and the share of
//     positions whose most likely token agrees;
//   - greedy answers (the Answerer, serve's path): the share equal to bf16's, and answers/s at a batch;
//   - load seconds and the GPU memory the allocator holds after loading.
//
//   tailor_quantize_check MODEL_DIR DATA_DIR PAIRS BATCH [none,int8,nf4]
// Prints one JSON line per format. Built with -DTAILOR_GPU_TOOLS=ON.
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "infer/batch.h"
#include "infer/blip2_answerer.h"
#include "model/model_dir.h"
#include "util/text.h"

using namespace tailor;
using torch::Tensor;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct Inputs {
  std::vector<std::shared_ptr<const ImageRGB>> photos;  // one per pair
  std::vector<VqaPair> pairs;
};

Inputs read_inputs(const std::string& data_dir, size_t n) {
  Inputs in;
  in.pairs = read_pairs(data_dir + "/val.jsonl");
  if (in.pairs.size() > n) in.pairs.resize(n);
  for (const auto& p : in.pairs) in.photos.push_back(std::make_shared<ImageRGB>(load_image(p.image)));
  return in;
}

// Teacher-forced logits [N, L, V] in float32 on the host, in batches.
Tensor logits_of(Blip2Bundle& b, const Inputs& in, const torch::Device& dev, int64_t batch) {
  torch::NoGradGuard ng;
  std::vector<Tensor> parts;
  int64_t longest = 0;
  std::vector<std::string> all_answers;
  for (const auto& p : in.pairs) all_answers.push_back(p.answer);
  longest = label_batch(*b.tokenizer, all_answers).size(1);
  for (size_t s = 0; s < in.pairs.size(); s += batch) {
    size_t e = std::min(in.pairs.size(), s + batch);
    std::vector<const ImageRGB*> imgs;
    std::vector<std::string> prompts, answers;
    for (size_t i = s; i < e; ++i) {
      imgs.push_back(in.photos[i].get());
      prompts.push_back(in.pairs[i].prompt);
      answers.push_back(in.pairs[i].answer);
    }
    Tensor px = pixel_batch(imgs, b.image_cfg).to(dev);
    TokenBatch tb = prompt_batch(*b.tokenizer, prompts, b.cfg);
    Tensor labels = label_batch(*b.tokenizer, answers);
    labels = torch::constant_pad_nd(labels, {0, longest - labels.size(1)}, -100);
    Tensor lg = b.model->forward(px, tb.ids.to(dev), tb.mask.to(dev), labels.to(dev));
    parts.push_back(lg.to(torch::kFloat).cpu());
  }
  return torch::cat(parts);
}

std::vector<std::string> greedy_answers(Answerer& a, const Inputs& in, int64_t batch, double* answers_per_s) {
  std::vector<AnswerRequest> reqs;
  for (size_t i = 0; i < in.pairs.size(); ++i) reqs.push_back({in.photos[i], in.pairs[i].prompt, {}, 1.0});
  GenerationOptions g;
  g.max_new_tokens = 20;
  std::vector<std::string> out;
  // One untimed pass captures the graphs for each batch shape.
  auto run_all = [&](bool keep) {
    for (size_t s = 0; s < reqs.size(); s += batch) {
      std::vector<AnswerRequest> part(reqs.begin() + s, reqs.begin() + std::min(reqs.size(), s + batch));
      for (auto& ans : a.answer(part, g))
        if (keep) out.push_back(ans.text);
    }
  };
  run_all(true);
  auto t = std::chrono::steady_clock::now();
  const int repeats = 3;
  for (int r = 0; r < repeats; ++r) run_all(false);
  *answers_per_s = repeats * static_cast<double>(reqs.size()) / seconds_since(t);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: tailor_quantize_check MODEL_DIR DATA_DIR PAIRS BATCH [none,int8,nf4]\n");
    return 2;
  }
  const std::string model_dir = argv[1], data_dir = argv[2];
  const int64_t n = std::atoll(argv[3]), batch = std::atoll(argv[4]);
  const std::vector<std::string> formats = split_comma_list(argc > 5 ? argv[5] : "none,int8,nf4");
  torch::Device dev(torch::kCUDA);
  Inputs in = read_inputs(data_dir, static_cast<size_t>(n));
  Tensor ref_logits;
  std::vector<std::string> ref_answers;
  for (const auto& f : formats) {
    c10::cuda::CUDACachingAllocator::emptyCache();
    auto t = std::chrono::steady_clock::now();
    Blip2Bundle b = load_model_dir(model_dir, dev, torch::kBFloat16, f);
    const double load_s = seconds_since(t);
    torch::cuda::synchronize();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? 0 : dev.index());
    const double weights_mib = static_cast<double>(stats.allocated_bytes[0].current) / (1 << 20);
    Tensor logits = logits_of(b, in, dev, batch);
    auto answerer = make_blip2_answerer(b, dev, /*static_greedy=*/true);
    double aps = 0;
    std::vector<std::string> answers = greedy_answers(*answerer, in, batch, &aps);
    double rel = 0, argmax_same = 1, answers_same = 1;
    if (f == formats.front()) {
      ref_logits = logits;
      ref_answers = answers;
    } else {
      rel = ((logits - ref_logits).norm() / ref_logits.norm()).item<double>();
      argmax_same = (logits.argmax(-1) == ref_logits.argmax(-1)).to(torch::kDouble).mean().item<double>();
      int64_t same = 0;
      for (size_t i = 0; i < answers.size(); ++i) same += answers[i] == ref_answers[i];
      answers_same = static_cast<double>(same) / static_cast<double>(answers.size());
    }
    std::printf("{\"format\": \"%s\", \"pairs\": %zu, \"batch\": %lld, \"load_s\": %.1f, \"allocated_after_load_mib\": %.0f, "
                "\"logits_rel_err_vs_%s\": %.5f, \"argmax_agree\": %.4f, \"greedy_answers_agree\": %.4f, "
                "\"greedy_answers_per_s\": %.1f, \"example\": \"%s\"}\n",
                f.c_str(), in.pairs.size(), (long long)batch, load_s, weights_mib, formats.front().c_str(), rel,
                argmax_same, answers_same, aps, answers.empty() ? "" : answers[0].c_str());
    std::fflush(stdout);
  }
  return 0;
}
