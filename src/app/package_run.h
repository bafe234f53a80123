// `tailor package`: a model directory as the model.tar.gz SageMaker unpacks into /opt/ml/model
// (the directory's files at the archive's root: config.json, weights, tokenizer, tailor_task.json,
// adapter/ when there is one), for `tailor serve` in the container.
#pragma once
#include <string>

namespace tailor {

struct PackageOptions {
  std::string model_dir;
  std::string out = "model.tar.gz";
};

void run_package(const PackageOptions& o);

}  // namespace tailor
