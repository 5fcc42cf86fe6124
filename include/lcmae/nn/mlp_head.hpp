// lcmae/nn/mlp_head.hpp - the projector / predictor stack of SPEC 3: bias-free Linear layers with
// BatchNorm1d + ReLU between them and no norm after the last. Depth 0 is the identity.
// timm/PyTorch Sequential naming: layer i's Linear is `<prefix>.<3i>`, its BN `<prefix>.<3i+1>`
// (ReLU at 3i+2 has no tensors), so depth 2 gives head.0.weight, head.1.*, head.3.weight.
//
// A head may run several times per step (the online branch sees two views, each with its own
// BatchNorm batch statistics), so activations are planned per *call*: forward(call = 0, 1, ...)
// saves into that call's slots and backward(call) reads them.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "lcmae/nn/batchnorm.hpp"
#include "lcmae/nn/linear.hpp"

namespace lcmae::nn {

struct MlpHeadPlan {
    long in = 0, hidden = 4096, out = 0;
    int depth = 2;
    long max_rows = 0;
    int calls = 1;
};

template <class T, class Backend = backend::Cpu>
struct MlpHead {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    MlpHeadPlan plan;
    std::vector<Linear<T, Backend>> linears;
    std::vector<BatchNorm1d<T, Backend>> norms;
    struct CallSlots {
        std::vector<Slot> z, a, mean, rstd;  // z_i = Linear_i(a_i); a_{i+1} = relu(BN(z_i)), a_0 = input
    };
    std::vector<CallSlots> calls;
    Slot scratch0, scratch1;
    std::vector<CPtr> inputs;  // the a_0 of each call, kept by the caller until backward
    // SyncBatchNorm: the data-parallel group (null: single-process BatchNorm) and its scratch
    const dist::Reducer<Backend>* group = nullptr;
    dbuffer<Backend, double> sync_sums;

    /// Data-parallel training: every BatchNorm of this head uses the global batch's statistics.
    void set_reducer(const dist::Reducer<Backend>* r) {
        group = r;
        if (r && plan.depth > 1) sync_sums.resize(static_cast<std::size_t>(2 * plan.hidden + 1));
    }

    MlpHead() = default;
    MlpHead(ParamArena<T, Backend>& P, ActivationArena<T, Backend>& A, const std::string& prefix, const MlpHeadPlan& p) : plan(p) {
        LCMAE_CHECK(p.depth >= 0, "head '" << prefix << "': depth must be >= 0, got " << p.depth);
        LCMAE_CHECK(p.depth != 0 || p.in == p.out, "head '" << prefix << "' of depth 0 is the identity, so in ("
                                                            << p.in << ") must equal out (" << p.out << ")");
        LCMAE_CHECK(p.calls >= 1 && p.max_rows >= 1, "head '" << prefix << "' needs calls >= 1 and max_rows >= 1");
        for (int i = 0; i < p.depth; ++i) {
            linears.emplace_back(P, prefix + "." + std::to_string(3 * i), width_in(i), width_out(i), false);
            if (i + 1 < p.depth) norms.emplace_back(P, prefix + "." + std::to_string(3 * i + 1), width_out(i));
        }
        calls.resize(static_cast<std::size_t>(p.calls));
        for (auto& c : calls)
            for (int i = 0; i < p.depth; ++i) {
                c.z.push_back(A.reserve(p.max_rows * width_out(i)));
                if (i + 1 < p.depth) {
                    c.a.push_back(A.reserve(p.max_rows * width_out(i)));
                    c.mean.push_back(A.reserve(width_out(i)));
                    c.rstd.push_back(A.reserve(width_out(i)));
                }
            }
        long widest = std::max(p.in, p.out);
        if (p.depth > 1) widest = std::max(widest, p.hidden);
        scratch0 = A.reserve(p.max_rows * widest);
        scratch1 = A.reserve(p.max_rows * widest);
        inputs.assign(static_cast<std::size_t>(p.calls), CPtr(nullptr));
    }
    long width_in(int i) const { return i == 0 ? plan.in : plan.hidden; }
    long width_out(int i) const { return i + 1 == plan.depth ? plan.out : plan.hidden; }

    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        for (const auto& l : linears) l.init(P, seed);
        for (const auto& n : norms) n.init(P, seed);
    }

    /// x (rows, in) -> returns (rows, out). train: BatchNorm uses (and updates) batch statistics.
    CPtr forward(const Backend& ctx, ParamArena<T, Backend>& P, ActivationArena<T, Backend>& A, CPtr x, long rows,
                     bool train, int call = 0) {
        LCMAE_CHECK(call >= 0 && call < plan.calls, "head call " << call << " was not planned (calls " << plan.calls << ")");
        LCMAE_CHECK(rows >= 1 && rows <= plan.max_rows, "head batch " << rows << " is outside [1, " << plan.max_rows << "]");
        inputs[static_cast<std::size_t>(call)] = x;
        if (plan.depth == 0) return x;
        const auto& c = calls[static_cast<std::size_t>(call)];
        CPtr a = x;
        for (int i = 0; i < plan.depth; ++i) {
            Ptr z = A.at(c.z[i]);
            linears[i].forward(ctx, P, a, z, rows);
            if (i + 1 == plan.depth) return z;
            Ptr u = A.at(c.a[i]);
            if (train && group)
                norms[i].forward_train(ctx, P, z, u, A.at(c.mean[i]), A.at(c.rstd[i]), rows, *group, sync_sums.data());
            else if (train)
                norms[i].forward_train(ctx, P, z, u, A.at(c.mean[i]), A.at(c.rstd[i]), rows);
            else
                norms[i].forward_eval(ctx, P, z, u, rows);
            relu_forward(ctx, rows * width_out(i), u, u);
            a = u;
        }
        return a;
    }

    /// dy (rows, out) -> dx (rows, in) written (may be null). Needs a train-mode forward of `call`.
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, ActivationArena<T, Backend>& A, CPtr dy, Ptr dx, long rows,
                  int call = 0) {
        LCMAE_CHECK(call >= 0 && call < plan.calls, "head call " << call << " was not planned");
        if (plan.depth == 0) {
            if (dx) copy(ctx, rows * plan.in, dy, dx);
            return;
        }
        const auto& c = calls[static_cast<std::size_t>(call)];
        CPtr d = dy;
        // d lives in scratch1 after the first layer; da always goes to scratch0 (never aliasing d),
        // and the BN backward writes the new d back into scratch1, whose old value is consumed.
        Ptr da = A.at(scratch0);
        Ptr dz = A.at(scratch1);
        for (int i = plan.depth - 1; i >= 0; --i) {
            CPtr a = i == 0 ? inputs[static_cast<std::size_t>(call)] : A.at(c.a[i - 1]);
            if (i == 0) {
                linears[i].backward(ctx, P, a, d, dx, rows);
                break;
            }
            linears[i].backward(ctx, P, a, d, da, rows);
            // relu: the saved a_i = relu(u) is > 0 exactly where u > 0
            relu_backward(ctx, rows * width_in(i), a, da, da);
            if (group)
                norms[i - 1].backward(ctx, P, A.at(c.z[i - 1]), A.at(c.mean[i - 1]), A.at(c.rstd[i - 1]), da, dz, rows,
                                      *group, sync_sums.data());
            else
                norms[i - 1].backward(ctx, P, A.at(c.z[i - 1]), A.at(c.mean[i - 1]), A.at(c.rstd[i - 1]), da, dz, rows);
            d = dz;
        }
    }

    double flops_forward(long rows) const {
        double f = 0;
        for (const auto& l : linears) f += l.flops_forward(rows);
        return f;
    }
};

}  // namespace lcmae::nn
