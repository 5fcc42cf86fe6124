// lcmae/apps/data_source.hpp - what the programs' `--data` names: Fashion-MNIST (the default;
// Debian's dataset package), the CIFAR-10 binary batches ("cifar10:DIR"), or a folder of images
// (parsed by lcmae/data/source.hpp, which `lcmae eval` uses too), each with its normalisation; and
// the first-N view of a dataset (`--limit`).
// Shared by `lcmae pretrain` (tools/cmd_pretrain.cpp) and the ablation executables
// (examples/ablations/), so both read the same data the same way.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "lcmae/data/dataset.hpp"
#include "lcmae/data/source.hpp"

namespace lcmae::apps {

/// The first n images of a dataset (`--limit N`): same labels, same order.
class FirstN : public data::Dataset {
public:
    FirstN(std::shared_ptr<const data::Dataset> ds, std::size_t n) : ds_(std::move(ds)), n_(std::min(n, ds_->size())) {}
    std::size_t size() const override { return n_; }
    int channels() const override { return ds_->channels(); }
    int label(std::size_t i) const override { return ds_->label(i); }
    int num_classes() const override { return ds_->num_classes(); }
    cv::Mat image(std::size_t i) const override { return ds_->image(i); }
    cv::Mat image(std::size_t i, int min_side) const override { return ds_->image(i, min_side); }
    std::string name() const override { return ds_->name() + " (first " + std::to_string(n_) + ")"; }
    std::string describe(std::size_t i) const override { return ds_->describe(i); }
    std::size_t skipped() const override { return ds_->skipped(); }

private:
    std::shared_ptr<const data::Dataset> ds_;
    std::size_t n_;
};

inline bool is_fashion_mnist(const std::string& data) { return data == "fashion-mnist"; }

/// The training (train = true) or test split named by `data` (lcmae/data/source.hpp:
/// fashion-mnist, cifar10:DIR, or a folder, with DIR/train and DIR/test when it has splits), and
/// its normalisation (written to `norm`); null when there is no test split.
inline std::shared_ptr<const data::Dataset> load_split(const std::string& data, bool train, data::Normalization& norm,
                                                       bool skip_corrupt = false) {
    const auto source = data::DataSource::parse(data);
    norm = source.normalization();
    data::ImageFolderOptions fo;
    fo.skip_corrupt = skip_corrupt;
    return source.open(train, fo);
}

/// `ds` limited to its first `limit` images (0 = all of them).
inline std::shared_ptr<const data::Dataset> first_n(std::shared_ptr<const data::Dataset> ds, std::size_t limit) {
    if (limit == 0 || limit >= ds->size()) return ds;
    return std::make_shared<FirstN>(std::move(ds), limit);
}

}  // namespace lcmae::apps
