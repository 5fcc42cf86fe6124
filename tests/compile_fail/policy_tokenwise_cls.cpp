// Must not compile: token-wise guidance pooling the CLS token.
#include <lcmae/lcmae.hpp>

using namespace lcmae;
struct TokenWiseCls : recipe::Default { using Guidance = guidance::TokenWise; using Pool = tokens::Cls; };
struct GlobalCls : recipe::Default { using Pool = tokens::Cls; };
#ifdef LCMAE_COMPILE_FAIL
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, TokenWiseCls>;
#else
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, GlobalCls>;
#endif
constexpr long n_tokens = Model::spec().encoder.tokens();  // a member access instantiates the class (an alias does not)

int main() { return n_tokens == 196 ? 0 : 1; }
