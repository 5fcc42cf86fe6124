// tests/threads/omp_wait_probe.cpp - checks backend::cpu::prefer_passive_omp_wait by what libgomp
// does, not only by the environment: thread 0 of a 2-thread region computes for 50 ms while thread
// 1 waits at a barrier, and thread 1's own CPU time over that wait is measured (5 times).
// Passive waits sleep at once (measured 0.03 ms per wait on a 2-core AMD EPYC); libgomp's default
// spins 300000 times first (7.4-8.3 ms there, so the test fails without the re-exec), and
// OMP_WAIT_POLICY=active spins through the whole 50 ms (49 ms).
//
//   omp_wait_probe passive   the environment had no setting: the program must run passive
//   omp_wait_probe active    OMP_WAIT_POLICY=active was set by the user: it must be kept
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "lcmae/backend/cpu/omp_wait.hpp"

namespace {
double seconds(clockid_t clock) {
    timespec t{};
    clock_gettime(clock, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
}  // namespace

int main(int argc, char** argv) {
    lcmae::backend::cpu::prefer_passive_omp_wait(argv);
    if (argc != 2 || (std::strcmp(argv[1], "passive") != 0 && std::strcmp(argv[1], "active") != 0)) {
        std::fprintf(stderr, "usage: omp_wait_probe passive|active\n");
        return 2;
    }
    const std::string expect = argv[1];
    constexpr int kReps = 5;
    double waited = 0;
    int team = 0;
    for (int rep = 0; rep < kReps; ++rep) {
#pragma omp parallel num_threads(2) reduction(+ : waited)
        {
            if (omp_get_thread_num() == 0) {
                team = omp_get_num_threads();
                const double t0 = seconds(CLOCK_MONOTONIC);
                while (seconds(CLOCK_MONOTONIC) - t0 < 0.05) {
                }
            }
            const double c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
#pragma omp barrier
            if (omp_get_thread_num() == 1) waited += seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
        }
    }
    const double ms = waited / kReps * 1e3;
    const std::string policy = lcmae::backend::cpu::omp_wait_description();
    std::printf("omp_wait_probe: %s; team of %d; the waiting thread used %.3f ms of CPU per 50 ms wait\n",
                policy.c_str(), team, ms);
    if (team != 2) {
        std::fprintf(stderr, "omp_wait_probe: expected a team of 2 threads, got %d\n", team);
        return 1;
    }
    if (expect == "passive" && (policy != "OMP_WAIT_POLICY=passive" || ms > 1.0)) {
        std::fprintf(stderr, "omp_wait_probe: expected passive waits (<= 1 ms of CPU per wait), got %s and %.3f ms\n",
                     policy.c_str(), ms);
        return 1;
    }
    if (expect == "active" && (policy != "OMP_WAIT_POLICY=active" || ms < 10.0)) {
        std::fprintf(stderr, "omp_wait_probe: expected the user's OMP_WAIT_POLICY=active kept (spinning, >= 10 ms per wait), "
                             "got %s and %.3f ms\n", policy.c_str(), ms);
        return 1;
    }
    return 0;
}
