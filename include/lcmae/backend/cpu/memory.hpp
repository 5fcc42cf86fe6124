// lcmae/backend/cpu/memory.hpp - the memory services of backend::Cpu (contracts in ops.hpp):
// fill, device-to-device copy, upload (host -> backend) and download (backend -> host). On the CPU
// all four are copies within host memory; they exist so generic code never touches tensor memory.
#pragma once

#include <algorithm>
#include <cstring>

#include "lcmae/backend/cpu.hpp"

namespace lcmae::ops {

template <class T>
inline void fill(const backend::Cpu&, long n, T value, T* dst) {
    std::fill(dst, dst + n, value);
}
template <class T>
inline void copy(const backend::Cpu&, long n, const T* src, T* dst) {
    if (n > 0) std::memmove(dst, src, sizeof(T) * static_cast<std::size_t>(n));
}
template <class T>
inline void upload(const backend::Cpu&, long n, const T* host_src, T* dst) {
    if (n > 0) std::memcpy(dst, host_src, sizeof(T) * static_cast<std::size_t>(n));
}
template <class T>
inline void download(const backend::Cpu&, long n, const T* src, T* host_dst) {
    if (n > 0) std::memcpy(host_dst, src, sizeof(T) * static_cast<std::size_t>(n));
}
/// dst[r, 0:cols] = src[r, 0:cols] for r < rows, with row strides ld_src and ld_dst (elements).
template <class T>
inline void copy_rows(const backend::Cpu&, long rows, long cols, const T* src, long ld_src, T* dst, long ld_dst) {
    for (long r = 0; r < rows; ++r) std::memcpy(dst + r * ld_dst, src + r * ld_src, sizeof(T) * static_cast<std::size_t>(cols));
}
/// dst[r, 0:cols] += src[r, 0:cols], strided as copy_rows.
template <class T>
inline void add_rows(const backend::Cpu&, long rows, long cols, const T* src, long ld_src, T* dst, long ld_dst) {
    for (long r = 0; r < rows; ++r) {
        const T* s = src + r * ld_src;
        T* d = dst + r * ld_dst;
        for (long c = 0; c < cols; ++c) d[c] += s[c];
    }
}

}  // namespace lcmae::ops
