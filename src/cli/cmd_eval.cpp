#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "(not built yet)");
  cmd->callback([] { throw Error("tailor eval is not built yet"); });
}

}  // namespace tailor::cli
