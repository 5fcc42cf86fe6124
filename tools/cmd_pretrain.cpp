// tools/cmd_pretrain.cpp - `lcmae pretrain`: the main job. Pre-trains LC-MAE (or MAE, LC-SimMIM) on
// Fashion-MNIST (the default), CIFAR-10 or any folder of class sub-folders; shows progress, writes
// OUT/config.json, OUT/metrics.jsonl and atomic checkpoints (online + EMA target, safetensors) plus
// the training state every --save-every optimiser steps and at the end; --resume DIR continues a
// run exactly (bit-identical files). Then the weighted k-NN of SPEC 4 (mean and cls, k 20, T 0.07)
// scores the online encoder and writes OUT/eval-knn.json. docs/cli.md is the reference.
// --device cuda trains on the GPU (cmd_pretrain_cuda.cu, built where CMake found nvcc); the
// options live in pretrain/options.hpp, the loop shared by both devices in pretrain/train_loop.hpp.
//
//   lcmae pretrain                                        LC-MAE on Fashion-MNIST, ~10 min on 2 cores
//   lcmae pretrain --method mae --crop rrc --epochs 3
//   lcmae pretrain --config run.json --steps 100          (flags win over the file)
//   lcmae pretrain --device cuda --precision tf32 --model small
//   lcmae_pretrain ...                                     the same program (examples/lcmae_pretrain)
//
// Exit codes: 0 done (also after Ctrl-C: saved first); 1 a run-time failure (data, checkpoint,
// output, a loss that is not finite); 2 a usage error.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include "commands.hpp"
#include "lcmae/backend/cpu/omp_wait.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/eval/knn.hpp"
#include "pretrain/cuda_entry.hpp"
#include "pretrain/options.hpp"
#include "pretrain/train_loop.hpp"
#ifdef LCMAE_HAVE_MPI
#include "lcmae/dist/mpi.hpp"
#endif

using namespace lcmae;
using namespace lcmae::tools::pretrain;

namespace {

// Ctrl-C / SIGTERM ask for a clean stop (pretrain::g_stop): the current micro-batch finishes, then
// the checkpoint and training state are written (atomically) and the program exits, so an
// interrupted run resumes. A second signal ends the program at once, but only one that comes a
// second or more after the first: coreutils' `timeout` (and some job runners) signal the child and
// then its whole process group, so one request arrives twice within microseconds, and must still
// save (it killed CI's run once).
std::atomic<std::int64_t> g_first_signal_ns{0};
extern "C" void request_stop(int sig) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe, unlike std::chrono
    const std::int64_t ns = std::int64_t(now.tv_sec) * 1000000000 + now.tv_nsec;
    if (!g_stop.exchange(true)) {
        g_first_signal_ns.store(ns);
        return;
    }
    if (ns - g_first_signal_ns.load() < 1000000000) return;  // the same request, delivered twice
    std::signal(sig, SIG_DFL);  // a real second request: end now, with the signal's exit status
    std::raise(sig);
}

int loader_threads(const backend::Cpu& ctx) { return std::max(1, ctx.threads() / 2); }
/// The banner's description of a CPU run.
std::string cpu_device(const backend::Cpu& ctx) {
    std::ostringstream s;
    s << ctx.threads() << " threads (OpenMP waits: " << backend::cpu::omp_wait_description() << "), GEMM "
      << backend::precision_name(ctx.precision()) << " "
      << (ctx.precision() == backend::Precision::Bf16 ? "(own AVX512-BF16 kernel)" : backend::cpu::gemm_provider_name(ctx.gemm_provider()));
    return s.str();
}

// ---- the k-NN at the end (SPEC 4: the online encoder, mean and cls, k 20, T 0.07) ----------------

void run_knn(const Args& a, const backend::Cpu& ctx, const vit::VitDims& dims, const std::filesystem::path& ckpt) {
    data::Normalization norm;
    const auto train_ds = load_split(a, true, norm);
    const auto test_ds = load_split(a, false, norm);
    if (!test_ds) {
        std::printf("k-NN: skipped (an image folder has no labelled test split; run 'lcmae eval' on a labelled dataset)\n");
        return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t ntr = a.eval_limit_train > 0 ? std::min<std::size_t>(a.eval_limit_train, train_ds->size()) : train_ds->size();
    const std::size_t nte = a.eval_limit_test > 0 ? std::min<std::size_t>(a.eval_limit_test, test_ds->size()) : test_ds->size();
    eval::KnnConfig kc;  // k 20, T 0.07
    kc.threads = ctx.threads();
    backend::Cpu fp32 = ctx;  // features in FP32 whatever --precision trained with
    fp32.set_precision(backend::Precision::Fp32);
    kc.k = int(std::min<std::size_t>(std::size_t(kc.k), ntr));
    std::printf("k-NN: online encoder of %s, %zu train / %zu test images\n", ckpt.string().c_str(), ntr, nte);
    std::fflush(stdout);
    const eval::ImagePrep prep{.image = int(dims.image), .channels = int(dims.channels), .norm = norm};
    eval::FrozenEncoder<float> enc(fp32, dims, 256);
    enc.load(fp32, ckpt.string(), "");
    auto ftr = enc.extract(fp32, *train_ds, prep, ntr, {}, ctx.threads());
    auto fte = enc.extract(fp32, *test_ds, prep, nte, {}, ctx.threads());
    std::ostringstream js;
    js << "{\n  \"protocol\": \"knn\",\n  \"source\": \"online\",\n  \"checkpoint\": " << json_text(ckpt.string())
       << ",\n  \"data\": " << json_text(a.data) << ",\n  \"n_train\": " << ntr << ",\n  \"n_test\": " << nte << ",\n  \"k\": " << kc.k
       << ",\n  \"temperature\": " << json_real(kc.temperature) << ",\n  \"results\": {";
    const std::pair<const char*, std::pair<eval::FeatureSet*, eval::FeatureSet*>> sets[] = {{"mean", {&ftr.mean, &fte.mean}},
                                                                                           {"cls", {&ftr.cls, &fte.cls}}};
    for (const auto& [name, tt] : sets) {
        const auto r = eval::knn_classify(*tt.first, *tt.second, kc);
        std::printf("k-NN (k %d, T %g) %-4s top-1 %.2f%%", kc.k, kc.temperature, name, r.top1);
        if (r.has_top5) std::printf("  top-5 %.2f%%", r.top5);
        std::printf("\n");
        js << (name[0] == 'm' ? "\n" : ",\n") << "    \"" << name << "\": {\"top1\": " << json_real(r.top1);
        if (r.has_top5) js << ", \"top5\": " << json_real(r.top5);
        js << "}";
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    js << "\n  },\n  \"seconds\": " << json_real(secs) << "\n}\n";
    const auto out = std::filesystem::path(a.out) / "eval-knn.json";
    write_atomic(out, js.str());
    std::printf("k-NN took %.1f s; wrote %s\n", secs, out.string().c_str());
}

/// After training (on any device): the k-NN on the CPU, from the checkpoint just saved, when the
/// run ended normally on rank 0.
int finish(const Args& a, int rc, const Outcome& outcome) {
    if (rc != 0 || !outcome.evaluate || a.no_eval) return rc;
    const backend::Cpu host = a.threads > 0 ? backend::Cpu(a.threads) : backend::Cpu();
    run_knn(a, host, outcome.encoder, std::filesystem::path(a.out) / "checkpoint.safetensors");
    return 0;
}

}  // namespace

#ifndef LCMAE_PRETRAIN_CUDA
// This build has no CUDA compiler: --device cuda explains itself instead of training.
int lcmae::tools::pretrain::check_cuda(const Args& a) {
    std::fprintf(stderr, "%s: --device cuda: this lcmae was built without CUDA (CMake found no nvcc when it was configured); "
                         "use --device cpu, or rebuild with the CUDA toolkit installed\n", help_command(a).c_str());
    return 2;
}
int lcmae::tools::pretrain::train_on_cuda(const Args& a, const dist::Mpi*, Outcome*) { return check_cuda(a); }
#endif

namespace lcmae::tools {
int cmd_pretrain(int argc, char** argv) {
    const Args a = parse(argc, argv);
    if (a.device == "cuda")
        if (const int rc = check_cuda(a)) return rc;  // before anything is written
    Outcome outcome;  // filled in by the training loop (rank 0)
#ifdef LCMAE_HAVE_MPI
    // Under mpirun every rank runs this; a plain start never initialises MPI (dist::Single).
    std::unique_ptr<dist::MpiSession> session;
    std::unique_ptr<dist::Mpi> comm;
    if (dist::launched_by_mpirun()) {
        session = std::make_unique<dist::MpiSession>();
        comm = std::make_unique<dist::Mpi>();
    }
    if (comm && comm->world() > 1) {
        // --threads 0 under mpirun: the host's cores shared among the ranks on it
        const int threads = a.threads > 0 ? int(a.threads) : std::max(1, backend::Cpu().threads() / comm->local_size());
        try {
            std::signal(SIGINT, request_stop);
            std::signal(SIGTERM, request_stop);
            std::string setup_error;
            if (comm->rank() == 0) try {
                    check_output_dir(a.out);
                    write_atomic(std::filesystem::path(a.out) / "config.json", config_json(a));
                } catch (const std::exception& e) {
                    setup_error = e.what();
                }
            std::uint64_t len = setup_error.size();
            comm->broadcast_host(&len, sizeof len, 0, "the output directory check");
            if (len) {
                if (comm->rank() == 0) std::fprintf(stderr, "error: %s\n", setup_error.c_str());
                return 1;
            }
            if (a.device == "cuda") return finish(a, train_on_cuda(a, comm.get(), &outcome), outcome);
            const backend::Cpu ctx(threads, precision_of(a));
            return finish(a, dispatch(pretrain::Run<backend::Cpu, dist::Mpi>{a, ctx, *comm, loader_threads(ctx), cpu_device(ctx), &outcome}),
                          outcome);
        } catch (const dist::CollectiveError& e) {  // every rank has it (rank 0's save or load): rank 0 says it
            if (comm->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
            return 1;
        } catch (const std::exception& e) {  // this rank alone: end every rank, naming this one
            comm->abort(e.what());
        }
    }
#endif
    // from here on Ctrl-C / SIGTERM stop cleanly (a stop while the data loads saves step 0)
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
    check_output_dir(a.out);  // an unusable --out fails now, not after training
    write_atomic(std::filesystem::path(a.out) / "config.json", config_json(a));
    if (a.device == "cuda") return finish(a, train_on_cuda(a, nullptr, &outcome), outcome);
    backend::Cpu ctx = a.threads > 0 ? backend::Cpu(a.threads) : backend::Cpu();
    ctx.set_precision(precision_of(a));  // bf16 on a CPU without AVX512-BF16: an error saying so
    const dist::Single single;
    return finish(a, dispatch(pretrain::Run<backend::Cpu, dist::Single>{a, ctx, single, loader_threads(ctx), cpu_device(ctx), &outcome}),
                  outcome);
}
}  // namespace lcmae::tools
