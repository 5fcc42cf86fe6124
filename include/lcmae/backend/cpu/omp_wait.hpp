// lcmae/backend/cpu/omp_wait.hpp - passive OpenMP waits by default for our programs (issue 13,
// item 4: threads that behave on a shared machine).
//
// Why: between parallel regions libgomp's threads spin (GOMP_SPINCOUNT 300000 by default) before
// they sleep. When another process needs one of the cores, that spinning takes its time slices:
// measured on a 2-core AMD EPYC with one busy process beside a 2-thread LC-MAE step
// (bench/README.md, "Threads on a shared machine"): default 19.4 images/s, passive 26.4 (+36%);
// on quiet cores passive cost nothing measurable (49.9 against 47.5 images/s).
//
// Why a re-exec: libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, in its load-time
// constructor, before main. A setenv in main comes too late, and one in a .preinit_array hook is
// undone by libc's own initialiser (it resets environ to the array the kernel passed) before
// libgomp's constructor reads it (both tried). So the program sets the variable and executes
// itself again (same PID, same arguments; no thread, file or signal handler exists yet).
#pragma once

#include <cstdlib>
#include <string>

#if defined(__linux__)
#include <unistd.h>
#endif

namespace lcmae::backend::cpu {

/// First thing in main(), before any OpenMP region and before anything else has side effects:
/// if the environment sets neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, sets
/// OMP_WAIT_POLICY=passive and re-executes the program (/proc/self/exe, the same argv), so that
/// libgomp starts with it. A user's own setting always wins (OMP_WAIT_POLICY=active restores the
/// spinning, GOMP_SPINCOUNT=N a bounded spin). Returns normally when there is nothing to do, on
/// systems other than Linux, or when the exec fails (the program then runs with libgomp's
/// default policy; nothing else changes).
inline void prefer_passive_omp_wait(char** argv) noexcept {
#if defined(__linux__)
    if (argv == nullptr || argv[0] == nullptr) return;
    if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
    if (::setenv("OMP_WAIT_POLICY", "passive", 0) != 0) return;
    ::execv("/proc/self/exe", argv);
    // exec failed (no /proc, say): undo, so the description below stays true
    ::unsetenv("OMP_WAIT_POLICY");
#else
    (void)argv;
#endif
}

/// One line for a program's banner: the wait policy libgomp was started with.
inline std::string omp_wait_description() {
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    const char* spin = std::getenv("GOMP_SPINCOUNT");
    std::string s;
    if (policy != nullptr) s += std::string("OMP_WAIT_POLICY=") + policy;
    if (spin != nullptr) s += std::string(s.empty() ? "" : ", ") + "GOMP_SPINCOUNT=" + spin;
    return s.empty() ? std::string("libgomp default (spin, then sleep)") : s;
}

}  // namespace lcmae::backend::cpu
