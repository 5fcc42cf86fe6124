// Must not compile: a Loss type that is not a loss policy (the LossPolicy concept).
#include <lcmae/lcmae.hpp>

using namespace lcmae;
struct Cosine {};  // no kind, no name
#ifdef LCMAE_COMPILE_FAIL
using Model = LCMAE<vit::Base16, Cosine, crop::SimpleResized>;
#else
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized>;
#endif
constexpr long n_tokens = Model::spec().encoder.tokens();  // a member access instantiates the class (an alias does not)

int main() { return n_tokens == 196 ? 0 : 1; }
