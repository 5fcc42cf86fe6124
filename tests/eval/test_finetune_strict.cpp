// backend::Strict runs the fine-tuning classifier (eval::FineTuneModel: encoder without final norm,
// drop path, mean pool, fc_norm, head) and its AdamW step with layer-wise lr decay: logits, every
// gradient and the updated parameters are bit-identical to backend::Cpu. Strict's handles do not
// convert to T*, so this file compiling proves the model touches tensor memory only through ops.
#include <doctest/doctest.h>

#include <vector>

#include "lcmae/eval/finetune.hpp"
// Declared after the models on purpose (generic code finds Strict's ops through ADL).
#include "support/strict_backend.hpp"

using namespace lcmae;

namespace {

template <class B>
struct Run {
    std::vector<float> logits, grads, values;
};

template <class B>
Run<B> step(const B& ctx) {
    const vit::VitDims dims{16, 2, 2, 2, 8, 1, 2};
    const long Bn = 4, C = 3;
    eval::FineTuneModel<float, B> model(ctx, dims, int(C), Bn, true);
    model.init_random(ctx, 11, 0.02);
    std::vector<float> images(static_cast<std::size_t>(Bn * 64));
    Rng r(1, 2);
    for (auto& v : images) v = static_cast<float>(r.normal());
    model.put_images(ctx, images.data(), Bn);
    const auto drop = models::drop_path_scales<float>(dims.depth, 0.5, Bn, 3, 0);
    model.encoder().set_drop_path(ctx, drop.data(), Bn);
    Run<B> out;
    out.logits.resize(static_cast<std::size_t>(Bn * C));
    download(ctx, Bn * C, model.forward(ctx, Bn), out.logits.data());
    std::vector<double> t(static_cast<std::size_t>(Bn * C));
    const int labels[Bn] = {0, 2, 1, 2};
    for (long b = 0; b < Bn; ++b) eval::smoothed_one_hot(C, labels[b], 0.1, t.data() + b * C);
    std::vector<float> d(static_cast<std::size_t>(Bn * C));
    eval::soft_cross_entropy(Bn, C, out.logits.data(), t.data(), d.data());
    auto& P = model.params();
    optim::zero_grad(ctx, P);
    model.backward_host(ctx, d.data());
    optim::assign_vit_layer_ids(P, int(dims.depth));
    optim::AdamW<float, B> opt(P, optim::AdamWConfig{.beta1 = 0.9, .beta2 = 0.999});
    opt.set_lr_scales(optim::layer_lr_scales(P, int(dims.depth), 0.75));
    const long n = static_cast<long>(P.planned_size());
    out.grads.resize(static_cast<std::size_t>(n));
    download(ctx, n, dptr<B, const float>(P.grads().data()), out.grads.data());
    opt.step(ctx, 1e-3);
    out.values.resize(static_cast<std::size_t>(n));
    download(ctx, n, dptr<B, const float>(P.values().data()), out.values.data());
    return out;
}

}  // namespace

TEST_CASE("Strict equals Cpu: fine-tuning classifier step (drop path, layer-wise lr decay)") {
    const auto a = step(backend::Cpu(2));
    const auto b = step(backend::Strict(2));
    CHECK(a.logits == b.logits);
    CHECK(a.grads == b.grads);
    CHECK(a.values == b.values);
    bool nonzero = false;
    for (float g : a.grads) nonzero = nonzero || g != 0.0f;
    CHECK(nonzero);
}
