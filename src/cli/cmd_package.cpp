#include "app/package_run.h"
#include "cli/commands.h"

namespace tailor::cli {

void add_package(CLI::App& app) {
  auto* cmd = app.add_subcommand("package", "A model directory as SageMaker's model.tar.gz (files at its root)");
  auto o = std::make_shared<PackageOptions>();
  cmd->add_option("--model", o->model_dir, "Model directory (e.g. tailor train's <out>/model)")->required();
  cmd->add_option("-o,--out", o->out, "The archive to write")->capture_default_str();
  cmd->callback([o] { run_package(*o); });
}

}  // namespace tailor::cli
