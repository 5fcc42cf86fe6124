// Must not compile: a Backend that is not a backend context (no ops, no handle types).
#include <lcmae/lcmae.hpp>

using namespace lcmae;
struct Cuda {};  // a type that merely has a backend's name
#ifdef LCMAE_COMPILE_FAIL
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, Cuda>;
#else
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu>;
#endif
constexpr long n_tokens = Model::spec().encoder.tokens();  // a member access instantiates the class (an alias does not)

int main() { return n_tokens == 196 ? 0 : 1; }
