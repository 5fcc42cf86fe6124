// lcmae/analysis/reconstruct.hpp - MAE reconstructions (SPEC 5): the encoder on the visible
// patches of a random mask, MAE's decoder predicting every patch; with norm_pix the prediction is
// un-normalised with the statistics of the original patch (mean, unbiased variance, eps 1e-6, as
// the loss standardised it). The grid shows per image: original / masked / reconstruction /
// reconstruction with the visible patches pasted in.
//
// Model: a main-job checkpoint's online encoder (timm names) and decoder (decoder_embed,
// mask_token, decoder_blocks.i, decoder_norm, decoder_pred), or SPEC 1's random initialisation.
// The prediction is downloaded and the images assembled in host code. Patch values are ordered
// (row, column, channel) within a patch, as MAE's patchify (ops::patchify_target).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/data/transforms.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/models/mae_decoder.hpp"
#include "lcmae/models/masking.hpp"
#include "lcmae/models/vit_encoder.hpp"

namespace lcmae::analysis {

/// Index in a (C, S, S) image of value k of patch n (G = S / p patches per row).
inline long patch_pixel(long C, long S, long p, long n, long k) {
    const long G = S / p, c = k % C, kx = (k / C) % p, ky = k / (C * p);
    return (c * S + (n / G) * p + ky) * S + (n % G) * p + kx;
}

/// The decoder a main-job checkpoint holds: width from decoder_embed.weight (Dd, D), depth from the
/// decoder_blocks.i present; heads are not stored in the shapes and come from the caller.
inline models::DecoderDims decoder_dims_in(const std::filesystem::path& path, long heads) {
    LCMAE_CHECK(std::filesystem::exists(path), "checkpoint file '" << path.string() << "' does not exist");
    const io::SafetensorsFile file(path);
    LCMAE_CHECK(file.contains("decoder_embed.weight"),
                "checkpoint '" << path.string() << "' has no MAE decoder (no decoder_embed.weight): reconstruction needs a "
                                                   "main-job checkpoint of MAE or LC-MAE");
    models::DecoderDims d;
    d.dim = static_cast<long>(file.info("decoder_embed.weight").shape[0]);
    d.depth = 0;
    while (file.contains("decoder_blocks." + std::to_string(d.depth) + ".norm1.weight")) ++d.depth;
    d.heads = heads;
    return d;
}

/// One batch of reconstructions, (B, C, S, S) each, in the input's normalisation.
struct Reconstruction {
    long B = 0;
    std::vector<float> original, masked_fill, recon, pasted;
    std::vector<std::uint8_t> mask;  // (B, L), 1 = removed
};

template <class Backend = backend::Cpu>
class Reconstructor {
public:
    Reconstructor(const Backend& ctx, const vit::VitDims& enc, const models::DecoderDims& dd, long max_batch, double mask_ratio,
                  bool norm_pix)
        : enc_dims_(enc), max_batch_(max_batch), K_(models::len_keep(enc.tokens(), mask_ratio)), norm_pix_(norm_pix) {
        encoder_ = std::make_unique<models::VitEncoder<float, Backend>>(
            P_, enc, models::EncoderOptions{.max_batch = max_batch, .max_keep = K_, .forward_only = true});
        decoder_ = std::make_unique<models::MaeDecoder<float, Backend>>(P_, enc, dd, max_batch, K_);
        P_.allocate();
        images_.resize(static_cast<std::size_t>(max_batch * enc.channels * enc.image * enc.image));
        keep_.resize(static_cast<std::size_t>(max_batch * K_));
        (void)ctx;
    }

    void init_random(const Backend& ctx, std::uint64_t seed) {
        auto host = host_layout(P_);
        encoder_->init(host, seed);
        decoder_->init(host, seed);
        upload(ctx, static_cast<long>(P_.planned_size()), host.values().data(), P_.values().data());
    }
    /// The online encoder and the decoder of a main-job checkpoint (other tensors are ignored).
    void load(const Backend& ctx, const std::filesystem::path& path) {
        LCMAE_CHECK(std::filesystem::exists(path), "checkpoint file '" << path.string() << "' does not exist");
        const io::SafetensorsFile file(path);
        io::load_params(ctx, file, P_, "", io::Strictness::IgnoreUnexpected);
    }

    /// B prepared images (host, normalised (B, C, S, S)), masks drawn from rng.
    Reconstruction run(const Backend& ctx, const float* images, long B, Rng& rng) {
        const vit::VitDims& e = enc_dims_;
        LCMAE_CHECK(B >= 1 && B <= max_batch_, "Reconstructor: batch " << B << " is outside [1, " << max_batch_ << "]");
        const long L = e.tokens(), P = e.patch_dim(), img = e.channels * e.image * e.image;
        const std::vector<std::int64_t> ids = models::random_shuffle(B, L, rng);
        std::vector<std::int64_t> keep(static_cast<std::size_t>(B * K_));
        Reconstruction r;
        r.B = B;
        r.mask.resize(static_cast<std::size_t>(B * L));
        models::keep_set(ids.data(), B, L, 0, K_, keep.data(), r.mask.data());
        upload(ctx, B * img, images, images_.data());
        upload(ctx, B * K_, keep.data(), keep_.data());
        using Ids = dptr<Backend, const std::int64_t>;
        const auto latent = encoder_->forward(ctx, P_, dptr<Backend, const float>(images_.data()), B, Ids(keep_.data()), K_);
        const auto pred_dev = decoder_->forward(ctx, P_, latent, B, Ids(keep_.data()), K_);
        std::vector<float> pred(static_cast<std::size_t>(B * L * P));
        download(ctx, B * L * P, pred_dev, pred.data());

        r.original.assign(images, images + B * img);
        r.masked_fill = r.recon = r.pasted = r.original;
        for (long b = 0; b < B; ++b)
            for (long n = 0; n < L; ++n) {
                const float* x = images + b * img;
                double mean = 0, var = 0;
                for (long k = 0; k < P; ++k) mean += x[patch_pixel(e.channels, e.image, e.patch, n, k)];
                mean /= double(P);
                for (long k = 0; k < P; ++k) var += std::pow(x[patch_pixel(e.channels, e.image, e.patch, n, k)] - mean, 2);
                const double sd = std::sqrt(var / double(P - 1) + 1e-6);
                const bool removed = r.mask[static_cast<std::size_t>(b * L + n)] != 0;
                for (long k = 0; k < P; ++k) {
                    const long at = b * img + patch_pixel(e.channels, e.image, e.patch, n, k);
                    const double v = pred[static_cast<std::size_t>((b * L + n) * P + k)];
                    r.recon[static_cast<std::size_t>(at)] = static_cast<float>(norm_pix_ ? v * sd + mean : v);
                    if (removed) {
                        r.masked_fill[static_cast<std::size_t>(at)] = std::numeric_limits<float>::quiet_NaN();
                        r.pasted[static_cast<std::size_t>(at)] = r.recon[static_cast<std::size_t>(at)];
                    }
                }
            }
        return r;
    }

    long kept() const noexcept { return K_; }

private:
    vit::VitDims enc_dims_;
    long max_batch_, K_;
    bool norm_pix_;
    ParamArena<float, Backend> P_;
    std::unique_ptr<models::VitEncoder<float, Backend>> encoder_;
    std::unique_ptr<models::MaeDecoder<float, Backend>> decoder_;
    dbuffer<Backend, float> images_;
    dbuffer<Backend, std::int64_t> keep_;
};

/// (C, S, S) normalised -> 8-bit BGR, `scale` times larger (nearest); NaN (a removed patch) is gray.
inline cv::Mat to_display(const float* x, long C, long S, const data::Normalization& norm, int scale) {
    cv::Mat out(static_cast<int>(S), static_cast<int>(S), CV_8UC3);
    for (long y = 0; y < S; ++y)
        for (long xx = 0; xx < S; ++xx) {
            cv::Vec3b px;
            for (int ch = 0; ch < 3; ++ch) {
                const long c = C == 1 ? 0 : 2 - ch;  // BGR from RGB
                const float v = x[(c * S + y) * S + xx];
                const double u = std::isnan(v) ? 0.5 : double(v) * norm.std[static_cast<std::size_t>(c)] + norm.mean[static_cast<std::size_t>(c)];
                px[ch] = cv::saturate_cast<std::uint8_t>(std::lround(255.0 * std::clamp(u, 0.0, 1.0)));
            }
            out.at<cv::Vec3b>(static_cast<int>(y), static_cast<int>(xx)) = px;
        }
    cv::Mat big;
    cv::resize(out, big, {}, scale, scale, cv::INTER_NEAREST);
    return big;
}

/// The grid: one row per image, columns original / masked / reconstruction / pasted.
inline cv::Mat reconstruction_grid(const Reconstruction& r, long C, long S, const data::Normalization& norm, int scale = 4) {
    const int cell = static_cast<int>(S) * scale, pad = 4;
    cv::Mat grid(static_cast<int>(r.B) * (cell + pad) + pad, 4 * (cell + pad) + pad, CV_8UC3, cv::Scalar(255, 255, 255));
    const long img = C * S * S;
    for (long b = 0; b < r.B; ++b) {
        const std::vector<float>* cols[4] = {&r.original, &r.masked_fill, &r.recon, &r.pasted};
        for (int k = 0; k < 4; ++k)
            to_display(cols[k]->data() + b * img, C, S, norm, scale)
                .copyTo(grid(cv::Rect(pad + k * (cell + pad), pad + static_cast<int>(b) * (cell + pad), cell, cell)));
    }
    return grid;
}

}  // namespace lcmae::analysis
