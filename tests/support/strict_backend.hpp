// tests/support/strict_backend.hpp - backend::Strict, the proof that a device backend fits.
//
// CPU memory behind a handle type that does NOT convert to T*: generic code (nn/, models/, optim/,
// train/, io/) compiled with Strict cannot dereference, memcpy, memset or loop over tensor memory,
// so any such access is a compile error. Every op forwards to the CPU op on the raw pointers, so
// results must be bit-identical to backend::Cpu (tests/strict/). It is declared AFTER the models
// are included by the tests, which also proves that generic code finds per-backend overloads
// through ADL at the point of instantiation (backend/tag.hpp).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "lcmae/backend/ops.hpp"
#include "lcmae/core/buffer.hpp"

namespace lcmae::backend {

namespace strict {

/// An opaque handle to T in Strict memory: offset arithmetic and null tests only.
template <class T>
class Ptr {
public:
    Ptr() = default;
    Ptr(std::nullptr_t) {}
    /// Ptr<T> -> Ptr<const T>, as T* -> const T*.
    template <class U>
        requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
    Ptr(Ptr<U> other) : p_(other.unsafe_raw()) {}

    template <class I>
        requires std::is_integral_v<I>
    Ptr operator+(I n) const { return Ptr(p_ + n); }
    template <class I>
        requires std::is_integral_v<I>
    Ptr& operator+=(I n) { p_ += n; return *this; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    friend bool operator==(Ptr a, Ptr b) noexcept { return a.p_ == b.p_; }
    friend bool operator==(Ptr a, std::nullptr_t) noexcept { return a.p_ == nullptr; }

    /// For Strict's own ops and buffers only (never called from generic code: grep finds it).
    T* unsafe_raw() const noexcept { return p_; }
    static Ptr unsafe_wrap(T* p) noexcept { return Ptr(p); }

private:
    explicit Ptr(T* p) : p_(p) {}
    T* p_ = nullptr;
};

/// An owning zeroed allocation handed out only as a Ptr.
template <class T>
class Buffer {
public:
    Buffer() = default;
    explicit Buffer(std::size_t n) : b_(n) {}
    void resize(std::size_t n) { b_.resize(n); }
    Ptr<T> data() noexcept { return Ptr<T>::unsafe_wrap(b_.data()); }
    Ptr<const T> data() const noexcept { return Ptr<const T>::unsafe_wrap(b_.data()); }
    std::size_t size() const noexcept { return b_.size(); }
    bool empty() const noexcept { return b_.empty(); }

private:
    AlignedBuffer<T> b_;
};

template <class X>
decltype(auto) unwrap(X&& x) { return std::forward<X>(x); }
template <class T>
T* unwrap(Ptr<T> p) { return p.unsafe_raw(); }

}  // namespace strict

struct Strict : ops::BackendTag {
    static constexpr const char* name = "strict";
    template <class T>
    using ptr = strict::Ptr<T>;
    template <class T>
    using buffer = strict::Buffer<T>;
    static constexpr bool host_memory = false;

    Strict() = default;
    explicit Strict(int threads) : cpu_(threads) {}
    const Cpu& cpu() const noexcept { return cpu_; }
    int threads() const noexcept { return cpu_.threads(); }
    void synchronize() const noexcept {}

private:
    Cpu cpu_;
};

}  // namespace lcmae::backend

namespace lcmae::ops {

// Every op of the catalogue, forwarded to the CPU op with the handles unwrapped.
#define LCMAE_STRICT_FORWARD(op)                                                                  \
    template <class... A>                                                                         \
    auto op(const backend::Strict& s, A&&... a)                                                   \
        -> decltype(op(s.cpu(), backend::strict::unwrap(std::forward<A>(a))...)) {                \
        return op(s.cpu(), backend::strict::unwrap(std::forward<A>(a))...);                       \
    }
LCMAE_FOR_EACH_OP(LCMAE_STRICT_FORWARD)
#undef LCMAE_STRICT_FORWARD

}  // namespace lcmae::ops
