// lcmae/dist/reducer.hpp - what a layer needs from the data-parallel group: an in-place sum over
// every rank of a few doubles in backend memory. SyncBatchNorm (nn/batchnorm.hpp) is its only
// user: it sums its column statistics between the two halves of its forward and backward.
//
// Why an interface and not a template parameter: the reduction sits deep inside the model
// (GuidanceBranch -> MlpHead -> BatchNorm1d), and making every model type carry the communicator
// would multiply the instantiations for one call per BatchNorm layer. The communicators
// (dist/mpi.hpp, dist/nccl.cuh) implement it; single-process training installs none, and the
// layers then run the unchanged single-process ops.
#pragma once

#include "lcmae/backend/tag.hpp"

namespace lcmae::dist {

template <class Backend>
struct Reducer {
    virtual ~Reducer() = default;
    /// x[0:n] = sum over ranks of x[0:n], in place, in the context's order (the GPU: its stream).
    /// `what` names the reduction in a timeout message.
    virtual void sum(const Backend& ctx, long n, dptr<Backend, double> x, const char* what) const = 0;
    virtual int world() const = 0;
};

}  // namespace lcmae::dist
