// bench_cuda_step - one whole training step (Trainer<float, backend::Cuda>::micro_batch: forward,
// backward, AdamW, EMA) of LC-MAE and of MAE on the GPU.
//
//   default: ViT-B/16 at 224 px (encoder 768 x 12 blocks x 12 heads, patch 16), MAE decoder
//            512 x 8 x 16, head hidden 4096, mask ratio 0.75; LC-MAE = symmetric views, cosine
//            guidance loss (both views through the encoder, the EMA target over both full views);
//            MAE = the same encoder and decoder without guidance. Batch 128 per view (--batch N).
//   --small: a small model (192 x 4 x 3, patch 16, 64 px; decoder 128 x 2 x 4; head hidden 256;
//            batch 16) for a quick sanity run.
//   Precisions: fp32 (strict FP32 GEMMs), tf32 (TF32 tensor-core GEMMs) and bf16 (Precision::Bf16:
//   "BF16 GEMM operands": every float GEMM converts A and B to bf16 and accumulates in FP32). In all
//   three, storage (activations, weights, optimiser) and every other op are FP32: bf16 here is not
//   yet the full BF16 mode of issue 8 (bf16 activations), and pays a conversion per GEMM operand.
//
// Method: the views are synthetic uniform [-1, 1) images made once on the host, in pinned memory
// (cudaHostRegister); the model uploads them at the start of every step (its API takes host views),
// so the timed step INCLUDES that upload; the same upload is timed on its own and reported (column
// "upload ms"), and "s/step" excludes it (step - upload). 3 warm-up steps, then the median of
// --steps (>= 10) steps, each timed with CUDA events on the context's stream around
// trainer.micro_batch (which ends with AdamW and the EMA update, and downloads the loss scalars
// once). TFLOP/s = model.flops_step(B) (GEMMs and attention products, forward + backward + the
// target's forward; AdamW/EMA are bandwidth, not FLOPs, and are not counted) / (s/step).
// Memory: "peak GiB" = device memory in use (cudaMemGetInfo: total - free) after the steps minus
// before the model was built, i.e. everything the model, trainer, cuBLAS and the context allocated
// (nothing is allocated per step, so the level after the steps is the peak); "arenas GiB" is what the
// model and the optimiser planned (parameters, gradients, target, moments, activations).
//
// Usage: bench_cuda_step [--small] [--batch N] [--steps N] [--json FILE] [--only lcmae|mae]
//                        [--precision LIST] [--device D] [--attention batched|per-head|fused] [--graph]
//        LIST: comma-separated fp32, tf32, bf16 ("both" = fp32,tf32); default fp32,tf32,bf16.
//        --attention: the context's AttentionPath for the whole run (default: the build's default,
//        batched); fused runs its tensor-core kernels under tf32 / bf16 only (fp32: batched).
//        --graph: CUDA graphs of the step's forward + backward (backend/cuda/graph.cuh; the
//        warm-up steps record them, the timed steps replay them).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lcmae/backend/cuda.cuh"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/train/trainer.hpp"

using lcmae::backend::Cuda;
using lcmae::backend::Precision;
using namespace lcmae;

namespace {

struct Options {
    bool small = false;
    long batch = -1;  // default: 128, or 16 with --small
    int steps = 10;
    int warmup = 3;
    std::string json;
    std::string only;  // "", "lcmae", "mae"
    std::string precision = "fp32,tf32,bf16";
    int device = 0;
    std::string attention;  // "": the default path
    bool graph = false;     // --graph: replay the step's device work as a CUDA graph
};

struct Row {
    std::string model, precision;
    long batch = 0;
    double step_s = 0, step_incl_upload_s = 0, upload_ms = 0, images_s = 0, tflops = 0, peak_gib = 0, arenas_gib = 0;
    double flops = 0, optim_gb = 0, loss = 0;
    int steps = 0;
};

models::ModelSpec make_spec(bool lcmae_model, const Options& o) {
    models::ModelSpec s;
    if (o.small) {
        s.encoder = vit::VitDims{192, 4, 3, 16, 64, 3, 4};
        s.decoder = models::DecoderDims{128, 2, 4};
        s.head_hidden = 256;
    } else {
        s.encoder = vit::VitDims{768, 12, 12, 16, 224, 3, 4};
        s.decoder = models::DecoderDims{512, 8, 16};
        s.head_hidden = 4096;
    }
    s.loss = lcmae_model ? models::GuidanceLoss::Cosine : models::GuidanceLoss::None;
    s.views = models::ViewSchedule::Symmetric;
    s.mask_ratio = 0.75;
    s.max_batch = o.batch;
    return s;
}

double used_bytes() {
    std::size_t free_b = 0, total_b = 0;
    LCMAE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return double(total_b - free_b);
}

/// Synthetic views: uniform [-1, 1) from a cheap integer hash (host), pinned for the uploads.
struct HostViews {
    std::vector<float> v1, v2;
    bool pinned = false;
    explicit HostViews(long n) : v1(static_cast<std::size_t>(n)), v2(static_cast<std::size_t>(n)) {
        for (long i = 0; i < n; ++i) {
            v1[i] = hash01(std::uint64_t(i) * 2 + 1) * 2.0f - 1.0f;
            v2[i] = hash01(std::uint64_t(i) * 2 + 2) * 2.0f - 1.0f;
        }
        pinned = cudaHostRegister(v1.data(), v1.size() * sizeof(float), cudaHostRegisterDefault) == cudaSuccess &&
                 cudaHostRegister(v2.data(), v2.size() * sizeof(float), cudaHostRegisterDefault) == cudaSuccess;
        if (!pinned) (void)cudaGetLastError();  // pageable then: uploads are slower, still correct
    }
    ~HostViews() {
        if (pinned) {
            (void)cudaHostUnregister(v1.data());
            (void)cudaHostUnregister(v2.data());
        }
    }
    static float hash01(std::uint64_t x) {
        x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb53ca87c6ed3ULL; x ^= x >> 33;
        return float(x >> 40) * 0x1.0p-24f;
    }
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Milliseconds of one upload of the step's views (what forward_backward does first), median of 5.
double upload_ms(const Cuda& ctx, const HostViews& hv, float* dev, long n, int views) {
    cudaEvent_t a, b;
    LCMAE_CUDA_CHECK(cudaEventCreate(&a));
    LCMAE_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<double> t;
    for (int r = 0; r < 5; ++r) {
        LCMAE_CUDA_CHECK(cudaEventRecord(a, ctx.stream()));
        ops::upload(ctx, n, hv.v1.data(), dev);
        if (views == 2) ops::upload(ctx, n, hv.v2.data(), dev + n);
        LCMAE_CUDA_CHECK(cudaEventRecord(b, ctx.stream()));
        LCMAE_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        LCMAE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    LCMAE_CUDA_CHECK(cudaEventDestroy(a));
    LCMAE_CUDA_CHECK(cudaEventDestroy(b));
    return median(t);
}

/// Builds one model + trainer, then runs every requested precision on it.
void run_model(bool lcmae_model, const Options& o, const std::vector<Precision>& precisions, Cuda& ctx,
               std::vector<Row>& rows) {
    const auto spec = make_spec(lcmae_model, o);
    const char* name = lcmae_model ? "LC-MAE (cosine, symmetric)" : "MAE";
    const long B = o.batch;
    const long img = B * spec.encoder.channels * spec.encoder.image * spec.encoder.image;
    ctx.synchronize();
    const double used0 = used_bytes();
    const auto t_build = std::chrono::steady_clock::now();
    models::LcmaeModel<float, Cuda> model(ctx, spec, 1);
    train::TrainConfig cfg;
    cfg.batch = B;
    cfg.epochs = 100;
    cfg.warmup_epochs = 1;
    train::Trainer<float, Cuda> trainer(ctx, model, cfg, 1000);
    HostViews hv(img);
    ctx.synchronize();
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_build).count();
    const std::size_t params = model.params().planned_size();
    const std::size_t target = model.has_target() ? model.target_params().planned_size() : 0;
    const double arenas = double(model.activation_bytes()) + 4.0 * (2.0 * params + target + 2.0 * params);
    // AdamW reads p, g, m, v and writes p, m, v; the EMA reads target and online and writes target.
    const double optim_bytes = 4.0 * (7.0 * double(params) + 3.0 * double(target));
    std::printf("# %s: %.1f M parameters (+ %.1f M target), built in %.1f s; views %s\n", name, params / 1e6, target / 1e6,
                build_s, hv.pinned ? "pinned" : "pageable (cudaHostRegister failed)");
    std::fflush(stdout);
    // a scratch device copy for timing the upload alone
    lcmae::backend::CudaBuffer<float> upload_dst(static_cast<std::size_t>(2 * img));
    const double up_ms = upload_ms(ctx, hv, upload_dst.data(), img, 2);
    for (Precision p : precisions) {
        ctx.set_precision(p);
        Row row;
        row.model = name;
        row.precision = lcmae::backend::precision_name(p);
        row.batch = B;
        double loss = 0;
        for (int i = 0; i < o.warmup; ++i) loss = trainer.micro_batch(ctx, hv.v1.data(), hv.v2.data(), B).losses.total;
        cudaEvent_t a, b;
        LCMAE_CUDA_CHECK(cudaEventCreate(&a));
        LCMAE_CUDA_CHECK(cudaEventCreate(&b));
        std::vector<double> times;
        for (int i = 0; i < o.steps; ++i) {
            LCMAE_CUDA_CHECK(cudaEventRecord(a, ctx.stream()));
            loss = trainer.micro_batch(ctx, hv.v1.data(), hv.v2.data(), B).losses.total;
            LCMAE_CUDA_CHECK(cudaEventRecord(b, ctx.stream()));
            LCMAE_CUDA_CHECK(cudaEventSynchronize(b));
            float ms = 0;
            LCMAE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
            times.push_back(ms * 1e-3);
        }
        LCMAE_CUDA_CHECK(cudaEventDestroy(a));
        LCMAE_CUDA_CHECK(cudaEventDestroy(b));
        ctx.check_errors();
        row.steps = o.steps;
        row.step_incl_upload_s = median(times);
        row.upload_ms = up_ms;
        row.step_s = row.step_incl_upload_s - up_ms * 1e-3;
        row.images_s = double(B) / row.step_s;
        row.flops = model.flops_step(B);
        row.tflops = row.flops / row.step_s / 1e12;
        row.peak_gib = (used_bytes() - used0 - double(upload_dst.bytes())) / double(1ull << 30);  // minus the timing scratch
        row.arenas_gib = arenas / double(1ull << 30);
        row.optim_gb = optim_bytes / 1e9;
        row.loss = loss;
        rows.push_back(row);
        std::printf("# %s %s: median %.4f s/step (incl. upload %.4f s), last loss %.5f\n", name, row.precision.c_str(),
                    row.step_s, row.step_incl_upload_s, loss);
        std::fflush(stdout);
    }
    ctx.set_precision(Precision::Fp32);
}

void write_json(const std::string& path, const std::vector<Row>& rows, const char* device, const Options& o,
                double total_s, const char* attention) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) {
        std::fprintf(stderr, "bench_cuda_step: cannot write %s\n", path.c_str());
        return;
    }
    std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"preset\": \"%s\",\n  \"warmup\": %d,\n  \"total_s\": %.2f,\n", device,
                 o.small ? "small" : "vit-b16-224", o.warmup, total_s);
    std::fprintf(f, "  \"attention\": \"%s\",\n  \"graph\": %s,\n", attention, o.graph ? "true" : "false");
    std::fprintf(f, "  \"bf16\": \"bf16 GEMM operands, FP32 accumulation and storage\",\n  \"rows\": [\n");
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::fprintf(f,
                     "    {\"model\": \"%s\", \"precision\": \"%s\", \"batch\": %ld, \"steps\": %d, \"s_per_step\": %.6f, "
                     "\"s_per_step_incl_upload\": %.6f, \"upload_ms\": %.3f, \"images_per_s\": %.2f, \"flops_step\": %.6e, "
                     "\"tflops\": %.3f, \"peak_gpu_gib\": %.3f, \"arenas_gib\": %.3f, \"optimizer_gb_per_step\": %.3f, "
                     "\"last_loss\": %.6f}%s\n",
                     r.model.c_str(), r.precision.c_str(), r.batch, r.steps, r.step_s, r.step_incl_upload_s, r.upload_ms,
                     r.images_s, r.flops, r.tflops, r.peak_gib, r.arenas_gib, r.optim_gb, r.loss,
                     i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
    const auto t0 = std::chrono::steady_clock::now();
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* what) -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_cuda_step: %s needs a value\n", what);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--small") o.small = true;
        else if (a == "--batch") o.batch = std::atol(value("--batch").c_str());
        else if (a == "--steps") o.steps = std::atoi(value("--steps").c_str());
        else if (a == "--json") o.json = value("--json");
        else if (a == "--only") o.only = value("--only");
        else if (a == "--precision") o.precision = value("--precision");
        else if (a == "--device") o.device = std::atoi(value("--device").c_str());
        else if (a == "--attention") o.attention = value("--attention");
        else if (a == "--graph") o.graph = true;
        else {
            std::fprintf(stderr,
                         "usage: bench_cuda_step [--small] [--batch N] [--steps N] [--json FILE] [--only lcmae|mae] "
                         "[--precision fp32,tf32,bf16|both] [--device D] [--attention batched|per-head|fused] [--graph]\n");
            return 2;
        }
    }
    lcmae::backend::AttentionPath attention = lcmae::backend::kDefaultAttentionPath;
    if (o.attention == "batched") attention = lcmae::backend::AttentionPath::Batched;
    else if (o.attention == "per-head") attention = lcmae::backend::AttentionPath::PerHead;
    else if (o.attention == "fused") attention = lcmae::backend::AttentionPath::Fused;
    else if (!o.attention.empty()) {
        std::fprintf(stderr, "bench_cuda_step: unknown attention path '%s' (batched, per-head, fused)\n",
                     o.attention.c_str());
        return 2;
    }
    if (o.batch <= 0) o.batch = o.small ? 16 : 128;
    if (o.steps < 1) o.steps = 1;
    try {
        if (!Cuda::available()) {
            std::printf("bench_cuda_step: no CUDA device, nothing to measure\n");
            return 0;
        }
        Cuda ctx(o.device);
        ctx.set_attention_path(attention);
        if (o.graph) ctx.set_graphs(true);
        cudaDeviceProp prop{};
        LCMAE_CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
        std::printf("# device %d: %s, %d SMs, %.1f GiB; preset %s, batch %ld per view, %d warm-up + %d timed steps; "
                    "attention path %s, CUDA graphs %s\n",
                    o.device, prop.name, prop.multiProcessorCount, double(prop.totalGlobalMem) / double(1ull << 30),
                    o.small ? "small" : "ViT-B/16 224 px", o.batch, o.warmup, o.steps,
                    lcmae::backend::attention_path_name(ctx.attention_path()), ctx.graphs() ? "on" : "off");
        std::vector<Precision> precisions;
        {
            std::string list = o.precision;
            std::size_t pos = 0;
            while (pos <= list.size()) {
                const std::size_t comma = std::min(list.find(',', pos), list.size());
                const std::string t = list.substr(pos, comma - pos);
                pos = comma + 1;
                if (t == "fp32") precisions.push_back(Precision::Fp32);
                else if (t == "tf32") precisions.push_back(Precision::Tf32);
                else if (t == "bf16") precisions.push_back(Precision::Bf16);
                else if (t == "both") {
                    precisions.push_back(Precision::Fp32);
                    precisions.push_back(Precision::Tf32);
                } else {
                    std::fprintf(stderr, "bench_cuda_step: unknown precision '%s' (fp32, tf32, bf16, both)\n", t.c_str());
                    return 2;
                }
            }
        }
        std::vector<Row> rows;
        if (o.only.empty() || o.only == "lcmae") run_model(true, o, precisions, ctx, rows);
        if (o.only.empty() || o.only == "mae") run_model(false, o, precisions, ctx, rows);
        const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("\n| model | precision | batch | s/step | images/s | TFLOP/s | upload ms (excluded) | peak GPU GiB | arenas GiB | AdamW+EMA GB/step |\n");
        std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
        for (const Row& r : rows)
            std::printf("| %s | %s | %ld | %.4f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |\n", r.model.c_str(),
                        r.precision.c_str(), r.batch, r.step_s, r.images_s, r.tflops, r.upload_ms, r.peak_gib, r.arenas_gib,
                        r.optim_gb);
        std::printf("\nbf16 = BF16 GEMM operands (A, B rounded to bf16, FP32 accumulation and storage; not yet bf16 activations).\n");
        std::printf("s/step: median of %d CUDA-event-timed trainer.micro_batch calls (forward, backward, AdamW, EMA) minus the\n"
                    "views' upload (timed alone: upload ms); TFLOP/s from model.flops_step(B) (AdamW/EMA bytes are not FLOPs);\n"
                    "peak GPU GiB = cudaMemGetInfo in-use growth since before the model was built. Total run %.1f s.\n",
                    o.steps, total_s);
        if (!o.json.empty()) write_json(o.json, rows, prop.name, o, total_s, lcmae::backend::attention_path_name(ctx.attention_path()));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_cuda_step: %s\n", e.what());
        return 1;
    }
}
