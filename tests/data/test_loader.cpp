// The loader: determinism across thread counts, sharding, epochs, clean stops, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "lcmae/data/loader.hpp"

using namespace lcmae;
using namespace lcmae::data;

namespace {
std::shared_ptr<InMemoryDataset> synthetic(std::size_t n, int h, int w, int channels) {
    std::vector<std::uint8_t> px(n * h * w * channels);
    Rng rng(99, 0);
    for (auto& p : px) p = static_cast<std::uint8_t>(rng.below(256));
    std::vector<int> labels(n);
    for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<int>(i % 7);
    return std::make_shared<InMemoryDataset>("synthetic", std::move(px), n, h, w, channels, std::move(labels));
}

struct Epoch {
    std::vector<float> v1, v2;
    std::vector<int> labels;
    std::vector<std::int64_t> indices;
    std::vector<int> sizes;
};

template <class Crop>
Epoch run_epoch(Loader<Crop>& loader, std::uint64_t epoch) {
    Epoch out;
    loader.start_epoch(epoch);
    while (const Batch* b = loader.next()) {
        const std::size_t n = b->size * b->sample_floats();
        out.v1.insert(out.v1.end(), b->view1, b->view1 + n);
        if (b->view2) out.v2.insert(out.v2.end(), b->view2, b->view2 + n);
        out.labels.insert(out.labels.end(), b->labels, b->labels + b->size);
        out.indices.insert(out.indices.end(), b->indices, b->indices + b->size);
        out.sizes.push_back(b->size);
    }
    return out;
}

/// A dataset whose image 5 cannot be read.
struct Broken : InMemoryDataset {
    using InMemoryDataset::InMemoryDataset;
    cv::Mat image(std::size_t i) const override {
        LCMAE_CHECK(i != 5, "synthetic failure");
        return InMemoryDataset::image(i);
    }
    std::string describe(std::size_t i) const override { return "broken/file_" + std::to_string(i) + ".png"; }
};
}  // namespace

TEST_CASE("identical batches with 1, 2 and 4 worker threads") {
    auto ds = synthetic(45, 20, 24, 3);
    LoaderConfig cfg;
    cfg.batch = 8;
    cfg.image_size = 16;
    cfg.seed = 1234;
    std::vector<Epoch> results;
    for (int threads : {1, 2, 4}) {
        cfg.threads = threads;
        Loader<crop::SimpleResized> loader(ds, cfg);
        CHECK(loader.batches_per_epoch() == 5);
        results.push_back(run_epoch(loader, 3));
        auto e4 = run_epoch(loader, 4);
        CHECK(e4.indices != results.back().indices);  // a new shuffle each epoch
    }
    REQUIRE(results[0].v1.size() == 40u * 3 * 16 * 16);
    for (int k = 1; k < 3; ++k) {
        CHECK(results[k].v1 == results[0].v1);
        CHECK(results[k].v2 == results[0].v2);
        CHECK(results[k].indices == results[0].indices);
        CHECK(results[k].labels == results[0].labels);
    }
    // each sample is what make_sample computes from (seed, epoch, index) alone, labels match
    cfg.threads = 1;
    Loader<crop::SimpleResized> loader(ds, cfg);
    std::vector<float> a(3 * 16 * 16), b(3 * 16 * 16);
    for (std::size_t j = 0; j < results[0].indices.size(); j += 7) {
        loader.make_sample(results[0].indices[j], 3, a.data(), b.data());
        CHECK(std::equal(a.begin(), a.end(), results[0].v1.begin() + static_cast<std::ptrdiff_t>(j * a.size())));
        CHECK(std::equal(b.begin(), b.end(), results[0].v2.begin() + static_cast<std::ptrdiff_t>(j * b.size())));
        CHECK(results[0].labels[j] == ds->label(static_cast<std::size_t>(results[0].indices[j])));
    }
    // and the two views differ
    CHECK(results[0].v1 != results[0].v2);
}

TEST_CASE("same with the random resized crop and a single view; prefetch depth does not matter") {
    auto ds = synthetic(30, 40, 30, 1);
    LoaderConfig cfg;
    cfg.batch = 6;
    cfg.image_size = 24;
    cfg.views = Views::Single;
    cfg.channels = 3;
    std::vector<Epoch> results;
    for (auto [threads, prefetch] : {std::pair{1, 1}, std::pair{4, 1}, std::pair{2, 8}}) {
        cfg.threads = threads;
        cfg.prefetch = prefetch;
        Loader<crop::RandomResized> loader(ds, cfg);
        results.push_back(run_epoch(loader, 0));
    }
    CHECK(results[0].v2.empty());
    CHECK(results[1].v1 == results[0].v1);
    CHECK(results[2].v1 == results[0].v1);
}

TEST_CASE("sharding covers the dataset exactly once per epoch across ranks") {
    auto ds = synthetic(53, 8, 8, 1);
    for (int world : {1, 2, 3, 4}) {
        for (bool drop : {false, true}) {
            std::map<std::int64_t, int> seen;
            std::set<std::int64_t> batch_counts;
            for (int rank = 0; rank < world; ++rank) {
                LoaderConfig cfg;
                cfg.batch = 4;
                cfg.image_size = 8;
                cfg.threads = 2;
                cfg.rank = rank;
                cfg.world_size = world;
                cfg.drop_last = drop;
                cfg.seed = 5;
                Loader<crop::SimpleResized> loader(ds, cfg);
                const Epoch e = run_epoch(loader, 2);
                for (auto i : e.indices) seen[i]++;
                CHECK(static_cast<std::int64_t>(e.sizes.size()) == loader.batches_per_epoch());
                batch_counts.insert(loader.batches_per_epoch());
                if (drop)
                    for (int s : e.sizes) CHECK(s == 4);
            }
            for (auto [i, n] : seen) CHECK(n == 1);  // never twice
            if (!drop) {
                CHECK(seen.size() == 53u);  // and every sample once
            } else {
                const std::size_t per_rank = 53 / world / 4 * 4;
                CHECK(seen.size() == per_rank * world);
                CHECK(batch_counts.size() == 1);  // ranks step together
            }
        }
    }
    // shards are a deal of one (seed, epoch) permutation
    auto a = shard_indices(10, 1, 0, 0, 2, true, false), b = shard_indices(10, 1, 0, 1, 2, true, false);
    a.insert(a.end(), b.begin(), b.end());
    std::sort(a.begin(), a.end());
    for (int i = 0; i < 10; ++i) CHECK(a[i] == i);
    CHECK(shard_indices(10, 1, 0, 0, 1, true, false) == shard_indices(10, 1, 0, 0, 1, true, false));
    CHECK(shard_indices(10, 1, 0, 0, 1, true, false) != shard_indices(10, 2, 0, 0, 1, true, false));
    CHECK(shard_indices(10, 1, 0, 0, 1, false, false) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("clean stop: abandon an epoch, restart, destroy mid-epoch") {
    auto ds = synthetic(64, 20, 20, 3);
    LoaderConfig cfg;
    cfg.batch = 4;
    cfg.image_size = 16;
    cfg.threads = 4;
    cfg.prefetch = 3;
    Epoch reference;
    {
        Loader<crop::SimpleResized> fresh(ds, cfg);
        reference = run_epoch(fresh, 1);
    }
    Loader<crop::SimpleResized> loader(ds, cfg);
    loader.start_epoch(0);
    REQUIRE(loader.next() != nullptr);
    REQUIRE(loader.next() != nullptr);
    const Epoch again = run_epoch(loader, 1);  // start_epoch mid-epoch
    CHECK(again.v1 == reference.v1);
    CHECK(again.indices == reference.indices);
    CHECK(loader.next() == nullptr);  // stays at the end
    for (int i = 0; i < 5; ++i) {
        Loader<crop::SimpleResized> l(ds, cfg);
        l.start_epoch(static_cast<std::uint64_t>(i));
        if (i % 2) l.next();
    }  // destructors must not hang
    {
        Loader<crop::SimpleResized> never_started(ds, cfg);
    }
    CHECK_THROWS_AS(Loader<crop::SimpleResized>(ds, cfg).next(), lcmae::Error);
}

TEST_CASE("a worker's error reaches next(), naming the sample's file; the epoch goes on") {
    std::vector<std::uint8_t> px(12 * 10 * 10, 7);
    auto ds = std::make_shared<Broken>("broken", std::move(px), 12, 10, 10, 1);
    LoaderConfig cfg;
    cfg.batch = 4;
    cfg.image_size = 8;
    cfg.threads = 2;
    cfg.shuffle = false;
    Loader<crop::SimpleResized> loader(ds, cfg);
    loader.start_epoch(0);
    CHECK(loader.next() != nullptr);
    try {
        loader.next();
        FAIL("no error");
    } catch (const lcmae::Error& e) {
        CHECK(std::string(e.what()).find("broken/file_5.png") != std::string::npos);
        CHECK(std::string(e.what()).find("synthetic failure") != std::string::npos);
    }
    CHECK(loader.next() != nullptr);
    CHECK(loader.next() == nullptr);
}

TEST_CASE("loader configuration errors") {
    auto ds = synthetic(10, 8, 8, 1);
    LoaderConfig cfg;
    cfg.image_size = 8;
    cfg.batch = 11;
    CHECK_THROWS_AS(Loader<crop::SimpleResized>(ds, cfg), lcmae::Error);  // not one batch
    cfg.batch = 2;
    cfg.channels = 2;
    CHECK_THROWS_AS(Loader<crop::SimpleResized>(ds, cfg), lcmae::Error);
    cfg.channels = 1;
    cfg.rank = 2;
    cfg.world_size = 2;
    CHECK_THROWS_AS(Loader<crop::SimpleResized>(ds, cfg), lcmae::Error);
}

TEST_CASE("gray images feed a 3-channel model replicated; normalisation applied; pinning hook") {
    auto ds = synthetic(8, 28, 28, 1);
    LoaderConfig cfg;
    cfg.batch = 4;
    cfg.image_size = 28;
    cfg.channels = 3;
    cfg.views = Views::Single;
    cfg.norm = Normalization::fashion_mnist();
    int pinned = 0, unpinned = 0;
    std::size_t pinned_bytes = 0;
    cfg.pin = [&](void*, std::size_t bytes) { pinned++, pinned_bytes = bytes; };
    cfg.unpin = [&](void*, std::size_t) { unpinned++; };
    {
        Loader<crop::SimpleResized> loader(ds, cfg);
        loader.start_epoch(0);
        const Batch* b = loader.next();
        REQUIRE(b != nullptr);
        CHECK(b->channels == 3);
        CHECK(b->view2 == nullptr);
        const std::size_t plane = 28 * 28;
        for (std::size_t p = 0; p < plane; ++p) {
            CHECK(b->view1[p] == b->view1[plane + p]);
            CHECK(b->view1[p] == b->view1[2 * plane + p]);
        }
        float lo = 1e9f, hi = -1e9f;
        for (std::size_t p = 0; p < 4 * 3 * plane; ++p) lo = std::min(lo, b->view1[p]), hi = std::max(hi, b->view1[p]);
        CHECK(lo >= (0.0f - 0.2860f) / 0.3530f - 1e-5f);
        CHECK(hi <= (1.0f - 0.2860f) / 0.3530f + 1e-5f);
    }
    CHECK(pinned > 0);
    CHECK(pinned_bytes == 4u * 3 * 28 * 28 * sizeof(float));
    CHECK(unpinned == pinned);
}

TEST_CASE("evaluation views: resize + centre crop, no randomness, dataset order, every sample") {
    auto ds = synthetic(10, 40, 30, 3);
    LoaderConfig cfg;
    cfg.batch = 4;
    cfg.image_size = 24;
    cfg.views = Views::Eval;
    cfg.view.eval_resize = 28;
    cfg.shuffle = false;
    cfg.drop_last = false;
    cfg.norm = Normalization::identity();
    Loader<crop::SimpleResized> loader(ds, cfg);
    const Epoch a = run_epoch(loader, 0), b = run_epoch(loader, 7);
    CHECK(a.v1 == b.v1);
    CHECK(a.v2.empty());
    CHECK(a.sizes == std::vector<int>{4, 4, 2});
    CHECK(a.indices == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    const cv::Mat expect = ResizeCenterCrop{28, 24}(ds->image(3));
    std::vector<float> chw(3 * 24 * 24);
    to_chw(expect, 3, cfg.norm, chw.data());
    CHECK(std::equal(chw.begin(), chw.end(), a.v1.begin() + 3 * static_cast<std::ptrdiff_t>(chw.size())));
}
