// lcmae/data/loader.hpp - the threaded, prefetching, deterministic batch loader.
//
// Why this shape:
// - Determinism: the pixels of sample i in epoch e come from Rng(seed, stream_id(e, i, view)) only,
//   and batch k of an epoch always lands in slot k % slots, so 1, 2 or 16 workers produce identical
//   batches; the shuffle is a pure function of (seed, epoch).
// - Sharding: the epoch's permutation is dealt round-robin to ranks (rank r takes positions
//   r, r + W, ...), so ranks never overlap and together cover the dataset once. With drop_last
//   every rank gets floor(N / W) samples and the same number of batches (a data-parallel step
//   needs every rank to take part).
// - Memory: a fixed ring of batch buffers allocated once (and optionally pinned by a callback the
//   GPU trainer supplies, so this target needs no CUDA); workers fill whole batches, at most
//   `prefetch` batches ahead of the one the consumer holds.
// - A clean stop: start_epoch() and the destructor cancel work in flight between samples and wait
//   for the workers, so stopping mid-epoch never hangs.
//
// Use (one consumer thread):
//   auto ds = lcmae::data::load_fashion_mnist(true);
//   lcmae::data::LoaderConfig cfg;
//   cfg.batch = 128; cfg.image_size = 28; cfg.channels = 1; cfg.norm = Normalization::fashion_mnist();
//   lcmae::data::Loader<lcmae::crop::SimpleResized> loader(ds, cfg);
//   for (std::uint64_t epoch = 0; epoch < epochs; ++epoch) {
//       loader.start_epoch(epoch);
//       while (const lcmae::data::Batch* b = loader.next()) step(b->view1, b->view2, b->size);
//   }
// For evaluation (k-NN, linear probe): cfg.views = Views::Eval, cfg.shuffle = false,
// cfg.drop_last = false.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>

#include "lcmae/core/buffer.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/data/dataset.hpp"
#include "lcmae/data/transforms.hpp"
#include "lcmae/data/views.hpp"
#include "lcmae/policies/crop.hpp"

namespace lcmae::data {

enum class Views {
    Single,  ///< MAE: one view (crop + flip)
    Pair,    ///< LC-MAE: u (crop + flip) and v (crop + flip + jitter + one of three)
    Eval     ///< evaluation: resize the shorter side to view.eval_resize, centre crop; no randomness
};

struct LoaderConfig {
    int batch = 64;           ///< samples per batch on this rank
    int image_size = 224;     ///< output height = width
    int channels = 3;         ///< 1 or 3, what the model takes (gray replicated / RGB to luma)
    std::uint64_t seed = 0;
    int threads = 2;          ///< worker threads decoding and augmenting
    int prefetch = 0;         ///< batches prepared ahead of the one being used; 0 = 2 * threads
    int rank = 0, world_size = 1;
    bool drop_last = true;    ///< drop this rank's last partial batch (and even out the ranks)
    bool shuffle = true;      ///< false: dataset order (evaluation)
    Normalization norm = Normalization::imagenet();
    Views views = Views::Pair;
    ViewConfig view{};        ///< augmentation numbers; view.size is set from image_size
    /// false: an image whose shorter side is below image_size is an error naming it, instead of
    /// being scaled up (guards against training on thumbnails by accident).
    bool allow_upscale = true;
    /// Let the dataset decode at a reduced scale when the crop needs fewer pixels (JPEG DCT
    /// scaling: a 500x375 photo for a 32 px model decodes at 1/4 size, about 4x faster). The
    /// smallest side asked for is image_size for the simple resized crop and
    /// image_size / sqrt(scale_lo) for the random resized crop, so crops never lose resolution.
    bool reduced_decode = true;
    /// Our workers are the parallelism; OpenCV's own thread pool inside each call only adds
    /// contention. true calls cv::setNumThreads(1) (a process-wide OpenCV setting).
    bool single_threaded_opencv = true;
    /// Called once per batch buffer after allocation / before release, e.g. with cudaHostRegister
    /// / cudaHostUnregister to pin them for asynchronous copies.
    std::function<void(void*, std::size_t)> pin, unpin;
};

/// One batch: normalised CHW float views of shape (size, channels, height, width). Valid until the
/// next call of next() or start_epoch() on the loader that returned it.
struct Batch {
    const float* view1 = nullptr;
    const float* view2 = nullptr;  ///< nullptr for Views::Single and Views::Eval
    const int* labels = nullptr;   ///< -1 for unlabelled data
    const std::int64_t* indices = nullptr;  ///< dataset index of each sample
    int size = 0;
    int channels = 0, height = 0, width = 0;
    std::int64_t number = 0;  ///< batch number within the epoch
    std::uint64_t epoch = 0;

    std::size_t sample_floats() const { return static_cast<std::size_t>(channels) * height * width; }
};

/// The dataset indices rank `rank` of `world_size` visits in `epoch`, in order (before batching).
inline std::vector<std::int64_t> shard_indices(std::size_t n, std::uint64_t seed, std::uint64_t epoch, int rank,
                                               int world_size, bool shuffle, bool drop_last) {
    std::vector<std::int64_t> perm(n);
    std::iota(perm.begin(), perm.end(), std::int64_t{0});
    if (shuffle) {
        // A stream no sample uses: sample streams mix three values, this one two with a tag.
        Rng rng(seed, stream_id(0x53485546464C45ull /* "SHUFFLE" */, epoch));
        for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
    }
    const std::size_t w = static_cast<std::size_t>(world_size), r = static_cast<std::size_t>(rank);
    const std::size_t limit = drop_last ? n / w * w : n;
    std::vector<std::int64_t> out;
    out.reserve(n / w + 1);
    for (std::size_t p = r; p < limit; p += w) out.push_back(perm[p]);
    return out;
}

template <crop::CropPolicy Crop>
class Loader {
public:
    Loader(std::shared_ptr<const Dataset> dataset, LoaderConfig cfg) : ds_(std::move(dataset)), cfg_(std::move(cfg)) {
        validate();
        cfg_.view.size = cfg_.image_size;
        single_ = SingleView<Crop>(cfg_.view);
        pair_ = PairView<Crop>(cfg_.view);
        if (cfg_.single_threaded_opencv) cv::setNumThreads(1);
        const std::size_t per_view = static_cast<std::size_t>(cfg_.batch) * sample_floats();
        slots_.resize(static_cast<std::size_t>((cfg_.prefetch > 0 ? cfg_.prefetch : 2 * cfg_.threads) + 1));
        for (auto& s : slots_) {
            s.view1.resize(per_view);
            if (cfg_.views == Views::Pair) s.view2.resize(per_view);
            s.labels.resize(static_cast<std::size_t>(cfg_.batch));
            s.indices.resize(static_cast<std::size_t>(cfg_.batch));
            if (cfg_.pin) {
                cfg_.pin(s.view1.data(), s.view1.size() * sizeof(float));
                if (!s.view2.empty()) cfg_.pin(s.view2.data(), s.view2.size() * sizeof(float));
            }
        }
        for (int t = 0; t < cfg_.threads; ++t) workers_.emplace_back([this] { work(); });
    }
    /// Borrows the dataset: it must outlive the loader.
    Loader(const Dataset& dataset, LoaderConfig cfg)
        : Loader(std::shared_ptr<const Dataset>(&dataset, [](const Dataset*) {}), std::move(cfg)) {}

    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    ~Loader() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
            cancel_ = true;
        }
        work_cv_.notify_all();
        for (auto& t : workers_) t.join();
        if (cfg_.unpin)
            for (auto& s : slots_) {
                cfg_.unpin(s.view1.data(), s.view1.size() * sizeof(float));
                if (!s.view2.empty()) cfg_.unpin(s.view2.data(), s.view2.size() * sizeof(float));
            }
    }

    /// Begins `epoch` (any order, any number of times; an unfinished epoch is abandoned).
    void start_epoch(std::uint64_t epoch) {
        std::vector<std::int64_t> order = shard_indices(ds_->size(), cfg_.seed, epoch, cfg_.rank, cfg_.world_size,
                                                        cfg_.shuffle, cfg_.drop_last);
        std::unique_lock<std::mutex> lock(mutex_);
        active_ = false;
        cancel_ = true;
        idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
        cancel_ = false;
        order_ = std::move(order);
        epoch_ = epoch;
        total_ = batches_for(order_.size());
        next_claim_ = next_return_ = 0;
        for (auto& s : slots_) {
            s.ready = -1;
            s.error = nullptr;
        }
        ++generation_;
        active_ = true;
        started_ = true;
        skipped_at_start_ = ds_->skipped();
        reported_ = false;
        lock.unlock();
        work_cv_.notify_all();
    }

    /// The next batch of the epoch, or nullptr at its end. Rethrows a worker's error (naming the
    /// sample and its file); the epoch then continues with the following batch.
    const Batch* next() {
        std::unique_lock<std::mutex> lock(mutex_);
        LCMAE_CHECK(started_, "Loader::next called before start_epoch");
        if (next_return_ >= total_) {
            report_skipped();
            return nullptr;
        }
        const std::int64_t k = next_return_;
        // The batch handed out last time (k - 1) is done with: its slot may be refilled.
        work_cv_.notify_all();
        Slot& s = slots_[static_cast<std::size_t>(k) % slots_.size()];
        ready_cv_.wait(lock, [&] { return s.ready == k; });
        ++next_return_;
        work_cv_.notify_all();
        if (s.error) std::rethrow_exception(s.error);
        return &s.batch;
    }

    /// Batches this rank gets per epoch (the same for every epoch).
    std::int64_t batches_per_epoch() const {
        const std::size_t n = ds_->size(), w = static_cast<std::size_t>(cfg_.world_size);
        const std::size_t r = static_cast<std::size_t>(cfg_.rank);
        const std::size_t mine = cfg_.drop_last ? n / w : (n > r ? (n - r + w - 1) / w : 0);
        return batches_for(mine);
    }
    const LoaderConfig& config() const { return cfg_; }
    const Dataset& dataset() const { return *ds_; }
    std::size_t sample_floats() const {
        return static_cast<std::size_t>(cfg_.channels) * cfg_.image_size * cfg_.image_size;
    }

    /// The views of one sample, written as the loader would (for tests and pictures).
    void make_sample(std::int64_t index, std::uint64_t epoch, float* view1, float* view2) const {
        cv::Mat u, v;
        make_views(index, epoch, u, v);
        to_chw(u, cfg_.channels, cfg_.norm, view1);
        if (cfg_.views == Views::Pair) to_chw(v, cfg_.channels, cfg_.norm, view2);
    }
    /// The 8-bit views of one sample before normalisation (v empty for Single).
    void make_views(std::int64_t index, std::uint64_t epoch, cv::Mat& u, cv::Mat& v) const {
        const cv::Mat img = ds_->image(static_cast<std::size_t>(index), decode_min_side());
        LCMAE_CHECK(!img.empty(), "empty image");
        LCMAE_CHECK(cfg_.allow_upscale || std::min(img.rows, img.cols) >= cfg_.image_size,
                    "image of " << img.cols << "x" << img.rows << " px is smaller than the " << cfg_.image_size
                                << " px crop (allow_upscale is off)");
        const auto i = static_cast<std::uint64_t>(index);
        Rng r1(cfg_.seed, stream_id(epoch, i, 0));
        if (cfg_.views == Views::Eval) {
            u = ResizeCenterCrop{cfg_.view.eval_resize > 0 ? cfg_.view.eval_resize : cfg_.image_size, cfg_.image_size}(img);
            v = cv::Mat();
        } else if (cfg_.views == Views::Single) {
            u = single_(img, r1);
            v = cv::Mat();
        } else {
            Rng r2(cfg_.seed, stream_id(epoch, i, 1));
            u = pair_.u(img, r1);
            v = pair_.v(img, r2);
        }
    }

    /// The shorter side the crop needs from the source image (0: decode in full).
    int decode_min_side() const {
        if (!cfg_.reduced_decode) return 0;
        if (cfg_.views == Views::Eval)
            return cfg_.view.eval_resize > 0 ? cfg_.view.eval_resize : cfg_.image_size;
        if constexpr (Crop::kind == crop::Kind::SimpleResized) return cfg_.image_size;
        else return static_cast<int>(std::ceil(cfg_.image_size / std::sqrt(std::max(cfg_.view.scale_lo, 1e-3))));
    }

private:
    struct Slot {
        AlignedBuffer<float> view1, view2;
        std::vector<int> labels;
        std::vector<std::int64_t> indices;
        Batch batch;
        std::int64_t ready = -1;  // number of the batch this slot holds, when complete
        std::exception_ptr error;
    };

    void validate() const {
        LCMAE_CHECK(ds_ != nullptr, "Loader: no dataset");
        LCMAE_CHECK(cfg_.batch > 0, "Loader: batch must be positive, got " << cfg_.batch);
        LCMAE_CHECK(cfg_.image_size > 0, "Loader: image_size must be positive, got " << cfg_.image_size);
        LCMAE_CHECK(cfg_.channels == 1 || cfg_.channels == 3, "Loader: channels must be 1 or 3, got " << cfg_.channels);
        LCMAE_CHECK(cfg_.threads >= 1, "Loader: threads must be at least 1, got " << cfg_.threads);
        LCMAE_CHECK(cfg_.prefetch >= 0, "Loader: prefetch must be non-negative, got " << cfg_.prefetch);
        LCMAE_CHECK(cfg_.world_size >= 1 && cfg_.rank >= 0 && cfg_.rank < cfg_.world_size,
                    "Loader: rank " << cfg_.rank << " is not in [0, world_size " << cfg_.world_size << ")");
        LCMAE_CHECK(ds_->size() > 0, "Loader: dataset " << ds_->name() << " is empty");
        for (int c = 0; c < 3; ++c)
            LCMAE_CHECK(cfg_.norm.std[static_cast<std::size_t>(c)] > 0,
                        "Loader: normalisation std must be positive, channel " << c << " has "
                                                                               << cfg_.norm.std[static_cast<std::size_t>(c)]);
        LCMAE_CHECK(batches_per_epoch() > 0, "Loader: dataset " << ds_->name() << " has " << ds_->size()
                                                                << " images, too few for one batch of " << cfg_.batch
                                                                << " on each of " << cfg_.world_size << " ranks");
    }

    std::int64_t batches_for(std::size_t samples) const {
        const std::size_t b = static_cast<std::size_t>(cfg_.batch);
        return static_cast<std::int64_t>(cfg_.drop_last ? samples / b : (samples + b - 1) / b);
    }

    void report_skipped() {
        const std::size_t now = ds_->skipped();
        if (now > skipped_at_start_ && !reported_)
            std::fprintf(stderr, "lcmae warning: %s: %zu corrupt images skipped this epoch (%zu in all)\n",
                         ds_->name().c_str(), now - skipped_at_start_, now);
        reported_ = true;
    }

    void work() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            work_cv_.wait(lock, [&] {
                return stop_ || (active_ && next_claim_ < total_ &&
                                 next_claim_ < next_return_ + static_cast<std::int64_t>(slots_.size()) - 1);
            });
            if (stop_) return;
            const std::int64_t k = next_claim_++;
            const std::uint64_t generation = generation_, epoch = epoch_;
            ++in_flight_;
            lock.unlock();

            Slot& s = slots_[static_cast<std::size_t>(k) % slots_.size()];
            std::exception_ptr error;
            try {
                fill(s, k, epoch);
            } catch (...) {
                error = std::current_exception();
            }

            lock.lock();
            --in_flight_;
            if (generation == generation_) {
                s.ready = k;
                s.error = error;
            }
            ready_cv_.notify_all();
            idle_cv_.notify_all();
        }
    }

    void fill(Slot& s, std::int64_t k, std::uint64_t epoch) {
        const std::size_t per = sample_floats();
        const std::size_t first = static_cast<std::size_t>(k) * static_cast<std::size_t>(cfg_.batch);
        const std::size_t n = std::min(static_cast<std::size_t>(cfg_.batch), order_.size() - first);
        for (std::size_t j = 0; j < n; ++j) {
            if (cancel_.load(std::memory_order_relaxed)) return;  // abandoned epoch or shutdown
            const std::int64_t idx = order_[first + j];
            try {
                make_sample(idx, epoch, s.view1.data() + j * per,
                            cfg_.views == Views::Pair ? s.view2.data() + j * per : nullptr);
                s.labels[j] = ds_->label(static_cast<std::size_t>(idx));
            } catch (const std::exception& e) {
                LCMAE_FAIL("loader: sample " << idx << " (" << ds_->describe(static_cast<std::size_t>(idx))
                                             << "): " << e.what());
            }
            s.indices[j] = idx;
        }
        s.batch.view1 = s.view1.data();
        s.batch.view2 = cfg_.views == Views::Pair ? s.view2.data() : nullptr;
        s.batch.labels = s.labels.data();
        s.batch.indices = s.indices.data();
        s.batch.size = static_cast<int>(n);
        s.batch.channels = cfg_.channels;
        s.batch.height = s.batch.width = cfg_.image_size;
        s.batch.number = k;
        s.batch.epoch = epoch;
    }

    std::shared_ptr<const Dataset> ds_;
    LoaderConfig cfg_;
    SingleView<Crop> single_;
    PairView<Crop> pair_;
    std::vector<Slot> slots_;
    std::vector<std::thread> workers_;

    std::mutex mutex_;
    std::condition_variable work_cv_, ready_cv_, idle_cv_;
    bool stop_ = false, active_ = false, started_ = false, reported_ = false;
    std::atomic<bool> cancel_{false};
    std::vector<std::int64_t> order_;
    std::uint64_t epoch_ = 0, generation_ = 0;
    std::int64_t total_ = 0, next_claim_ = 0, next_return_ = 0, in_flight_ = 0;
    std::size_t skipped_at_start_ = 0;
};

}  // namespace lcmae::data
