#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "(not built yet)");
  cmd->callback([] { throw Error("tailor train is not built yet"); });
}

}  // namespace tailor::cli
