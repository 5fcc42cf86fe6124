// examples/lcmae_pretrain.cpp - the main job under its old name: the same program as
// `lcmae pretrain` (tools/cmd_pretrain.cpp, linked in; docs/cli.md is the reference), kept so the
// scripts, tests and docs that call lcmae_pretrain go on working. Its messages and --help say
// "lcmae_pretrain". It needs the data target (lcmae/data/, OpenCV) as the subcommand does.
//
//   lcmae_pretrain [options]      = lcmae pretrain [options]
#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "lcmae/backend/cpu/omp_wait.hpp"
#include "lcmae/core/error.hpp"

int main(int argc, char** argv) try {
    lcmae::backend::cpu::prefer_passive_omp_wait(argv);  // re-executes itself once (omp_wait.hpp)
    return lcmae::tools::cmd_pretrain(argc, argv);
} catch (const lcmae::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
} catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "lcmae_pretrain: %s\n", e.what());
    return 1;
}
