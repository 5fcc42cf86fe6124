// lcmae/nn/init.hpp - SPEC 1's initialisers, each drawing from a per-tensor random stream.
//
// Why per-tensor streams: the value of `blocks.3.attn.qkv.weight` depends only on (seed, name),
// not on the order in which layers are initialised, so adding a head never changes the encoder.
// Host data only: layers initialise into a host arena (host_layout in core/arena.hpp) and the
// model uploads it once, so the loops below never touch backend memory.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include "lcmae/core/rng.hpp"

namespace lcmae::nn {

/// FNV-1a hash of a name, the stream id of that tensor's initialisation.
constexpr std::uint64_t name_hash(std::string_view s) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ull;
    }
    return h;
}

inline Rng init_rng(std::uint64_t seed, std::string_view tensor_name) {
    return Rng(seed, stream_id(name_hash(tensor_name), 0x1417ull));
}

/// U(-bound, bound) into n values.
template <class T>
void init_uniform(T* w, long n, double bound, Rng rng) {
    for (long i = 0; i < n; ++i) w[i] = T(rng.uniform(-bound, bound));
}

/// xavier_uniform for a (fan_out, fan_in) matrix: U(+-sqrt(6 / (fan_in + fan_out))).
template <class T>
void init_xavier_uniform(T* w, long fan_out, long fan_in, Rng rng) {
    init_uniform(w, fan_out * fan_in, std::sqrt(6.0 / double(fan_in + fan_out)), rng);
}

/// N(0, std^2) into n values.
template <class T>
void init_normal(T* w, long n, double std_dev, Rng rng) {
    for (long i = 0; i < n; ++i) w[i] = T(std_dev * rng.normal());
}

template <class T>
void init_constant(T* w, long n, T value) {
    for (long i = 0; i < n; ++i) w[i] = value;
}

}  // namespace lcmae::nn
