#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_ask(CLI::App& app) {
  auto* cmd = app.add_subcommand("ask", "(not built yet)");
  cmd->callback([] { throw Error("tailor ask is not built yet"); });
}

}  // namespace tailor::cli
