// Must not compile: a Crop type that is not a crop policy (the CropPolicy concept): here a loss tag.
#include <lcmae/lcmae.hpp>

using namespace lcmae;

#ifdef LCMAE_COMPILE_FAIL
using Model = LCMAE<vit::Base16, loss::Cosine, loss::Cosine>;
#else
using Model = LCMAE<vit::Base16, loss::Cosine, crop::RandomResized>;
#endif
constexpr long n_tokens = Model::spec().encoder.tokens();  // a member access instantiates the class (an alias does not)

int main() { return n_tokens == 196 ? 0 : 1; }
