// lcmae/nn/patch_embed.hpp - patchify in both layouts and the patch embedding.
//
// Two patch layouts exist and must not be confused (SPEC 1):
//   * conv order (c, ky, kx): what the conv weight (D, C, p, p) multiplies, so the patch
//     embedding is a Linear on patches laid out this way;
//   * target order (ky, kx, c), channel fastest: the pixel target and the decoder's output.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "lcmae/nn/linear.hpp"

namespace lcmae::nn {

/// Geometry of a square image cut into square patches.
struct PatchGeometry {
    long channels = 0, image = 0, patch = 0;
    long grid() const { return image / patch; }
    long tokens() const { return grid() * grid(); }
    long patch_dim() const { return channels * patch * patch; }
};

/// images (B, C, H, W) -> out (B*K, C*p*p) in conv order (c, ky, kx), for the K token ids per
/// sample in `ids` (B, K), or all tokens in order when ids is null (K = L).
template <class T>
void patchify_conv(const PatchGeometry& g, const T* images, long B, const std::int64_t* ids, long K, T* out) {
    const long G = g.grid(), p = g.patch, C = g.channels, S = g.image, L = g.tokens();
    for (long b = 0; b < B; ++b)
        for (long k = 0; k < K; ++k) {
            const long n = ids ? static_cast<long>(ids[b * K + k]) : k;
            LCMAE_CHECK(n >= 0 && n < L, "token id " << n << " of sample " << b << " is outside [0, " << L << ")");
            const long r = n / G, c0 = n % G;
            T* o = out + (b * K + k) * g.patch_dim();
            for (long c = 0; c < C; ++c)
                for (long ky = 0; ky < p; ++ky) {
                    const T* src = images + ((b * C + c) * S + r * p + ky) * S + c0 * p;
                    for (long kx = 0; kx < p; ++kx) *o++ = src[kx];
                }
        }
}

/// images (B, C, H, W) -> out (B, L, p*p*C) in target order (ky, kx, c), channel fastest.
template <class T>
void patchify_target(const PatchGeometry& g, const T* images, long B, T* out) {
    const long G = g.grid(), p = g.patch, C = g.channels, S = g.image;
    for (long b = 0; b < B; ++b)
        for (long n = 0; n < g.tokens(); ++n) {
            const long r = n / G, c0 = n % G;
            T* o = out + (b * g.tokens() + n) * g.patch_dim();
            for (long ky = 0; ky < p; ++ky)
                for (long kx = 0; kx < p; ++kx)
                    for (long c = 0; c < C; ++c) *o++ = images[((b * C + c) * S + r * p + ky) * S + c0 * p + kx];
        }
}

/// Inverse of patchify_target: (B, L, p*p*C) -> (B, C, H, W).
template <class T>
void unpatchify_target(const PatchGeometry& g, const T* patches, long B, T* images) {
    const long G = g.grid(), p = g.patch, C = g.channels, S = g.image;
    for (long b = 0; b < B; ++b)
        for (long n = 0; n < g.tokens(); ++n) {
            const long r = n / G, c0 = n % G;
            const T* s = patches + (b * g.tokens() + n) * g.patch_dim();
            for (long ky = 0; ky < p; ++ky)
                for (long kx = 0; kx < p; ++kx)
                    for (long c = 0; c < C; ++c) images[((b * C + c) * S + r * p + ky) * S + c0 * p + kx] = *s++;
        }
}

/// A p x p stride-p convolution C -> D with bias, as a Linear on conv-ordered patches. Its weight
/// keeps timm's name and conv shape: patch_embed.proj.weight (D, C, p, p).
template <class T>
struct PatchEmbed {
    PatchGeometry geom;
    long dim = 0;
    Linear<T> proj;

    PatchEmbed() = default;
    PatchEmbed(ParamArena<T>& P, const std::string& prefix, const PatchGeometry& g, long d) : geom(g), dim(d) {
        LCMAE_CHECK(g.patch > 0 && g.image % g.patch == 0,
                    "image " << g.image << " is not divisible by patch " << g.patch);
        proj = Linear<T>(P, prefix + ".proj", g.patch_dim(), d, true, Shape{d, g.channels, g.patch, g.patch});
    }
    /// SPEC 1: xavier-uniform on the (D, C p p) view; bias U(+-1/sqrt(C p p)) (PyTorch's conv default).
    void init(ParamArena<T>& P, std::uint64_t seed) const {
        init_xavier_uniform(P.value(proj.w), dim, geom.patch_dim(), init_rng(seed, proj.name + ".weight"));
        init_uniform(P.value(proj.b), dim, 1.0 / std::sqrt(double(geom.patch_dim())), init_rng(seed, proj.name + ".bias"));
    }
};

}  // namespace lcmae::nn
