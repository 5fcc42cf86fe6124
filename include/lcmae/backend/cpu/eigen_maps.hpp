// lcmae/backend/cpu/eigen_maps.hpp - Eigen views over our row-major buffers (no copies).
#pragma once

#include <Eigen/Core>

namespace lcmae::backend::cpu {

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MapRM = Eigen::Map<RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMapRM = Eigen::Map<const RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
inline MapRM<T> map_rm(T* p, long rows, long cols, long ld) {
    return MapRM<T>(p, rows, cols, Eigen::OuterStride<>(ld));
}
template <class T>
inline ConstMapRM<T> map_rm(const T* p, long rows, long cols, long ld) {
    return ConstMapRM<T>(p, rows, cols, Eigen::OuterStride<>(ld));
}

}  // namespace lcmae::backend::cpu
