// lcmae/apps/data_source.hpp - what the programs' `--data` names: Fashion-MNIST (the default;
// Debian's dataset package), the CIFAR-10 binary batches ("cifar10:DIR"), or a folder of class
// sub-folders, each with its normalisation; and the first-N view of a dataset (`--limit`).
// Shared by `lcmae pretrain` (tools/cmd_pretrain.cpp) and the ablation executables
// (examples/ablations/), so both read the same data the same way.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "lcmae/data/cifar.hpp"
#include "lcmae/data/dataset.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/data/image_folder.hpp"
#include "lcmae/data/transforms.hpp"

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
/// "cifar10:DIR" -> DIR; anything else -> "".
inline std::string cifar_dir(const std::string& data) { return data.rfind("cifar10:", 0) == 0 ? data.substr(8) : std::string(); }

/// The training (train = true) or test split named by `data`, and its normalisation (written to
/// `norm`); an image folder has no test split (null).
inline std::shared_ptr<const data::Dataset> load_split(const std::string& data, bool train, data::Normalization& norm,
                                                       bool skip_corrupt = false) {
    if (is_fashion_mnist(data)) {
        norm = data::Normalization::fashion_mnist();
        return data::load_fashion_mnist(train);
    }
    if (!cifar_dir(data).empty()) {
        norm = data::Normalization::cifar10();
        return data::load_cifar10(cifar_dir(data), train);
    }
    norm = data::Normalization::imagenet();
    if (!train) return nullptr;
    data::ImageFolderOptions fo;
    fo.skip_corrupt = skip_corrupt;
    return std::make_shared<data::ImageFolder>(data, fo);
}

/// `ds` limited to its first `limit` images (0 = all of them).
inline std::shared_ptr<const data::Dataset> first_n(std::shared_ptr<const data::Dataset> ds, std::size_t limit) {
    if (limit == 0 || limit >= ds->size()) return ds;
    return std::make_shared<FirstN>(std::move(ds), limit);
}

}  // namespace lcmae::apps
