// lcmae/backend/graph_cache.hpp - replaying a step's device work instead of issuing it again (issue
// 8: "the training step as one CUDA graph"). A model owns one graph cache and runs its device work
// through it:
//
//     cache.run(ctx, key, [&] { ...enqueue the forward and backward... });
//
// A backend with graphs (backend::Cuda: `using graph_cache = CudaGraphCache`, backend/cuda/graph.cuh)
// records the work once per key and replays it; every other backend (the CPU, the test backends)
// gets NoGraphCache, which simply calls the function. The key says what the work depends on (batch,
// loss scale, which path): for one key the function must enqueue the same work on the same memory
// every time, and change no host state a later call needs. key 0 means "never record".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <type_traits>

namespace lcmae::backend {

/// Runs the work every time (no graphs on this backend).
struct NoGraphCache {
    template <class Ctx, class F>
    void run(const Ctx&, std::uint64_t, F&& f) {
        f();
    }
    long launches() const noexcept { return 0; }
};

namespace detail {
template <class B, class = void>
struct graph_cache_of {
    using type = NoGraphCache;
};
template <class B>
struct graph_cache_of<B, std::void_t<typename B::graph_cache>> {
    using type = typename B::graph_cache;
};
}  // namespace detail

/// The backend's graph cache type: B::graph_cache where it has one, else NoGraphCache.
template <class B>
using graph_cache_t = typename detail::graph_cache_of<B>::type;

/// A graph key from the values the work depends on (never 0: 0 stays "do not record").
inline constexpr std::uint64_t graph_key(std::initializer_list<std::uint64_t> values) noexcept {
    std::uint64_t h = 0;
    for (const std::uint64_t v : values) h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h == 0 ? 1 : h;
}

}  // namespace lcmae::backend
