// tools/commands.hpp - the subcommands of the `lcmae` program, one source file each:
//   cmd_pretrain.cpp  lcmae pretrain ...            (pre-training: the main job)
//   cmd_eval.cpp      lcmae eval knn|linear|finetune ...
//   cmd_transfer.cpp  lcmae export ... | lcmae import ...   (timm / PyTorch weights)
//   cmd_plot.cpp      lcmae plot ...                 (training curves from metrics.jsonl as PNG)
//   cmd_analyze.cpp   lcmae analyze distance|spectrum|attention ...   (SPEC 5's analyses)
// Each takes the arguments after its own name (argv[0] is the subcommand's name) and returns the
// exit status: 0 done, 1 a run-time failure, 2 a usage error (usage errors may also exit directly).
#pragma once

namespace lcmae::tools {

int cmd_pretrain(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_import(int argc, char** argv);
int cmd_plot(int argc, char** argv);
int cmd_analyze(int argc, char** argv);

}  // namespace lcmae::tools
