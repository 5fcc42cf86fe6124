// lcmae/core/buffer.hpp - an owning, 64-byte aligned, zero-initialised array of trivially
// copyable values. Arenas (parameters, gradients, moments, activations) are each one of these.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "lcmae/core/error.hpp"

namespace lcmae {

inline constexpr std::size_t kBufferAlignment = 64;  // one cache line; also enough for AVX-512

template <class T>
class AlignedBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "AlignedBuffer holds trivially copyable values only");

public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t count) { resize(count); }
    AlignedBuffer(const AlignedBuffer& other) : AlignedBuffer(other.size_) {
        if (size_) std::memcpy(data_, other.data_, size_ * sizeof(T));
    }
    AlignedBuffer& operator=(const AlignedBuffer& other) {
        if (this != &other) {
            AlignedBuffer copy(other);
            swap(copy);
        }
        return *this;
    }
    AlignedBuffer(AlignedBuffer&& other) noexcept { swap(other); }
    AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
        AlignedBuffer moved(std::move(other));
        swap(moved);
        return *this;
    }
    ~AlignedBuffer() { std::free(data_); }

    /// Reallocates to `count` zeroed values (contents are not preserved).
    void resize(std::size_t count) {
        std::free(data_);
        data_ = nullptr;
        size_ = 0;
        if (count == 0) return;
        const std::size_t bytes = (count * sizeof(T) + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
        data_ = static_cast<T*>(std::aligned_alloc(kBufferAlignment, bytes));
        if (data_ == nullptr) LCMAE_FAIL("out of memory allocating " << bytes << " bytes");
        std::memset(static_cast<void*>(data_), 0, bytes);
        size_ = count;
    }
    void fill(T value) noexcept {
        for (std::size_t i = 0; i < size_; ++i) data_[i] = value;
    }
    void swap(AlignedBuffer& other) noexcept {
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
    }

    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    std::span<T> span() noexcept { return {data_, size_}; }
    std::span<const T> span() const noexcept { return {data_, size_}; }
    T* begin() noexcept { return data_; }
    T* end() noexcept { return data_ + size_; }
    const T* begin() const noexcept { return data_; }
    const T* end() const noexcept { return data_ + size_; }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace lcmae
