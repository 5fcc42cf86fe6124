// Must not compile: Dim 190 is not divisible by Heads 3 (vit::Config's static_assert).
#include <lcmae/vit/config.hpp>

#ifdef LCMAE_COMPILE_FAIL
using Bad = lcmae::vit::Config<190, 12, 3, 16, 224, 3>;
#else
using Bad = lcmae::vit::Config<192, 12, 3, 16, 224, 3>;
#endif
constexpr int tokens = Bad::tokens;  // a member access instantiates the class (an alias does not)

int main() { return tokens == 196 ? 0 : 1; }
