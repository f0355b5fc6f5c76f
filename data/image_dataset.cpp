// Labelled image datasets: byte storage, per-channel normalisation tables, batch gathering.
#include "data/image_dataset.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace troupe {

ImageNormalization fashion_mnist_normalization() {
  return {{0.2860}, {0.3530}};
}

ImageNormalization cifar10_normalization() {
  return {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}};
}

ImageDataset::ImageDataset(std::vector<std::uint8_t> pixels, std::vector<std::int32_t> labels,
                           std::int64_t channels, std::int64_t height, std::int64_t width,
                           std::int64_t num_classes, const ImageNormalization& normalization)
    : pixels_(std::move(pixels)),
      labels_(std::move(labels)),
      channels_(channels),
      height_(height),
      width_(width),
      num_classes_(num_classes) {
  if (channels < 1 || height < 1 || width < 1)
    throw std::invalid_argument("ImageDataset: channels, height and width must be >= 1, got " +
                                std::to_string(channels) + " x " + std::to_string(height) + " x " +
                                std::to_string(width));
  if (num_classes < 1)
    throw std::invalid_argument("ImageDataset: num_classes must be >= 1, got " +
                                std::to_string(num_classes));
  const auto image_bytes = static_cast<std::size_t>(channels * height * width);
  if (pixels_.size() != labels_.size() * image_bytes)
    throw std::invalid_argument("ImageDataset: " + std::to_string(pixels_.size()) +
                                " pixel bytes do not hold " + std::to_string(labels_.size()) +
                                " images of " + std::to_string(image_bytes) + " bytes");
  for (std::size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] < 0 || labels_[i] >= num_classes)
      throw std::invalid_argument("ImageDataset: label " + std::to_string(labels_[i]) +
                                  " of image " + std::to_string(i) + " is outside [0, " +
                                  std::to_string(num_classes) + ")");
  const auto c = static_cast<std::size_t>(channels);
  if (normalization.mean.size() != c || normalization.std.size() != c)
    throw std::invalid_argument("ImageDataset: normalisation needs " + std::to_string(c) +
                                " means and stds, got " +
                                std::to_string(normalization.mean.size()) + " and " +
                                std::to_string(normalization.std.size()));
  table_.resize(c * 256);
  for (std::size_t ch = 0; ch < c; ++ch) {
    const double mean = normalization.mean[ch];
    const double deviation = normalization.std[ch];
    if (!(deviation > 0.0) || !std::isfinite(deviation) || !std::isfinite(mean))
      throw std::invalid_argument("ImageDataset: channel " + std::to_string(ch) +
                                  " needs a finite mean and a finite std > 0, got mean " +
                                  std::to_string(mean) + ", std " + std::to_string(deviation));
    for (int v = 0; v < 256; ++v)
      table_[ch * 256 + static_cast<std::size_t>(v)] =
          static_cast<float>((v / 255.0 - mean) / deviation);
  }
}

void ImageDataset::gather(std::span<const std::int64_t> indices, Tensor& inputs,
                          Tensor& targets) const {
  check_indices("ImageDataset::gather", indices, size());
  const auto n = static_cast<std::int64_t>(indices.size());
  inputs = Tensor::empty({n, channels_, height_, width_}, DType::f32);
  targets = Tensor::empty({n}, DType::i32);
  const std::size_t plane = static_cast<std::size_t>(height_ * width_);
  const std::size_t image = static_cast<std::size_t>(channels_) * plane;
  float* out = inputs.data<float>();
  std::int32_t* labels = targets.data<std::int32_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto sample = static_cast<std::size_t>(indices[static_cast<std::size_t>(i)]);
    const std::uint8_t* in = pixels_.data() + sample * image;
    for (std::int64_t ch = 0; ch < channels_; ++ch) {
      const float* table = table_.data() + static_cast<std::size_t>(ch) * 256;
      for (std::size_t p = 0; p < plane; ++p) *out++ = table[*in++];
    }
    labels[i] = labels_[sample];
  }
}

}  // namespace troupe
