// lcmae/backend/cpu/patches.hpp - patchify in both layouts and its inverse (contracts in ops.hpp).
//
// Two patch layouts exist and must not be confused (SPEC 1):
//   * conv order (c, ky, kx): what the conv weight (D, C, p, p) multiplies, so the patch
//     embedding is a Linear on patches laid out this way;
//   * target order (ky, kx, c), channel fastest: the pixel target and the decoder's output.
#pragma once

#include <cstdint>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::ops {

template <class T>
inline void patchify_conv(const backend::Cpu& ctx, long C, long S, long p, long B, const T* images,
                          const std::int64_t* ids, long K, T* out) {
    const long G = S / p, L = G * G, Pd = C * p * p;
    if (ids)
        for (long i = 0; i < B * K; ++i)
            LCMAE_CHECK(ids[i] >= 0 && ids[i] < L, "token id " << ids[i] << " of sample " << i / K << " is outside [0, " << L << ")");
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (B * K * Pd > (1 << 16))
    for (long i = 0; i < B * K; ++i) {
        const long b = i / K, k = i % K;
        const long n = ids ? static_cast<long>(ids[i]) : k;
        const long r = n / G, c0 = n % G;
        T* o = out + i * Pd;
        for (long c = 0; c < C; ++c)
            for (long ky = 0; ky < p; ++ky) {
                const T* src = images + ((b * C + c) * S + r * p + ky) * S + c0 * p;
                for (long kx = 0; kx < p; ++kx) *o++ = src[kx];
            }
    }
}

template <class T>
inline void patchify_target(const backend::Cpu&, long C, long S, long p, long B, const T* images, T* out) {
    const long G = S / p, L = G * G;
    for (long b = 0; b < B; ++b)
        for (long n = 0; n < L; ++n) {
            const long r = n / G, c0 = n % G;
            T* o = out + (b * L + n) * C * p * p;
            for (long ky = 0; ky < p; ++ky)
                for (long kx = 0; kx < p; ++kx)
                    for (long c = 0; c < C; ++c) *o++ = images[((b * C + c) * S + r * p + ky) * S + c0 * p + kx];
        }
}

template <class T>
inline void unpatchify_target(const backend::Cpu&, long C, long S, long p, long B, const T* patches, T* images) {
    const long G = S / p, L = G * G;
    for (long b = 0; b < B; ++b)
        for (long n = 0; n < L; ++n) {
            const long r = n / G, c0 = n % G;
            const T* s = patches + (b * L + n) * C * p * p;
            for (long ky = 0; ky < p; ++ky)
                for (long kx = 0; kx < p; ++kx)
                    for (long c = 0; c < C; ++c) images[((b * C + c) * S + r * p + ky) * S + c0 * p + kx] = *s++;
        }
}

}  // namespace lcmae::ops
