// lcmae/nn/patch_embed.hpp - the patch geometry and the patch embedding. The two patch layouts
// (conv order for the embedding, target order for the pixel target) are the ops patchify_conv and
// patchify_target (backend/ops.hpp).
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

/// A p x p stride-p convolution C -> D with bias, as a Linear on conv-ordered patches. Its weight
/// keeps timm's name and conv shape: patch_embed.proj.weight (D, C, p, p).
template <class T, class Backend = backend::Cpu>
struct PatchEmbed {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    PatchGeometry geom;
    long dim = 0;
    Linear<T, Backend> proj;

    PatchEmbed() = default;
    PatchEmbed(ParamArena<T, Backend>& P, const std::string& prefix, const PatchGeometry& g, long d) : geom(g), dim(d) {
        LCMAE_CHECK(g.patch > 0 && g.image % g.patch == 0,
                    "image " << g.image << " is not divisible by patch " << g.patch);
        proj = Linear<T, Backend>(P, prefix + ".proj", g.patch_dim(), d, true, Shape{d, g.channels, g.patch, g.patch});
    }
    /// SPEC 1: xavier-uniform on the (D, C p p) view; bias U(+-1/sqrt(C p p)) (PyTorch's conv default).
    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        init_xavier_uniform(P.value(proj.w), dim, geom.patch_dim(), init_rng(seed, proj.name + ".weight"));
        init_uniform(P.value(proj.b), dim, 1.0 / std::sqrt(double(geom.patch_dim())), init_rng(seed, proj.name + ".bias"));
    }
};

}  // namespace lcmae::nn
