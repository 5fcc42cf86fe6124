// The doctest main of the MPI tests: MPI for the program's lifetime around doctest. Every rank
// runs every test case (they are collective); mpirun's exit status is non-zero when any rank fails.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "lcmae/dist/mpi.hpp"

int main(int argc, char** argv) {
    lcmae::dist::MpiSession mpi(&argc, &argv);
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
