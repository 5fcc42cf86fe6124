// tests/dist/train_loop.cpp - a data-parallel training loop that runs until it is stopped (or for
// --micro N micro-batches), for the failure tests (kill_rank.sh): every rank prints
// "rank R pid P micro M" after each micro-batch, so the test knows whom to kill and when.
// Like `lcmae pretrain` under mpirun, an error that only this rank sees ends every rank
// (dist::Mpi::abort), and a collective past its timeout does the same.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "dist_util.hpp"

using namespace lcmae;

int main(int argc, char** argv) {
    dist::MpiSession session(&argc, &argv);
    const dist::Mpi comm;
    long micro = -1;  // forever
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--micro") == 0) micro = std::atol(argv[i + 1]);
    try {
        backend::Cpu ctx(1);
        const long b = 2;
        models::LcmaeModel<float> model(test::tiny_spec(models::GuidanceLoss::Cosine, b), 7);
        train::TrainConfig tc;
        tc.batch = b;
        tc.epochs = 1000;
        tc.warmup_epochs = 1;
        train::Trainer<float, backend::Cpu, dist::Mpi> tr(ctx, model, tc, 100, comm);
        for (long m = 0; micro < 0 || m < micro; ++m) {
            test::train_micro(tr, ctx, m, 1, b, comm.rank(), comm.world(), 64, 100);
            std::printf("rank %d pid %ld micro %ld\n", comm.rank(), long(::getpid()), m);
            std::fflush(stdout);
            ::usleep(20000);  // a few steps per second: the test kills mid-run, not mid-startup
        }
    } catch (const std::exception& e) {
        comm.abort(e.what());
    }
    return 0;
}
