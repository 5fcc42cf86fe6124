// Must not compile: Image 225 is not divisible by Patch 16.
#include <lcmae/vit/config.hpp>

#ifdef LCMAE_COMPILE_FAIL
using Bad = lcmae::vit::Config<192, 12, 3, 16, 225, 3>;
#else
using Bad = lcmae::vit::Config<192, 12, 3, 16, 224, 3>;
#endif
constexpr int tokens = Bad::tokens;

int main() { return tokens == 196 ? 0 : 1; }
