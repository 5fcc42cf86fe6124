// tools/cmd_pretrain.cpp - `lcmae pretrain` (being moved here from examples/lcmae_pretrain.cpp;
// until then the subcommand says so and exits 2).
#include "cli/options.hpp"
#include "commands.hpp"

namespace lcmae::tools {
int cmd_pretrain(int, char**) { cli::usage_error("'lcmae pretrain' is not built yet: use examples/lcmae_pretrain"); }
}  // namespace lcmae::tools
