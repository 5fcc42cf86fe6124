// A downstream program: builds a tiny ViT encoder through the public headers, runs one forward,
// and prints a line the consumer tests check. Shared by both consumer projects.
#include <cmath>
#include <cstdio>
#include <vector>

#include <lcmae/models/vit_encoder.hpp>
#include <lcmae/vit/config.hpp>

#ifdef LCMAE_CONSUMER_WITH_DATA
#include <opencv2/core/version.hpp>  // reachable only through lcmae::data's usage requirements
#include <lcmae/policies/crop.hpp>
#endif

using Tiny = lcmae::vit::Config<16, 2, 2, 4, 8, 1>;  // 4 tokens of width 16

int main() {
    const auto dims = Tiny::dims();
    lcmae::ParamArena<float> P;
    lcmae::models::VitEncoder<float> enc(P, dims, {.max_batch = 1});
    P.allocate();
    enc.init(P, 0);
    lcmae::backend::Cpu ctx(1);

    std::vector<float> images(static_cast<std::size_t>(dims.channels * dims.image * dims.image));
    for (std::size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(i % 7) / 7.0f - 0.5f;
    const float* out = enc.forward(ctx, P, images.data(), 1, nullptr, 0);

    // The final LayerNorm (weight 1, bias 0 at init) makes every row's mean ~0 and variance ~1.
    const long rows = 1 + dims.tokens(), D = dims.dim;
    double worst_mean = 0, worst_var = 0;
    bool finite = true;
    for (long r = 0; r < rows; ++r) {
        double s = 0, s2 = 0;
        for (long c = 0; c < D; ++c) {
            const double v = out[r * D + c];
            finite = finite && std::isfinite(v);
            s += v;
            s2 += v * v;
        }
        const double mean = s / D, var = s2 / D - mean * mean;
        worst_mean = std::fmax(worst_mean, std::fabs(mean));
        worst_var = std::fmax(worst_var, std::fabs(var - 1.0));
    }
    const bool ok = finite && worst_mean < 1e-4 && worst_var < 1e-2;
    std::printf("lcmae consumer: %ld params, output %ld x %ld, max|row mean| %.2e, max|row var - 1| %.2e\n",
                static_cast<long>(P.parameter_count()), rows, D, worst_mean, worst_var);
#ifdef LCMAE_CONSUMER_WITH_DATA
    std::printf("lcmae::data linked: OpenCV %s, default crop %s\n", CV_VERSION,
                lcmae::crop::SimpleResized::name.data());
#endif
    std::printf("%s\n", ok ? "LCMAE_CONSUMER_OK" : "LCMAE_CONSUMER_BAD");
    return ok ? 0 : 1;
}
