// lcmae/eval/features.hpp - frozen-encoder features of a labelled dataset (SPEC 4's evaluation
// protocols read these: k-NN in eval/knn.hpp, the linear probe in eval/linear_probe.hpp).
//
//   eval::FrozenEncoder<float> enc(ctx, FashionMnistBackbone::dims(), 256);
//   enc.load(ctx, "runs/fashion-mnist/checkpoint.safetensors");   // or enc.init_random(ctx, seed)
//   eval::ImagePrep prep{.image = 28, .channels = 1, .norm = data::Normalization::fashion_mnist()};
//   eval::Features f = enc.extract(ctx, *data::load_fashion_mnist(true), prep);
//   // f.mean: mean of the L patch tokens after the final norm; f.cls: the CLS token after the norm
//
// Images are prepared as the training loader prepares them, WITHOUT augmentation: at the model's
// size they are only normalised ((pixel / 255 - mean) / std, data::to_chw); at any other size they
// first go through the evaluation transform data::ResizeCenterCrop (shorter side to image / 0.875,
// bicubic, then the centred image x image crop: 224 from 256 at ImageNet scale).
// The encoder runs on ALL tokens (VitEncoder::forward with keep = null), forward only, in batches;
// both feature kinds come from the same pass and are downloaded together, once per batch, so any
// backend works (the host sees only the (2, B, D) features). Host arrays are float whatever T is.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/data/dataset.hpp"
#include "lcmae/data/transforms.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/timm_import.hpp"
#include "lcmae/models/vit_encoder.hpp"

namespace lcmae::eval {

/// Which feature a protocol reads.
enum class FeatureKind { Mean, Cls };

inline const char* feature_name(FeatureKind k) { return k == FeatureKind::Mean ? "mean" : "cls"; }

/// n labelled feature vectors of width dim, row-major in host memory.
struct FeatureSet {
    long n = 0, dim = 0;
    std::vector<float> values;  // (n, dim)
    std::vector<int> labels;    // n class indices in [0, num_classes)
    int num_classes = 0;

    const float* row(long i) const { return values.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(dim); }
    float* row(long i) { return values.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(dim); }
    /// Throws unless sizes agree and every label lies in [0, num_classes).
    void validate(std::string_view what) const {
        LCMAE_CHECK(n >= 1 && dim >= 1, what << ": empty feature set (" << n << " x " << dim << ")");
        LCMAE_CHECK(values.size() == static_cast<std::size_t>(n) * static_cast<std::size_t>(dim),
                    what << ": " << values.size() << " values do not hold " << n << " x " << dim);
        LCMAE_CHECK(labels.size() == static_cast<std::size_t>(n), what << ": " << labels.size() << " labels for " << n << " rows");
        LCMAE_CHECK(num_classes >= 2, what << ": needs at least 2 classes, got " << num_classes);
        for (long i = 0; i < n; ++i)
            LCMAE_CHECK(labels[static_cast<std::size_t>(i)] >= 0 && labels[static_cast<std::size_t>(i)] < num_classes,
                        what << ": label " << labels[static_cast<std::size_t>(i)] << " of row " << i << " is outside [0, "
                             << num_classes << ")");
    }
};

/// Both feature kinds of one pass over a dataset.
struct Features {
    FeatureSet mean, cls;
    const FeatureSet& get(FeatureKind k) const { return k == FeatureKind::Mean ? mean : cls; }
};

/// Evaluation preprocessing: what the model takes, and no augmentation.
struct ImagePrep {
    int image = 0;     // the model's input size (square)
    int channels = 1;  // 1 or 3 (gray replicated / RGB to luma, as data::to_chw)
    data::Normalization norm = data::Normalization::imagenet();
    int resize = 0;    // shorter side before the centre crop when the stored size differs from
                       // `image`; 0 = round(image / 0.875)

    std::size_t floats() const { return static_cast<std::size_t>(channels) * static_cast<std::size_t>(image) * image; }
    /// img (8-bit HWC) -> out[channels * image * image], normalised CHW.
    void operator()(const cv::Mat& img, float* out) const {
        LCMAE_CHECK(image > 0, "ImagePrep: the model image size is not set");
        if (img.rows == image && img.cols == image) {
            data::to_chw(img, channels, norm, out);
            return;
        }
        const int r = resize > 0 ? resize : static_cast<int>(std::lround(image / 0.875));
        data::to_chw(data::ResizeCenterCrop{std::max(r, image), image}(img), channels, norm, out);
    }
};

/// Called after every batch with (images done, images in all).
using Progress = std::function<void(std::size_t done, std::size_t total)>;

namespace detail {
inline std::size_t limited(const data::Dataset& ds, std::size_t limit) {
    return limit == 0 ? ds.size() : std::min(limit, ds.size());
}
/// The first n images of ds, prepared into out (n x prep.floats()), on `threads` host threads
/// (Dataset::image is thread-safe).
inline void prepare_images(const data::Dataset& ds, const ImagePrep& prep, std::size_t first, std::size_t n, float* out,
                           int threads) {
    const std::size_t per = prep.floats();
#pragma omp parallel for schedule(dynamic, 16) num_threads(std::max(1, threads))
    for (long i = 0; i < static_cast<long>(n); ++i)
        prep(ds.image(first + static_cast<std::size_t>(i)), out + static_cast<std::size_t>(i) * per);
}
inline FeatureSet empty_set(const data::Dataset& ds, std::size_t n, long dim, std::string_view what) {
    LCMAE_CHECK(ds.num_classes() >= 2, what << ": dataset '" << ds.name() << "' has no labels (" << ds.num_classes()
                                            << " classes); evaluation needs a labelled dataset");
    FeatureSet f;
    f.n = static_cast<long>(n);
    f.dim = dim;
    f.num_classes = ds.num_classes();
    f.values.resize(n * static_cast<std::size_t>(dim));
    f.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) f.labels[i] = ds.label(i);
    return f;
}
}  // namespace detail

/// Raw-pixel features (the k-NN baseline): the first `limit` images (0 = all), prepared exactly as
/// the encoder's input (normalised CHW), flattened to channels * image^2 values each.
inline FeatureSet pixel_features(const data::Dataset& ds, const ImagePrep& prep, std::size_t limit = 0, int threads = 0) {
    const std::size_t n = detail::limited(ds, limit);
    FeatureSet f = detail::empty_set(ds, n, static_cast<long>(prep.floats()), "pixel_features");
    detail::prepare_images(ds, prep, 0, n, f.values.data(), threads > 0 ? threads : omp_get_max_threads());
    return f;
}

/// A ViT encoder used frozen: parameters from a checkpoint (timm names) or a random SPEC 1
/// initialisation, forward only on all tokens, in batches of at most max_batch.
template <class T = float, class Backend = backend::Cpu>
class FrozenEncoder {
public:
    /// keep_all_blocks: every block keeps its activations (attention probabilities, outputs) after
    /// a forward, for the analyses (lcmae/analysis/); costs about depth times the activation memory.
    FrozenEncoder(const Backend& ctx, const vit::VitDims& dims, long max_batch, bool keep_all_blocks = false)
        : dims_(dims), max_batch_(max_batch) {
        LCMAE_CHECK(max_batch >= 1, "FrozenEncoder: max_batch must be >= 1, got " << max_batch);
        encoder_ = std::make_unique<models::VitEncoder<T, Backend>>(
            P_, dims, models::EncoderOptions{.max_batch = max_batch, .forward_only = !keep_all_blocks});
        P_.allocate();
        const long img = dims.channels * dims.image * dims.image;
        images_.resize(static_cast<std::size_t>(max_batch * img));
        feats_.resize(static_cast<std::size_t>(2 * max_batch * dims.dim));
        (void)ctx;
    }
    FrozenEncoder(const FrozenEncoder&) = delete;
    FrozenEncoder& operator=(const FrozenEncoder&) = delete;

    /// SPEC 1's random initialisation (the baseline row of every table), uploaded once.
    void init_random(const Backend& ctx, std::uint64_t seed) {
        auto host = host_layout(P_);
        encoder_->init(host, seed);
        upload(ctx, static_cast<long>(P_.planned_size()), host.values().data(), P_.values().data());
    }
    /// The encoder's tensors from a checkpoint: names are prefix + timm's names ("" = the online
    /// encoder of a main-job checkpoint, "target." = its EMA target). Every encoder tensor must be
    /// present with the right shape (lcmae::Error lists what is not); other tensors are ignored,
    /// except prefix + "pos_embed" (1, 1 + L, D), which a checkpoint imported from timm carries
    /// (`lcmae import`): it replaces the fixed sin-cos table.
    io::LoadReport load(const Backend& ctx, const std::filesystem::path& path, std::string_view prefix = "") {
        LCMAE_CHECK(std::filesystem::exists(path), "checkpoint file '" << path.string() << "' does not exist");
        const io::SafetensorsFile file(path);
        io::LoadReport report = io::load_params(ctx, file, P_, prefix, io::Strictness::IgnoreUnexpected);
        std::vector<T> pos = io::checkpoint_pos_embed<T>(file, prefix, dims_);
        if (!pos.empty()) {
            encoder_->set_pos_embed(std::move(pos));
            const std::string pos_name = std::string(prefix) + "pos_embed";
            std::erase(report.unexpected, pos_name);
            report.loaded.push_back(pos_name);
        }
        return report;
    }
    /// The encoder's tensors straight from a model's parameter arena (e.g. the engine a program has
    /// just trained), by the same names as load(): prefix + timm's names. Saves a checkpoint round
    /// trip; every encoder tensor must be present with the right shape. Host-memory backends only.
    void copy_from(const ParamArena<T, Backend>& src, std::string_view prefix = "")
        requires Backend::host_memory
    {
        for (const auto& e : P_.entries()) {
            const std::string name = std::string(prefix) + e.name;
            LCMAE_CHECK(src.contains(name), "FrozenEncoder::copy_from: the source has no tensor '" << name << "'");
            const ParamEntry& s = src.entry(name);
            LCMAE_CHECK(s.shape == e.shape, "FrozenEncoder::copy_from: '" << name << "' is " << s.shape.str()
                                                                         << " in the source but " << e.shape.str()
                                                                         << " in the encoder");
            std::copy_n(src.values().data() + s.slot.offset, e.slot.count, P_.values().data() + e.slot.offset);
        }
    }

    /// Features of the first `limit` images of ds (0 = all), max_batch at a time. `threads` host
    /// threads prepare the images (0 = all cores).
    Features extract(const Backend& ctx, const data::Dataset& ds, const ImagePrep& prep, std::size_t limit = 0,
                     const Progress& progress = {}, int threads = 0) {
        LCMAE_CHECK(prep.image == dims_.image && prep.channels == dims_.channels,
                    "FrozenEncoder: images are prepared at " << prep.image << " px x " << prep.channels
                                                             << " channels but the encoder takes " << dims_.image
                                                             << " px x " << dims_.channels);
        const std::size_t n = detail::limited(ds, limit);
        const long D = dims_.dim, N = 1 + dims_.tokens();
        Features f{detail::empty_set(ds, n, D, "extract"), {}};
        f.cls = f.mean;  // same labels and shape
        const std::size_t per = prep.floats();
        std::vector<float> host(static_cast<std::size_t>(max_batch_) * per);
        std::vector<T> host_t;  // T != float: converted staging
        std::vector<T> out(static_cast<std::size_t>(2 * max_batch_ * D));
        const int th = threads > 0 ? threads : omp_get_max_threads();
        for (std::size_t first = 0; first < n; first += static_cast<std::size_t>(max_batch_)) {
            const long B = static_cast<long>(std::min<std::size_t>(static_cast<std::size_t>(max_batch_), n - first));
            detail::prepare_images(ds, prep, first, static_cast<std::size_t>(B), host.data(), th);
            if constexpr (std::is_same_v<T, float>) {
                upload(ctx, B * static_cast<long>(per), static_cast<const float*>(host.data()), images_.data());
            } else {
                host_t.assign(host.begin(), host.begin() + static_cast<std::ptrdiff_t>(B * per));
                upload(ctx, B * static_cast<long>(per), static_cast<const T*>(host_t.data()), images_.data());
            }
            auto x = encoder_->forward(ctx, P_, CPtr(images_.data()), B, Ids(nullptr), 0);
            Ptr feats = feats_.data();
            pool_tokens(ctx, B, N, D, x, CPtr(nullptr), false, feats);      // mean of the L patch tokens
            pool_tokens(ctx, B, N, D, x, CPtr(nullptr), true, feats + B * D);  // the CLS token
            download(ctx, 2 * B * D, CPtr(feats), out.data());              // one transfer per batch
            for (long i = 0; i < B * D; ++i) {
                f.mean.values[first * static_cast<std::size_t>(D) + static_cast<std::size_t>(i)] = static_cast<float>(out[static_cast<std::size_t>(i)]);
                f.cls.values[first * static_cast<std::size_t>(D) + static_cast<std::size_t>(i)] =
                    static_cast<float>(out[static_cast<std::size_t>(B * D + i)]);
            }
            if (progress) progress(first + static_cast<std::size_t>(B), n);
        }
        return f;
    }

    const vit::VitDims& dims() const noexcept { return dims_; }
    long max_batch() const noexcept { return max_batch_; }
    ParamArena<T, Backend>& params() noexcept { return P_; }
    models::VitEncoder<T, Backend>& encoder() noexcept { return *encoder_; }

private:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    using Ids = dptr<Backend, const std::int64_t>;

    vit::VitDims dims_;
    long max_batch_;
    ParamArena<T, Backend> P_;
    std::unique_ptr<models::VitEncoder<T, Backend>> encoder_;
    dbuffer<Backend, T> images_, feats_;
};

}  // namespace lcmae::eval
