#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_describe(CLI::App& app) {
  auto* cmd = app.add_subcommand("describe", "(not built yet)");
  cmd->callback([] { throw Error("tailor describe is not built yet"); });
}

}  // namespace tailor::cli
