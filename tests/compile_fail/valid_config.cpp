// Positive control for the compile-fail tests: valid configurations compile, and their derived
// dims are what SPEC 1 says. Built as a normal executable and run by CTest.
#include <cstdio>

#include <lcmae/vit/config.hpp>

namespace vit = lcmae::vit;

static_assert(vit::Backbone<vit::Tiny16> && vit::Backbone<vit::Base16> && vit::Backbone<vit::Large16>);
static_assert(vit::Tiny16::tokens == 196 && vit::Small16::tokens == 196 && vit::Huge14::tokens == 256);
static_assert(vit::Tiny32::tokens == 64 && vit::FashionMnist28::tokens == 49);
static_assert(vit::Base16::dims().head_dim() == 64 && vit::Base16::dims().mlp_hidden() == 3072);
// the neighbours of the compile-fail cases, which are valid
static_assert(vit::Config<192, 12, 3, 16, 224, 3>::grid == 14);
static_assert(vit::Config<12, 1, 3, 4, 32, 3>::dims().patch_dim() == 48);

int main() {
    constexpr auto d = vit::Tiny32::dims();
    std::printf("Tiny32: dim %ld heads %ld tokens %ld patch_dim %ld\n", d.dim, d.heads, d.tokens(), d.patch_dim());
    return d.tokens() == 64 && d.patch_dim() == 48 ? 0 : 1;
}
