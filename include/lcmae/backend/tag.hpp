// lcmae/backend/tag.hpp - the ADL anchor every backend context derives from.
//
// Generic code (nn/, models/, optim/, train/) calls ops UNQUALIFIED with the context first:
// `gemm(ctx, ...)`. Because every backend context type derives from ops::BackendTag, argument-
// dependent lookup searches namespace lcmae::ops at the point of instantiation, so an overload for a
// backend declared AFTER the models (backend::Cuda in a .cuh header, backend::Strict in the tests)
// is still found. A qualified call `ops::gemm(...)` inside a template would bind at definition time
// and miss it. Backends put their op overloads in namespace lcmae::ops.
#pragma once

namespace lcmae::ops {
struct BackendTag {};
}  // namespace lcmae::ops

namespace lcmae {
/// A backend's memory handle for T: `T*` on the CPU and for CUDA device memory, an opaque handle
/// for backend::Strict (tests). Generic code holds tensors only through these.
template <class B, class T>
using dptr = typename B::template ptr<T>;
/// A backend's owning allocation of T (RAII; resize(count) zero-fills; data() gives a dptr).
template <class B, class T>
using dbuffer = typename B::template buffer<T>;
}  // namespace lcmae
