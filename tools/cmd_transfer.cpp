// tools/cmd_transfer.cpp - `lcmae export` and `lcmae import` (not built yet: they exit 2 saying so).
#include "cli/options.hpp"
#include "commands.hpp"

namespace lcmae::tools {
int cmd_export(int, char**) { cli::usage_error("'lcmae export' is not built yet: use lcmae_pretrain --export-encoder"); }
int cmd_import(int, char**) { cli::usage_error("'lcmae import' is not built yet"); }
}  // namespace lcmae::tools
