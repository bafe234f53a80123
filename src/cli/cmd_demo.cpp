#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "(not built yet)");
  cmd->callback([] { throw Error("tailor demo is not built yet"); });
}

}  // namespace tailor::cli
