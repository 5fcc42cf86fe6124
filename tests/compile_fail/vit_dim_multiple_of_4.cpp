// Must not compile: Dim 6 is divisible by Heads 3 but not a multiple of 4 (only that assert fires).
#include <lcmae/vit/config.hpp>

#ifdef LCMAE_COMPILE_FAIL
using Bad = lcmae::vit::Config<6, 1, 3, 4, 32, 3>;
#else
using Bad = lcmae::vit::Config<12, 1, 3, 4, 32, 3>;
#endif
constexpr int tokens = Bad::tokens;

int main() { return tokens == 64 ? 0 : 1; }
