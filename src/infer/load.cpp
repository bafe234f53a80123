#include "infer/load.h"

#include "util/error.h"

namespace tailor {

std::unique_ptr<Answerer> load_answerer(const std::string& model_dir, const LoadOptions& opts) {
  throw Error("loading models is not built yet (" + model_dir + ")");
}

}  // namespace tailor
