// A tiny end-to-end setup for training tests, made once per test process: a synthetic catalog,
// its prepared pairs, and a `tiny` preset model (plus a variant with dropout everywhere, so tests see
// whether train/eval modes and the RNG are handled right). Header-only.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "catalog/prepare.h"
#include "catalog/synth.h"
#include "model/presets.h"
#include "test_util.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/progress.h"

namespace tailor::test {

struct TinySetup {
  std::string catalog, data, model, model_dropout;
};

inline const TinySetup& tiny_setup() {
  static TinySetup* s = nullptr;
  if (s) return *s;
  Progress::quiet = true;
  std::string root = temp_dir("tiny_setup");
  TinySetup t;
  t.catalog = root + "/catalog";
  t.data = root + "/data";
  t.model = root + "/model";
  t.model_dropout = root + "/model_dropout";
  SynthOptions so;
  so.products = 10;
  so.out_dir = t.catalog;
  so.seed = 3;
  so.threads = 1;
  so.progress = false;
  synth_catalog(so);
  PrepareOptions po;
  po.catalog_dir = t.catalog;
  po.out_dir = t.data;
  po.val_fraction = 0.2;
  po.threads = 1;
  po.progress = false;
  prepare_catalog(po);
  InitOptions io;
  io.preset = "tiny";
  io.out_dir = t.model;
  io.seed = 1;
  init_model_dir(io);
  // The same model with dropout in the Q-Former and T5 (the tiny preset has none).
  std::filesystem::copy(t.model, t.model_dropout, std::filesystem::copy_options::recursive);
  std::string cfg_path = t.model_dropout + "/config.json";
  nlohmann::json cfg = nlohmann::json::parse(read_file(cfg_path));
  cfg["qformer_config"]["hidden_dropout_prob"] = 0.2;
  cfg["qformer_config"]["attention_probs_dropout_prob"] = 0.2;
  cfg["text_config"]["dropout_rate"] = 0.1;
  write_file_atomic(cfg_path, cfg.dump(2));
  s = new TinySetup(t);
  return *s;
}

// The message of the tailor::Error that train_model(o) throws; "" when it trains without one.
inline std::string train_error(const TrainOptions& o) {
  try {
    train_model(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The lines of OUT/train_log.jsonl that contain `needle` (e.g. "eval_accuracy", "\"stage\":\"pretrain\""),
// in file order; none when there is no log yet.
inline std::vector<std::string> log_lines_with(const std::string& out, const std::string& needle) {
  std::vector<std::string> v;
  std::string path = out + "/train_log.jsonl";
  if (!file_exists(path)) return v;
  std::string text = read_file(path);
  size_t start = 0, end;
  while ((end = text.find('\n', start)) != std::string::npos) {
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find(needle) != std::string::npos) v.push_back(line);
  }
  return v;
}

}  // namespace tailor::test
