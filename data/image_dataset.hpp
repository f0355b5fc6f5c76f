// In-memory labelled images (Fashion-MNIST, CIFAR-10) kept as the files' raw bytes and normalised
// per channel when a batch is gathered: x ↦ (x / 255 − mean[c]) / std[c]. Keeping bytes costs a
// quarter of the memory of f32 images (CIFAR-10's training set: 150 MB instead of 600 MB); a
// 256-entry table per channel, computed in double and rounded once, makes the conversion exact and
// cheap.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.hpp"

namespace troupe {

// Per-channel statistics of a training set's pixels, scaled to [0, 1].
struct ImageNormalization {
  std::vector<double> mean;
  std::vector<double> std;
};

// Fashion-MNIST's training images (60,000 × 28 × 28): mean 0.2860, std 0.3530 over all pixels
// (computed from train-images-idx3-ubyte: 0.28604, 0.35302).
ImageNormalization fashion_mnist_normalization();
// CIFAR-10's training images, per channel R, G, B: mean 0.4914, 0.4822, 0.4465 and std 0.2470,
// 0.2435, 0.2616 over all pixels of each channel (the commonly quoted 0.2023, 0.1994, 0.2010 are
// per-image stds averaged, not the pixel std).
ImageNormalization cifar10_normalization();

enum class DataSplit { train, test };

class ImageDataset final : public Dataset {
 public:
  // pixels: N × channels × height × width bytes (CHW per image); labels: N values in
  // [0, num_classes). Throws std::invalid_argument naming the inconsistent argument.
  ImageDataset(std::vector<std::uint8_t> pixels, std::vector<std::int32_t> labels,
               std::int64_t channels, std::int64_t height, std::int64_t width,
               std::int64_t num_classes, const ImageNormalization& normalization);

  std::int64_t size() const override { return static_cast<std::int64_t>(labels_.size()); }
  std::int64_t channels() const { return channels_; }
  std::int64_t height() const { return height_; }
  std::int64_t width() const { return width_; }
  std::int64_t num_classes() const { return num_classes_; }
  const std::vector<std::uint8_t>& pixels() const { return pixels_; }
  const std::vector<std::int32_t>& labels() const { return labels_; }

  // The normalised value of byte `value` in channel `channel`.
  float normalized(std::int64_t channel, std::uint8_t value) const {
    return table_[static_cast<std::size_t>(channel) * 256 + value];
  }

  // inputs f32 [n, C, H, W], targets i32 [n].
  void gather(std::span<const std::int64_t> indices, Tensor& inputs,
              Tensor& targets) const override;

 private:
  std::vector<std::uint8_t> pixels_;
  std::vector<std::int32_t> labels_;
  std::int64_t channels_;
  std::int64_t height_;
  std::int64_t width_;
  std::int64_t num_classes_;
  std::vector<float> table_;  // [channels × 256]
};

}  // namespace troupe
