#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "(not built yet)");
  cmd->callback([] { throw Error("tailor serve is not built yet"); });
}

}  // namespace tailor::cli
