#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_synth(CLI::App& app) {
  auto* cmd = app.add_subcommand("synth", "(not built yet)");
  cmd->callback([] { throw Error("tailor synth is not built yet"); });
}

}  // namespace tailor::cli
