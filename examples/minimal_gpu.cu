// examples/minimal_gpu.cu - the README's GPU usage, compiled wherever nvcc exists: the same typed
// model on backend::Cuda, a few training steps on random images, a checkpoint (the same files the
// CPU writes). Without a GPU it says so and exits 0 (CI compiles it; the GPU check machine runs it).
#include <cstdio>
#include <vector>

#include <lcmae/lcmae.hpp>
#include <lcmae/backend/cuda.cuh>

using namespace lcmae;

using GpuModel = LCMAE<vit::Tiny32, loss::Cosine, crop::SimpleResized, backend::Cuda, recipe::Cpu>;

int main() try {
    if (!backend::Cuda::available()) {
        std::printf("minimal_gpu: no CUDA device; skipped (compiled only)\n");
        return 0;
    }
    const long batch = 8, iters_per_epoch = 4;
    backend::Cuda gpu(0, backend::Precision::Tf32);
    GpuModel model(gpu, RunConfig{.mask_ratio = 0.75, .alpha = 0.25, .max_batch = batch});
    train::TrainConfig tc;
    tc.batch = batch;
    tc.epochs = 1;
    tc.warmup_epochs = 0.5;
    GpuModel::trainer_type trainer(gpu, model.engine(), tc, iters_per_epoch);
    std::vector<float> view1(batch * 3 * 32 * 32), view2(view1.size());
    Rng rng(1, 2);
    for (long it = 0; it < iters_per_epoch; ++it) {
        for (auto& v : view1) v = float(rng.normal());
        for (auto& v : view2) v = float(rng.normal());
        const auto r = trainer.micro_batch(gpu, view1.data(), view2.data(), batch);
        std::printf("step %lld: loss %.4f (mim %.4f, guidance %.4f), lr %.2e\n", (long long)trainer.step(),
                    r.losses.total, r.losses.mim, r.losses.gg, r.lr);
    }
    gpu.check_errors();
    trainer.save(gpu, "minimal_gpu_run");
    std::printf("saved minimal_gpu_run/checkpoint.safetensors (loads on the CPU backend too)\n");
    return 0;
} catch (const lcmae::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
