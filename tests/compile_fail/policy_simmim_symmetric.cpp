// Must not compile: the SimMIM baseline with the Symmetric view schedule.
#include <lcmae/lcmae.hpp>

using namespace lcmae;
struct SimMimSymmetric : recipe::Default { using Baseline = baseline::SimMim; };
#ifdef LCMAE_COMPILE_FAIL
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, SimMimSymmetric>;
#else
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, recipe::SimMim>;
#endif
constexpr long n_tokens = Model::spec().encoder.tokens();  // a member access instantiates the class (an alias does not)

int main() { return n_tokens == 196 ? 0 : 1; }
