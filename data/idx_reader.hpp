// Readers for the IDX format of (Fashion-)MNIST, gzip-compressed or not.
//
// An IDX file is a 4-byte magic number 0x00 0x00 <type> <ndims>, then ndims big-endian u32
// dimensions, then the values in row-major order. Only unsigned bytes (type 0x08) occur in
// (Fashion-)MNIST: images have 3 dimensions (magic 0x00000803: count, rows, cols), labels one
// (0x00000801). A file whose length disagrees with its header is refused, whichever way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image_dataset.hpp"

namespace troupe {

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;  // row-major
};

// Parses one IDX unsigned-byte array from `bytes` (the contents of `path`, which only names the
// source in errors); `expected_dims` is 3 for images, 1 for labels. Throws std::runtime_error on a
// bad magic number, the wrong number of dimensions, or a length that disagrees with the header.
IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, int expected_dims,
                   const std::string& path);
IdxArray read_idx(const std::string& path, int expected_dims);

// Images [N, rows, cols] and labels [N] from two IDX files, as an ImageDataset of N × 1 × rows ×
// cols (one channel). Labels must lie in [0, num_classes).
ImageDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                              std::int64_t num_classes, const ImageNormalization& normalization);

// Fashion-MNIST from `dir` (train-images-idx3-ubyte[.gz] and friends; test = the t10k files),
// normalised with fashion_mnist_normalization(). The Debian package dataset-fashion-mnist installs
// them in /usr/share/datasets/fashion-mnist (tools/setup.sh installs it).
ImageDataset load_fashion_mnist(const std::string& dir, DataSplit split);

}  // namespace troupe
