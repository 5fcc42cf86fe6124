// tools/cmd_pretrain_cuda.cu - `lcmae pretrain --device cuda`: the main job's training loop
// (pretrain/train_loop.hpp) instantiated for backend::Cuda, compiled by nvcc where CMake found it.
// The data loader, checkpoints and metrics are the CPU run's (host code); the model, trainer and
// optimiser run on the GPU through the backend. Under mpirun each rank takes the GPU of its local
// rank and the ranks reduce through dist::Nccl (one GPU per rank).
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>

#include "lcmae/backend/cuda.cuh"
#include "pretrain/cuda_entry.hpp"
#include "pretrain/train_loop.hpp"
#if defined(LCMAE_HAVE_MPI) && defined(LCMAE_HAVE_NCCL)
#include "lcmae/dist/nccl.cuh"
#endif

namespace lcmae::tools::pretrain {

namespace {
std::string cuda_device(const backend::Cuda& ctx, int ranks) {
    cudaDeviceProp p{};
    LCMAE_CUDA_CHECK(cudaGetDeviceProperties(&p, ctx.device()));
    std::ostringstream s;
    s << "CUDA device " << ctx.device() << " (" << p.name << ", " << (p.totalGlobalMem >> 20) << " MiB"
      << (ranks > 1 ? ", one per rank" : "") << "), precision " << backend::precision_name(ctx.precision());
    return s.str();
}
int host_loader_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n > 2 ? int(n / 2) : 1;
}
}  // namespace

int check_cuda(const Args& a) {
    if (backend::Cuda::available()) return 0;
    std::fprintf(stderr, "%s: --device cuda: no CUDA device is visible (cudaGetDeviceCount found none: no GPU, no driver, "
                         "or CUDA_VISIBLE_DEVICES hides them); use --device cpu\n", help_command(a).c_str());
    return 1;
}

int train_on_cuda(const Args& a, const dist::Mpi* mpi, Outcome* outcome) {
    const std::string prog = help_command(a);
    if (const int rc = check_cuda(a)) return rc;
#if defined(LCMAE_HAVE_MPI) && defined(LCMAE_HAVE_NCCL)
    if (mpi != nullptr) {
        const int device = dist::device_for_local_rank(mpi->local_rank());
        LCMAE_CUDA_CHECK(cudaSetDevice(device));
        const backend::Cuda ctx(device, precision_of(a));
        const dist::Nccl nccl(*mpi);
        const int threads = std::max(1, host_loader_threads() / std::max(1, mpi->local_size()));
        return dispatch(Run<backend::Cuda, dist::Nccl>{a, ctx, nccl, threads, cuda_device(ctx, nccl.world()), outcome});
    }
#else
    if (mpi != nullptr) {
        std::fprintf(stderr, "%s: --device cuda under mpirun needs dist::Nccl, and this lcmae was built without NCCL or MPI; "
                             "run one process, or rebuild where CMake finds both\n", prog.c_str());
        return 1;
    }
#endif
    const backend::Cuda ctx(0, precision_of(a));
    const dist::Single single;
    return dispatch(Run<backend::Cuda, dist::Single>{a, ctx, single, host_loader_threads(), cuda_device(ctx, 1), outcome});
}

}  // namespace lcmae::tools::pretrain
