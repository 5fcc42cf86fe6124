// lcmae/models/spec_rules.hpp - the structural rules of a model, each written ONCE: a constexpr
// predicate on ModelSpec and its message. The typed front end (lcmae.hpp) checks them with
// static_assert on LCMAE<...>::spec(), the engine (LcmaeModel) with LCMAE_CHECK on the run-time
// spec, so a rule and its sentence cannot drift apart. (C++20's static_assert takes only a string
// literal, hence the message macros.)
#pragma once

#include "lcmae/models/model_spec.hpp"

#define LCMAE_RULE_SIMMIM_VIEWS_MSG                                                                                 \
    "LC-SimMIM supports the Paper view schedule only (its encoder sees every token, so there are no disjoint keep " \
    "sets for the Symmetric schedule); use `using Views = views::Paper;` in the recipe, as recipe::SimMim does"
#define LCMAE_RULE_SIMMIM_GLOBAL_MSG "LC-SimMIM supports global guidance only; use `using Guidance = guidance::Global;`"
#define LCMAE_RULE_TOKENWISE_POOL_MSG                                                                               \
    "token-wise guidance regresses each visible token onto the target token at the same position, so it cannot "  \
    "pool the CLS token: with guidance::TokenWise or guidance::Both, Pool must be tokens::Visible"
#define LCMAE_RULE_DECODER_POSITIVE_MSG "the recipe's decoder dims must be positive"
#define LCMAE_RULE_DECODER_HEADS_MSG "the recipe's decoder_dim must be divisible by decoder_heads"
#define LCMAE_RULE_DECODER_SINCOS_MSG \
    "the recipe's decoder_dim must be a multiple of 4 (2-D sin-cos position embedding)"
#define LCMAE_RULE_HEADS_MSG "head_hidden must be positive and the head depths non-negative (0 = identity)"

namespace lcmae::models::rules {

constexpr bool simmim_views(const ModelSpec& s) { return s.baseline != Baseline::SimMim || s.views == ViewSchedule::Paper; }
constexpr bool simmim_global(const ModelSpec& s) {
    return s.baseline != Baseline::SimMim || s.guidance == GuidanceType::Global;
}
constexpr bool tokenwise_pool(const ModelSpec& s) {
    return s.guidance == GuidanceType::Global || s.pool == PoolTokens::Visible;
}
constexpr bool decoder_positive(const ModelSpec& s) {
    return s.decoder.dim > 0 && s.decoder.depth > 0 && s.decoder.heads > 0;
}
constexpr bool decoder_heads(const ModelSpec& s) { return s.decoder.heads > 0 && s.decoder.dim % s.decoder.heads == 0; }
constexpr bool decoder_sincos(const ModelSpec& s) { return s.decoder.dim % 4 == 0; }
constexpr bool heads(const ModelSpec& s) {
    return s.head_hidden > 0 && s.projector_depth >= 0 && s.predictor_depth >= 0;
}

}  // namespace lcmae::models::rules
