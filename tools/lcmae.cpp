// tools/lcmae.cpp - the `lcmae` program: one executable, one subcommand per job (tools/commands.hpp).
//
//   lcmae pretrain [options]                      pre-train LC-MAE / MAE / LC-SimMIM (the main job)
//   lcmae eval knn|linear|finetune [options]      evaluate a pre-trained encoder (SPEC 4)
//   lcmae export --ckpt FILE --timm OUT           the encoder under timm's names
//   lcmae import --timm FILE --out CKPT           a timm / MAE encoder into lcmae's format
//   lcmae plot --out PNG LABEL=metrics.jsonl ...  training curves
//   lcmae analyze distance|spectrum|attention ... the paper's analyses (SPEC 5)
//   lcmae --help | lcmae <command> --help         every option with its default
//
// Exit codes: 0 done; 1 a run-time failure (the message names the file or value and what was
// expected); 2 a usage error.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "cli/options.hpp"
#include "commands.hpp"
#include "lcmae/backend/cpu/omp_wait.hpp"
#include "lcmae/core/error.hpp"

namespace {

const char* const kHelp =
    "lcmae - pre-train Vision Transformers with LC-MAE (or MAE, LC-SimMIM) and evaluate them\n\n"
    "usage: lcmae <command> [options]\n\n"
    "commands:\n"
    "  pretrain                     pre-train an encoder (default: LC-MAE on Fashion-MNIST, ~10 min on 2 cores, then k-NN)\n"
    "  eval knn|linear|finetune     evaluate an encoder: weighted k-NN, linear probe, fine-tuning (SPEC 4)\n"
    "  export                       write a checkpoint's encoder under timm's VisionTransformer names\n"
    "  import                       read a timm / MAE encoder (safetensors) into lcmae's checkpoint format\n"
    "  plot                         training curves from metrics.jsonl files as a PNG\n"
    "  analyze distance|spectrum|attention   attention distance, singular value spectrum, attention maps (SPEC 5)\n\n"
    "run 'lcmae <command> --help' for a command's options and their defaults\n\n"
    "exit codes: 0 done, 1 run-time failure (checkpoint, dataset, output), 2 usage error\n";

}  // namespace

int main(int argc, char** argv) try {
    using namespace lcmae;
    backend::cpu::prefer_passive_omp_wait(argv);  // re-executes itself once (omp_wait.hpp says why)
    if (argc < 2) cli::usage_error("no command given (expected pretrain, eval, export, import, plot or analyze)");
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        std::cout << kHelp;
        return 0;
    }
    if (cmd == "pretrain") return tools::cmd_pretrain(argc - 1, argv + 1);
    if (cmd == "eval") return tools::cmd_eval(argc - 1, argv + 1);
    if (cmd == "export") return tools::cmd_export(argc - 1, argv + 1);
    if (cmd == "import") return tools::cmd_import(argc - 1, argv + 1);
    if (cmd == "plot") return tools::cmd_plot(argc - 1, argv + 1);
    if (cmd == "analyze") return tools::cmd_analyze(argc - 1, argv + 1);
    cli::usage_error("unknown command '" + cmd + "' (expected pretrain, eval, export, import, plot or analyze)");
} catch (const lcmae::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "lcmae: %s\n", e.what());
    return 1;
} catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "lcmae: %s\n", e.what());
    return 1;
}
