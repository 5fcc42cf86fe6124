// lcmae/backend/cuda/context.cuh - backend::Cuda, the GPU backend's context.
//
// A value type (like backend::Cpu) that generic code passes as the first argument of every op. It
// owns, through a shared_ptr to one Impl (copies share them; the last copy releases them):
//   * a non-blocking stream: every op of this context is enqueued on it, in call order;
//   * a cuBLAS handle bound to that stream, and a cuBLASLt handle;
//   * a workspace for cuBLAS(Lt) (given to cuBLAS with cublasSetWorkspace, so its kernels never
//     allocate behind our back; both handles run on the one stream, so they may share it);
//   * a small device scratch: per-block partial sums for the reductions and one double for the
//     host-returning reductions;
//   * growable scratch slots (scratch()): the two-stage column reductions' per-chunk partials and
//     the BF16 GEMM operand copies. A slot grows (after a stream sync: queued kernels may still use
//     the old memory) when an op needs more than it holds and is never shrunk, so after the first
//     step (warm-up) no op allocates;
//   * a device error record that kernels write when they meet invalid input they cannot report
//     otherwise (a token id out of range): reading it needs a sync, so it is read only when the
//     caller asks, by check_errors().
//
// Precision (for float storage; double GEMMs are always cublasDgemm):
//   Fp32 - strict FP32 (cublasGemmEx with CUBLAS_COMPUTE_32F): the parity mode, the default.
//   Tf32 - CUBLAS_COMPUTE_32F_FAST_TF32: tensor cores, float in and out, ~1e-3 relative error.
//   Bf16 - BF16 GEMM operands: a float GEMM converts A and B to bf16 (into scratch slots) and calls
//          cuBLAS with bf16 inputs, FP32 output and FP32 accumulation (~3e-3 relative error).
//          Activations, weights and the optimiser stay FP32: this is only the first step toward the
//          full BF16 mode of issue 8 (bf16 activations), not that mode.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/precision.hpp"
#include "lcmae/backend/tag.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::backend {

/// How attention_forward / attention_backward run (attention.cuh). Batched: one pointer-array
/// batched GEMM over all B*H heads per product, straight on qkv / out / dqkv (the default).
/// PerHead: the previous path (a host loop over heads, each a strided-batched GEMM over B), kept
/// for one release as a workaround; build with -DLCMAE_CUDA_ATTENTION_PER_HEAD to make it the
/// default, or call Cuda::set_attention_path. Fused: three tensor-core (wmma) kernels that keep S
/// and dP on chip (fused_attention.cuh), under Precision::Tf32 / Bf16 on sm_80+ only; everywhere
/// else (strict Fp32, double, unsupported shapes) it runs the batched path. Not the default: it has
/// not yet run on a GPU.
enum class AttentionPath { Batched, PerHead, Fused };

inline const char* attention_path_name(AttentionPath p) noexcept {
    switch (p) {
        case AttentionPath::Batched: return "batched";
        case AttentionPath::PerHead: return "per-head";
        case AttentionPath::Fused: return "fused";
    }
    return "?";
}
#ifdef LCMAE_CUDA_ATTENTION_PER_HEAD
inline constexpr AttentionPath kDefaultAttentionPath = AttentionPath::PerHead;
#else
inline constexpr AttentionPath kDefaultAttentionPath = AttentionPath::Batched;
#endif


namespace cuda_detail {

/// What kernels record when they skip invalid input. `ops` has one bit per op (below); the first
/// offender's value and position are kept (claimed through `claimed`), later ones only set bits.
struct DeviceErrors {
    unsigned int ops;
    unsigned int claimed;
    long long value;
    long long position;
};

enum ErrorOp : unsigned int {
    kErrGatherRows = 1u << 0,
    kErrScatterRowsAdd = 1u << 1,
    kErrPatchifyConv = 1u << 2,         // token id outside [0, L)
    kErrAssembleTokens = 1u << 3,       // negative token id (the op is not told L)
    kErrKeepToSlots = 1u << 4,          // keep id outside [0, L)
    kErrDecoderAssemble = 1u << 5,      // slot outside [-1, K)
    kErrPoolTokens = 1u << 6,           // a sample with no token to pool (value = sample)
    kErrLossMask = 1u << 7,             // norm_pix_mse: the mask sums to 0 (value = 0)
};

/// What each bit says, for check_errors().
inline const char* error_op_text(unsigned int bit) {
    switch (bit) {
        case kErrGatherRows: return "gather_rows (token index out of range)";
        case kErrScatterRowsAdd: return "scatter_rows_add (token index out of range)";
        case kErrPatchifyConv: return "patchify_conv (token id outside [0, L))";
        case kErrAssembleTokens: return "assemble_tokens (negative token id)";
        case kErrKeepToSlots: return "keep_to_slots (keep id outside [0, L))";
        case kErrDecoderAssemble: return "decoder_assemble/decoder_assemble_backward (slot outside [-1, K))";
        case kErrPoolTokens: return "pool_tokens (a sample has no token to pool)";
        case kErrLossMask: return "norm_pix_mse (the MIM loss needs at least one masked patch: mask sums to 0)";
    }
    return "?";
}
inline constexpr int kErrorBits = 8;

/// Called by a kernel thread that found input `value` at `position` invalid for op `bit`.
__device__ inline void record_error(DeviceErrors* e, unsigned int bit, long long value, long long position) {
    atomicOr(&e->ops, bit);
    if (atomicCAS(&e->claimed, 0u, 1u) == 0u) {
        e->value = value;
        e->position = position;
    }
}

/// Per-block partial sums of the reductions (sum, dot, sum_squares): at most this many blocks.
inline constexpr int kReduceMaxBlocks = 1024;
/// The losses' and optimisers' scratch (Cuda::op_scratch()): kOpMaxBlocks per-block partials, then
/// kOpExtra doubles for intermediate scalars (a mask sum, a loss denominator).
inline constexpr int kOpMaxBlocks = 1024;
inline constexpr int kOpExtra = 8;

/// The context's growable scratch slots (Cuda::scratch). An op owns a slot only between its own
/// launches (one stream: no other op runs in between), so ops may share slots.
enum class ScratchSlot : int {
    Columns = 0,  // two-stage column reductions: per-chunk partials (+ per-column results)
    GemmA = 1,    // BF16 GEMMs: the bf16 copy of A (attention: of qkv)
    GemmB = 2,    // BF16 GEMMs: the bf16 copy of B (attention: of P, then of dS)
    GemmC = 3,    // attention backward under BF16: the bf16 copy of dout
    AttnPtrs = 4, // batched attention: the per-(b, h) pointer arrays of its GEMMs
    AttnS = 5,    // batched attention under Tf32/Bf16: S, then dP / dS, (B*H, N, Np) float, Np = N up to 8
    AttnP = 6,    // batched attention under Tf32/Bf16: the padded copy of P (float under Tf32 backward, bf16)
};
inline constexpr int kScratchSlots = 7;

}  // namespace cuda_detail

template <class T>
class CudaBuffer;
class CudaGraphCache;  // backend/cuda/graph.cuh

struct Cuda : ops::BackendTag {
    static constexpr const char* name = "cuda";
    template <class T>
    using ptr = T*;
    /// One owning zero-filled device allocation (RAII, move-only; see CudaBuffer below).
    template <class T>
    using buffer = CudaBuffer<T>;
    /// Host code may NOT read this backend's memory: generic code downloads (io/, the losses).
    static constexpr bool host_memory = false;
    /// What a model records its step's device work in (backend/graph_cache.hpp, cuda/graph.cuh).
    using graph_cache = CudaGraphCache;

    /// Bytes of the cuBLAS(Lt) workspace (NVIDIA recommends 32 MiB on Hopper).
    static constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;

    explicit Cuda(int device = 0, Precision precision = Precision::Fp32)
        : impl_(std::make_shared<Impl>(device, precision)) {}

    /// True when the runtime sees at least one CUDA device (tests skip otherwise).
    static bool available() noexcept {
        int n = 0;
        const cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            return false;
        }
        return n > 0;
    }

    cudaStream_t stream() const noexcept { return impl_->stream; }
    cublasHandle_t cublas() const noexcept { return impl_->cublas; }
    cublasLtHandle_t cublaslt() const noexcept { return impl_->cublaslt; }
    void* workspace() const noexcept { return impl_->workspace; }
    static constexpr std::size_t workspace_bytes() noexcept { return kWorkspaceBytes; }
    int device() const noexcept { return impl_->device; }
    /// The device's compute capability as major * 10 + minor (queried once, at construction).
    int compute_capability() const noexcept { return impl_->cc; }
    /// The most dynamic shared memory one block may opt in to, in bytes (queried once).
    int max_shared_memory_optin() const noexcept { return impl_->smem_optin; }

    /// The GEMM precision for float storage (shared by every copy of this context).
    Precision precision() const noexcept { return impl_->precision; }
    void set_precision(Precision p) noexcept { impl_->precision = p; }
    /// The attention implementation (shared by every copy of this context; see AttentionPath).
    AttentionPath attention_path() const noexcept { return impl_->attention_path; }
    void set_attention_path(AttentionPath p) noexcept { impl_->attention_path = p; }
    /// CUDA graphs of the training step's device work (cuda/graph.cuh; shared by every copy of this
    /// context). Off unless LCMAE_CUDA_GRAPH=1 was set when the context was made: not yet checked
    /// on a GPU.
    bool graphs() const noexcept { return impl_->graphs; }
    void set_graphs(bool on) noexcept { impl_->graphs = on; }

    /// Blocks the host until everything enqueued on this context's stream has finished.
    void synchronize() const { LCMAE_CUDA_CHECK(cudaStreamSynchronize(impl_->stream)); }

    /// Synchronises, then throws lcmae::Error naming the op(s) that met invalid input since the
    /// last check (and the first offending value and position), after resetting the record.
    void check_errors() const {
        cuda_detail::DeviceErrors h{};
        LCMAE_CUDA_CHECK(cudaMemcpyAsync(&h, impl_->errors, sizeof h, cudaMemcpyDeviceToHost, impl_->stream));
        LCMAE_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
        if (h.ops == 0) return;
        LCMAE_CUDA_CHECK(cudaMemsetAsync(impl_->errors, 0, sizeof h, impl_->stream));
        LCMAE_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
        std::ostringstream os;
        os << "a CUDA op met invalid input (the offending rows were skipped):";
        for (int b = 0; b < cuda_detail::kErrorBits; ++b)
            if (h.ops & (1u << b)) os << ' ' << cuda_detail::error_op_text(1u << b) << ';';
        os << " first: value " << h.value << " at position " << h.position;
        if (h.ops & cuda_detail::kErrGatherRows) os << " (gather_rows: token index " << h.value << " is out of range)";
        LCMAE_FAIL(os.str());
    }

    cuda_detail::DeviceErrors* error_record() const noexcept { return impl_->errors; }
    /// kReduceMaxBlocks doubles of per-block partials, then one double for host-returning results.
    double* reduce_scratch() const noexcept { return impl_->reduce; }
    double* reduce_result() const noexcept { return impl_->reduce + cuda_detail::kReduceMaxBlocks; }
    /// The losses' and optimisers' scratch: kOpMaxBlocks partials, then kOpExtra scalars. Ops use it
    /// only between their own launches (one stream: no other op runs in between).
    double* op_partials() const noexcept { return impl_->op; }
    double* op_extra() const noexcept { return impl_->op + cuda_detail::kOpMaxBlocks; }

    /// At least `bytes` of device scratch in `slot` (256-byte aligned; contents undefined). Grows the
    /// slot when it is too small: synchronises the stream first (kernels already queued may still
    /// use the old memory), frees it and allocates the new size rounded up to 1 MiB; throws
    /// lcmae::Error when that fails (the slot is then empty). Never shrinks, so once every op has
    /// run once (warm-up) this never allocates. Ops use a slot only between their own launches.
    void* scratch(cuda_detail::ScratchSlot slot, std::size_t bytes) const {
        const int i = static_cast<int>(slot);
        if (bytes <= impl_->slot_bytes[i]) return impl_->slot[i];
        constexpr std::size_t mib = std::size_t{1} << 20;
        const std::size_t want = (bytes + mib - 1) / mib * mib;
        LCMAE_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
        deallocate(impl_->slot[i]);
        impl_->slot[i] = nullptr;
        impl_->slot_bytes[i] = 0;
        impl_->slot[i] = allocate<unsigned char>(want);
        impl_->slot_bytes[i] = want;
        return impl_->slot[i];
    }
    /// Bytes held by the scratch slots now (for memory reports).
    std::size_t scratch_bytes() const noexcept {
        std::size_t n = 0;
        for (int i = 0; i < cuda_detail::kScratchSlots; ++i) n += impl_->slot_bytes[i];
        return n;
    }

    // ---- memory services (the Cpu backend has the same names) ----------------------------------

    /// `count` zero-filled T in device memory (plain cudaMalloc, never managed memory); nullptr for
    /// count 0. Throws lcmae::Error when the allocation fails. Synchronous: the zeros are in place
    /// when it returns, whatever stream uses the memory next.
    template <class T>
    static T* allocate(std::size_t count) {
        if (count == 0) return nullptr;
        LCMAE_CHECK(count <= std::numeric_limits<std::size_t>::max() / sizeof(T),
                    "device allocation of " << count << " values of " << sizeof(T) << " bytes overflows size_t");
        void* p = nullptr;
        LCMAE_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
        // On stream 0 and waited for: our streams are non-blocking, so they would not wait for a
        // plain cudaMemset on the legacy default stream.
        const cudaError_t e1 = cudaMemsetAsync(p, 0, count * sizeof(T), 0);
        const cudaError_t e2 = e1 == cudaSuccess ? cudaStreamSynchronize(0) : e1;
        if (e2 != cudaSuccess) {
            cudaFree(p);
            cuda_detail::throw_cuda(__FILE__, __LINE__, "cudaMemsetAsync/cudaStreamSynchronize after cudaMalloc", e2);
        }
        return static_cast<T*>(p);
    }

    /// Frees memory from allocate (nullptr is fine). Never throws; a failure is dropped and cleared
    /// from the runtime's last error so that it is not blamed on a later launch.
    template <class T>
    static void deallocate(T* p) noexcept {
        if (p == nullptr) return;
        if (cudaFree(const_cast<std::remove_const_t<T>*>(p)) != cudaSuccess) (void)cudaGetLastError();
    }

private:
    struct Impl {
        int device = 0;
        int cc = 0;          // compute capability, major * 10 + minor
        int smem_optin = 0;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
        Precision precision = Precision::Fp32;
        AttentionPath attention_path = kDefaultAttentionPath;
        bool graphs = graphs_from_environment();
        cudaStream_t stream = nullptr;
        cublasHandle_t cublas = nullptr;
        cublasLtHandle_t cublaslt = nullptr;
        void* workspace = nullptr;
        cuda_detail::DeviceErrors* errors = nullptr;
        double* reduce = nullptr;
        double* op = nullptr;
        unsigned char* slot[cuda_detail::kScratchSlots] = {};
        std::size_t slot_bytes[cuda_detail::kScratchSlots] = {};

        Impl(int dev, Precision p) : device(dev), precision(p) {
            int count = 0;
            LCMAE_CUDA_CHECK(cudaGetDeviceCount(&count));
            LCMAE_CHECK(dev >= 0 && dev < count, "CUDA device " << dev << " does not exist (" << count << " visible)");
            try {
                LCMAE_CUDA_CHECK(cudaSetDevice(dev));
                int major = 0, minor = 0;
                LCMAE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
                LCMAE_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
                LCMAE_CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
                cc = 10 * major + minor;
                LCMAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
                LCMAE_CUBLAS_CHECK(cublasCreate(&cublas));
                LCMAE_CUBLAS_CHECK(cublasSetStream(cublas, stream));
                LCMAE_CUBLAS_CHECK(cublasLtCreate(&cublaslt));
                workspace = allocate<unsigned char>(kWorkspaceBytes);
                LCMAE_CUBLAS_CHECK(cublasSetWorkspace(cublas, workspace, kWorkspaceBytes));
                errors = allocate<cuda_detail::DeviceErrors>(1);
                reduce = allocate<double>(cuda_detail::kReduceMaxBlocks + 1);
                op = allocate<double>(cuda_detail::kOpMaxBlocks + cuda_detail::kOpExtra);
            } catch (...) {
                release();
                throw;
            }
        }
        ~Impl() { release(); }
        static bool graphs_from_environment() {
            const char* v = std::getenv("LCMAE_CUDA_GRAPH");
            if (v == nullptr) return false;
            const std::string s = v;
            LCMAE_CHECK(s == "0" || s == "1", "LCMAE_CUDA_GRAPH must be 0 or 1, got '" << s << "'");
            return s == "1";
        }
        Impl(const Impl&) = delete;
        Impl& operator=(const Impl&) = delete;

        void release() noexcept {
            // Finish queued work before the memory it uses goes away; errors here cannot be thrown.
            if (stream != nullptr && cudaStreamSynchronize(stream) != cudaSuccess) (void)cudaGetLastError();
            if (cublaslt != nullptr) cublasLtDestroy(cublaslt);
            if (cublas != nullptr) cublasDestroy(cublas);
            for (int i = 0; i < cuda_detail::kScratchSlots; ++i) {
                deallocate(slot[i]);
                slot[i] = nullptr;
                slot_bytes[i] = 0;
            }
            deallocate(op);
            deallocate(reduce);
            deallocate(errors);
            deallocate(workspace);
            if (stream != nullptr && cudaStreamDestroy(stream) != cudaSuccess) (void)cudaGetLastError();
            cublaslt = nullptr;
            cublas = nullptr;
            reduce = nullptr;
            op = nullptr;
            errors = nullptr;
            workspace = nullptr;
            stream = nullptr;
        }
    };
    std::shared_ptr<Impl> impl_;
};

/// Cuda::buffer<T>: `count` zero-filled T in device memory (Cuda::allocate: cudaMalloc + memset,
/// synchronous), freed on destruction. Move-only. resize() reallocates and zero-fills (contents are
/// not preserved, as AlignedBuffer); data() is a device pointer (never dereference it on the host).
template <class T>
class CudaBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "CudaBuffer holds trivially copyable values only");

public:
    CudaBuffer() = default;
    explicit CudaBuffer(std::size_t count) { resize(count); }
    CudaBuffer(const CudaBuffer&) = delete;
    CudaBuffer& operator=(const CudaBuffer&) = delete;
    CudaBuffer(CudaBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
        o.data_ = nullptr;
        o.size_ = 0;
    }
    CudaBuffer& operator=(CudaBuffer&& o) noexcept {
        if (this != &o) {
            Cuda::deallocate(data_);
            data_ = o.data_;
            size_ = o.size_;
            o.data_ = nullptr;
            o.size_ = 0;
        }
        return *this;
    }
    ~CudaBuffer() { Cuda::deallocate(data_); }

    void resize(std::size_t count) {
        Cuda::deallocate(data_);
        data_ = nullptr;
        size_ = 0;
        data_ = Cuda::allocate<T>(count);  // throws on failure (then this buffer is empty)
        size_ = count;
    }
    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t bytes() const noexcept { return size_ * sizeof(T); }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace lcmae::backend
