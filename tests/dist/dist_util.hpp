// tests/dist/dist_util.hpp - what the MPI tests share: synthetic global batches, a rank's rows of
// them, training k micro-batches, and comparisons (relative, and bit-equality across ranks).
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "lcmae/dist/mpi.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/train/trainer.hpp"
#include "support/tiny_model.hpp"

namespace lcmae::test {

/// The two views of global micro-batch `micro` (G samples of the tiny model's 1 x 8 x 8 images):
/// a pure function of (micro, row), like the loader's per-sample streams.
template <class T>
void global_views(std::int64_t micro, long G, long img, std::vector<T>& v1, std::vector<T>& v2) {
    v1.resize(std::size_t(G * img));
    v2.resize(std::size_t(G * img));
    for (long g = 0; g < G; ++g) {
        Rng r(1234, stream_id(std::uint64_t(micro), std::uint64_t(g), 9));
        for (long i = 0; i < img; ++i) v1[std::size_t(g * img + i)] = T(r.uniform(-1, 1));
        for (long i = 0; i < img; ++i) v2[std::size_t(g * img + i)] = T(r.uniform(-1, 1));
    }
}
/// Rank `rank`'s rows of a global batch: global row j * world + rank (models::BatchShard).
template <class T>
std::vector<T> rank_rows(const std::vector<T>& global, long G, long img, int rank, int world) {
    std::vector<T> out;
    for (long g = rank; g < G; g += world) out.insert(out.end(), global.begin() + g * img, global.begin() + (g + 1) * img);
    return out;
}

/// Micro-batches [first, first + n) of a run with `b` samples per rank (global batch b * world).
template <class T, class Comm>
void train_micro(train::Trainer<T, backend::Cpu, Comm>& tr, const backend::Cpu& ctx, std::int64_t first, std::int64_t n,
                 long b, int rank, int world, long img, std::int64_t ipe) {
    std::vector<T> g1, g2;
    for (std::int64_t m = first; m < first + n; ++m) {
        global_views<T>(m, b * world, img, g1, g2);
        const auto v1 = rank_rows(g1, b * world, img, rank, world), v2 = rank_rows(g2, b * world, img, rank, world);
        tr.micro_batch(ctx, v1.data(), v2.data(), b);
        if (tr.iteration() == ipe) tr.end_epoch();
    }
}

inline bool is_qkv_bias(const std::string& name) {
    return name.size() > 14 && name.compare(name.size() - 14, 14, ".attn.qkv.bias") == 0;
}

/// max over tensors of max|a - b| / max|b| (per tensor, so a small tensor is not hidden by a
/// large one); names the worst tensor in `where`.
///
/// The key block [D, 2D) of every qkv bias is left out and returned in *key_bias_abs (max |a - b|):
/// its exact gradient is identically 0 (softmax ignores a constant added to a row of scores), so
/// AdamW's m / sqrt(v) turns rounding noise there into lr-sized steps in arbitrary directions, and
/// two runs that round differently (any two summation orders) move those elements apart by up to
/// ~lr per step (tests/models/test_reference_pytorch.cpp compares PyTorch the same way).
template <class T>
double max_rel_diff(const ParamArena<T, backend::Cpu>& a, const ParamArena<T, backend::Cpu>& b, std::string* where = nullptr,
                    double* key_bias_abs = nullptr) {
    double worst = 0;
    for (const auto& e : b.entries()) {
        const auto& ea = a.entry(e.name);
        double d = 0, m = 0;
        const bool qkv = is_qkv_bias(e.name);
        const std::size_t D = e.slot.count / 3;
        for (std::size_t i = 0; i < e.slot.count; ++i) {
            const double x = a.values()[ea.slot.offset + i], y = b.values()[e.slot.offset + i];
            if (qkv && i >= D && i < 2 * D) {
                if (key_bias_abs) *key_bias_abs = std::max(*key_bias_abs, std::abs(x - y));
                continue;
            }
            d = std::max(d, std::abs(x - y));
            m = std::max(m, std::abs(y));
        }
        const double r = m > 0 ? d / m : d;
        if (r > worst || std::isnan(r)) {
            worst = std::isnan(r) ? INFINITY : r;
            if (where) *where = e.name;
        }
    }
    return worst;
}

/// Whether `n` values are bit-equal on every rank (rank 0's copy is broadcast and compared).
inline bool bit_equal_across_ranks(const void* data, std::size_t bytes) {
    std::vector<char> root(bytes);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) std::memcpy(root.data(), data, bytes);
    MPI_Bcast(root.data(), int(bytes), MPI_BYTE, 0, MPI_COMM_WORLD);
    int same = std::memcmp(root.data(), data, bytes) == 0 ? 1 : 0, all = 0;
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all == 1;
}

/// A directory every rank names the same (rank 0's pid), removed by the destructor on rank 0.
struct SharedTempDir {
    std::filesystem::path path;
    explicit SharedTempDir(const std::string& tag) {
        int rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        long pid = rank == 0 ? long(::getpid()) : 0;
        MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
        path = std::filesystem::temp_directory_path() / ("lcmae-dist-" + tag + "-" + std::to_string(pid));
        if (rank == 0) std::filesystem::remove_all(path);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    ~SharedTempDir() {
        MPI_Barrier(MPI_COMM_WORLD);
        int rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        std::error_code ec;
        if (rank == 0) std::filesystem::remove_all(path, ec);
    }
};

}  // namespace lcmae::test
