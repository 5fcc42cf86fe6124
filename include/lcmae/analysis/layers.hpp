// lcmae/analysis/layers.hpp - what each block of a frozen encoder does with a dataset's images:
// per block, the mean of the patch tokens at the block's output (one feature per image, for the
// spectrum) and each head's softmax attention (for the mean attention distance and the attention
// maps). The encoder runs on all tokens, forward only, but keeps every block's activations
// (eval::FrozenEncoder with keep_all_blocks); the probabilities and block outputs are downloaded
// once per batch and block and reduced in host code, so any backend works.
//
//   analysis::LayerProbe<> probe(ctx, FashionMnistBackbone::dims(), 64);
//   probe.encoder().load(ctx, "checkpoint.safetensors");        // or init_random(ctx, seed)
//   analysis::LayerStats s = probe.run(ctx, *test_ds, prep, 500);
//   // s.features (depth, n, D); s.distance.at(layer, head) in pixels
//
// At another input size (the paper draws its attention maps larger than pre-training): a probe
// built for the new image size takes the trained probe's encoder with its position table
// resampled to the new grid (resample_from, timm's resample_abs_pos_embed):
//
//   analysis::LayerProbe<> big(ctx, vit::VitDims{...dims, .image = 56}, 1);
//   big.resample_from(probe);                                    // 7 x 7 table -> 14 x 14
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "lcmae/analysis/distance.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/nn/pos_embed.hpp"

namespace lcmae::analysis {

struct LayerStats {
    long layers = 0, n = 0, dim = 0;
    std::vector<float> features;  // (layers, n, dim): mean of the patch tokens at each block's output
    DistanceTable distance;       // (layers, heads), pixels

    const float* layer_features(long layer) const {
        return features.data() + static_cast<std::size_t>(layer * n * dim);
    }
};

template <class Backend = backend::Cpu>
class LayerProbe {
public:
    LayerProbe(const Backend& ctx, const vit::VitDims& dims, long max_batch)
        : enc_(ctx, dims, max_batch, /*keep_all_blocks=*/true) {
        images_.resize(static_cast<std::size_t>(max_batch * dims.channels * dims.image * dims.image));
    }

    eval::FrozenEncoder<float, Backend>& encoder() noexcept { return enc_; }
    const vit::VitDims& dims() const noexcept { return enc_.dims(); }

    /// Takes src's encoder for this probe's input size: the same parameters (the patch embedding
    /// and the blocks do not depend on the grid, so every shape agrees) and src's position table
    /// (1 + G^2, D) resampled to this probe's grid G' with nn::resample_abs_pos_embed (bicubic,
    /// antialiased, the CLS row kept; the same grid keeps the table unchanged). Host backends.
    void resample_from(LayerProbe& src)
        requires Backend::host_memory
    {
        const vit::VitDims &d = dims(), &s = src.dims();
        vit::VitDims s_at_d = s;  // src's encoder at this probe's image size
        s_at_d.image = d.image;
        LCMAE_CHECK(s_at_d == d,
                    "LayerProbe::resample_from: the encoders differ in more than the image size (width "
                        << s.dim << " -> " << d.dim << ", depth " << s.depth << " -> " << d.depth << ", heads " << s.heads << " -> "
                        << d.heads << ", patch " << s.patch << " -> " << d.patch << ", channels " << s.channels << " -> " << d.channels << ")");
        enc_.copy_from(src.encoder().params());
        enc_.encoder().set_pos_embed(
            nn::resample_abs_pos_embed(src.encoder().encoder().pos_embed(), s.dim, s.grid(), s.grid(), d.grid(), d.grid()));
    }

    /// Forward on B prepared images (host, normalised CHW); afterwards block_probs / block_output
    /// read the blocks' activations.
    void forward(const Backend& ctx, const float* host_images, long B) {
        const vit::VitDims& d = dims();
        LCMAE_CHECK(B >= 1 && B <= enc_.max_batch(), "LayerProbe: batch " << B << " is outside [1, " << enc_.max_batch() << "]");
        upload(ctx, B * d.channels * d.image * d.image, host_images, images_.data());
        enc_.encoder().forward(ctx, enc_.params(), dptr<Backend, const float>(images_.data()), B,
                               dptr<Backend, const std::int64_t>(nullptr), 0);
        B_ = B;
    }
    /// Block i's softmax attention of the last forward, (B, H, N, N) in host memory.
    std::vector<float> block_probs(const Backend& ctx, long i) {
        const vit::VitDims& d = dims();
        const long N = 1 + d.tokens();
        std::vector<float> out(static_cast<std::size_t>(B_ * d.heads * N * N));
        download(ctx, static_cast<long>(out.size()), enc_.encoder().attention_probs(i), out.data());
        return out;
    }
    /// Block i's output of the last forward (before the final norm), (B, N, D) in host memory.
    std::vector<float> block_output(const Backend& ctx, long i) {
        const vit::VitDims& d = dims();
        std::vector<float> out(static_cast<std::size_t>(B_ * (1 + d.tokens()) * d.dim));
        auto& enc = enc_.encoder();
        download(ctx, static_cast<long>(out.size()),
                 dptr<Backend, const float>(enc.activations().at(enc.blocks().at(static_cast<std::size_t>(i)).out)), out.data());
        return out;
    }

    /// The first `limit` images of ds (0 = all): every block's mean patch token per image and its
    /// mean attention distance per head. `threads` host threads prepare images (0 = all cores).
    LayerStats run(const Backend& ctx, const data::Dataset& ds, const eval::ImagePrep& prep, std::size_t limit = 0,
                   int threads = 0) {
        const vit::VitDims& d = dims();
        LCMAE_CHECK(prep.image == d.image && prep.channels == d.channels,
                    "LayerProbe: images are prepared at " << prep.image << " px x " << prep.channels
                                                          << " channels but the encoder takes " << d.image << " px x " << d.channels);
        const std::size_t n = eval::detail::limited(ds, limit);
        const long N = 1 + d.tokens(), L = d.tokens(), D = d.dim;
        LayerStats s;
        s.layers = d.depth;
        s.n = static_cast<long>(n);
        s.dim = D;
        s.features.assign(static_cast<std::size_t>(d.depth) * n * static_cast<std::size_t>(D), 0.0f);
        s.distance = DistanceTable(d.depth, d.heads);
        s.distance.images = s.n;
        const std::vector<double> dist = grid_distances(d.grid(), double(d.patch));
        std::vector<float> host(static_cast<std::size_t>(enc_.max_batch()) * prep.floats());
        const int th = threads > 0 ? threads : omp_get_max_threads();
        for (std::size_t first = 0; first < n; first += static_cast<std::size_t>(enc_.max_batch())) {
            const long B = static_cast<long>(std::min<std::size_t>(static_cast<std::size_t>(enc_.max_batch()), n - first));
            eval::detail::prepare_images(ds, prep, first, static_cast<std::size_t>(B), host.data(), th);
            forward(ctx, host.data(), B);
            for (long i = 0; i < d.depth; ++i) {
                const std::vector<float> probs = block_probs(ctx, i);
                s.distance.add(i, probs.data(), B, N, dist);
                const std::vector<float> x = block_output(ctx, i);
                for (long b = 0; b < B; ++b) {
                    float* f = s.features.data() + (static_cast<std::size_t>(i) * n + first + static_cast<std::size_t>(b)) * static_cast<std::size_t>(D);
                    for (long t = 1; t < N; ++t)
                        for (long k = 0; k < D; ++k) f[k] += x[static_cast<std::size_t>((b * N + t) * D + k)] / float(L);
                }
            }
        }
        return s;
    }

private:
    eval::FrozenEncoder<float, Backend> enc_;
    dbuffer<Backend, float> images_;
    long B_ = 0;
};

}  // namespace lcmae::analysis
