// Must not compile: a recipe whose decoder width is not divisible by its heads.
#include <lcmae/lcmae.hpp>

using namespace lcmae;
struct BadDecoder : recipe::Default { static constexpr long decoder_heads = 12; };
#ifdef LCMAE_COMPILE_FAIL
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, BadDecoder>;
#else
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, recipe::Cpu>;
#endif
constexpr long n_tokens = Model::spec().encoder.tokens();  // a member access instantiates the class (an alias does not)

int main() { return n_tokens == 196 ? 0 : 1; }
