#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_prepare(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare", "(not built yet)");
  cmd->callback([] { throw Error("tailor prepare is not built yet"); });
}

}  // namespace tailor::cli
