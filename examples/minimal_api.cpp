// examples/minimal_api.cpp - the README's usage, compiled: a typed LC-MAE model and an ablation row,
// a few training steps on random images, a checkpoint. No data pipeline needed.
#include <cstdio>
#include <vector>

#include <lcmae/lcmae.hpp>

using namespace lcmae;

using Model = LCMAE<vit::Tiny32, loss::Cosine, crop::SimpleResized, backend::Cpu, recipe::Cpu>;
struct TokenWise : recipe::Cpu { using Guidance = guidance::TokenWise; };
using Row = LCMAE<vit::Tiny32, loss::Cosine, crop::SimpleResized, backend::Cpu, TokenWise>;

int main() try {
    const long batch = 8, iters_per_epoch = 4;
    Model model(RunConfig{.mask_ratio = 0.75, .alpha = 0.25, .max_batch = batch});
    backend::Cpu ctx;
    train::TrainConfig tc;
    tc.batch = batch;
    tc.epochs = 1;
    tc.warmup_epochs = 0.5;
    train::Trainer<float> trainer(model.engine(), tc, iters_per_epoch);
    std::vector<float> view1(batch * 3 * 32 * 32), view2(view1.size());
    Rng rng(1, 2);
    for (long it = 0; it < iters_per_epoch; ++it) {
        for (auto& v : view1) v = float(rng.normal());
        for (auto& v : view2) v = float(rng.normal());
        const auto r = trainer.micro_batch(ctx, view1.data(), view2.data(), batch);
        std::printf("step %lld: loss %.4f (mim %.4f, guidance %.4f), lr %.2e\n", (long long)trainer.step(),
                    r.losses.total, r.losses.mim, r.losses.gg, r.lr);
    }
    trainer.save("minimal_api_run");
    std::printf("%zu parameters (+ %zu in the EMA target); saved minimal_api_run/checkpoint.safetensors\n",
                model.params().parameter_count(), model.target_params().value_count());
    Row row(RunConfig{.max_batch = batch});  // the token-wise ablation row builds too
    std::printf("token-wise row: %zu parameters\n", row.params().parameter_count());
    return 0;
} catch (const lcmae::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
