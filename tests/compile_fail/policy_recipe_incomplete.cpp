// Must not compile: a Recipe that does not provide the policy types (not derived from recipe::Default).
#include <lcmae/lcmae.hpp>

using namespace lcmae;
struct MyRecipe { using Guidance = guidance::Global; };
#ifdef LCMAE_COMPILE_FAIL
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, MyRecipe>;
#else
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, recipe::Default>;
#endif
constexpr long n_tokens = Model::spec().encoder.tokens();  // a member access instantiates the class (an alias does not)

int main() { return n_tokens == 196 ? 0 : 1; }
