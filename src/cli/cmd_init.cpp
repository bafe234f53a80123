#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "(not built yet)");
  cmd->callback([] { throw Error("tailor init is not built yet"); });
}

}  // namespace tailor::cli
