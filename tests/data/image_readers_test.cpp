// IDX (Fashion-MNIST) and CIFAR-10 readers on small files the tests write, their error cases, and
// the real Fashion-MNIST test set.
#include <zlib.h>
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/cifar10_reader.hpp"
#include "data/idx_reader.hpp"

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A fresh directory per test case, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("troupe_data_test_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_plain(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const std::string& path, const Bytes& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

Bytes read_plain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void put_u32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

// An IDX unsigned-byte file: magic 0x0000080<ndims>, big-endian dims, values.
Bytes idx(const std::vector<std::uint32_t>& dims, const Bytes& values) {
  Bytes out{0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put_u32(out, d);
  out.insert(out.end(), values.begin(), values.end());
  return out;
}

// Deterministic pixel bytes covering 0 and 255.
Bytes pattern(std::size_t n, unsigned mul) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>((i * mul + 7) % 256);
  out[0] = 0;
  out[n - 1] = 255;
  return out;
}

// Naive reference normalisation. (v − 255·mean) / (255·std) is the same number as
// (v / 255 − mean) / std, computed along another path: the two agree to a few double ulps, which
// rounding to float can move by at most one float ulp (6e-8 relative), so 1e-6 is ample.
float reference(std::uint8_t v, double mean, double std) {
  return static_cast<float>((v - 255.0 * mean) / (255.0 * std));
}
constexpr double kNormTol = 1e-6;

// Runs `body`, which must throw std::runtime_error whose message holds every fragment.
template <class F>
void expect_runtime_error(F body, std::initializer_list<std::string> fragments) {
  try {
    body();
    FAIL("no exception");
  } catch (const std::runtime_error& error) {
    INFO(error.what());
    for (const auto& fragment : fragments) CHECK_THAT(error.what(), Catch::Contains(fragment));
  }
}

}  // namespace

TEST_CASE("IDX reader: gzip and plain files, normalised images and labels", "[data][idx]") {
  TempDir dir("idx");
  const std::uint32_t n = 3, rows = 2, cols = 5;  // odd sizes
  const Bytes pixels = pattern(n * rows * cols, 37);
  const Bytes labels{4, 0, 2};
  const troupe::ImageNormalization norm{{0.25}, {0.5}};

  for (bool gzip : {true, false}) {
    DYNAMIC_SECTION((gzip ? "gzip" : "plain")) {
      const std::string images_path = dir.file(gzip ? "im.gz" : "im");
      const std::string labels_path = dir.file(gzip ? "lb.gz" : "lb");
      (gzip ? write_gzip : write_plain)(images_path, idx({n, rows, cols}, pixels));
      (gzip ? write_gzip : write_plain)(labels_path, idx({n}, labels));

      troupe::ImageDataset data = troupe::load_idx_dataset(images_path, labels_path, 5, norm);
      REQUIRE(data.size() == 3);
      CHECK(data.channels() == 1);
      CHECK(data.height() == 2);
      CHECK(data.width() == 5);
      CHECK(data.pixels() == pixels);

      const std::vector<std::int64_t> pick{2, 0};
      troupe::Tensor x, y;
      data.gather(pick, x, y);
      REQUIRE(x.shape() == troupe::Shape{2, 1, 2, 5});
      REQUIRE(y.shape() == troupe::Shape{2});
      CHECK(y.dtype() == troupe::DType::i32);
      CHECK(y.data<std::int32_t>()[0] == 2);
      CHECK(y.data<std::int32_t>()[1] == 4);
      const float* xs = x.data<float>();
      for (std::size_t b = 0; b < pick.size(); ++b)
        for (std::size_t p = 0; p < rows * cols; ++p) {
          const std::uint8_t v = pixels[static_cast<std::size_t>(pick[b]) * rows * cols + p];
          CHECK(xs[b * rows * cols + p] == Approx(reference(v, 0.25, 0.5)).epsilon(kNormTol));
        }
      // The extremes: 0 ↦ −mean/std = −0.5, 255 ↦ (1 − mean)/std = 1.5.
      CHECK(data.normalized(0, 0) == -0.5f);
      CHECK(data.normalized(0, 255) == 1.5f);
    }
  }
}

TEST_CASE("IDX reader: clear errors for broken files", "[data][idx]") {
  TempDir dir("idx_errors");
  const Bytes pixels = pattern(3 * 4 * 4, 11);
  const std::string images = dir.file("images.gz");
  const std::string labels = dir.file("labels.gz");
  write_gzip(images, idx({3, 4, 4}, pixels));
  const auto norm = troupe::fashion_mnist_normalization();

  SECTION("bad magic: an image file where labels belong") {
    write_gzip(labels, idx({3, 4, 4}, pixels));
    expect_runtime_error([&] { troupe::load_idx_dataset(images, labels, 10, norm); },
                         {labels, "bad IDX magic number 0x00000803, expected 0x00000801"});
  }
  SECTION("bad magic: not an IDX file at all") {
    write_gzip(labels, Bytes{'P', 'K', 3, 4, 0, 0, 0, 0});
    expect_runtime_error([&] { troupe::read_idx(labels, 1); }, {"bad IDX magic number 0x504B0304"});
  }
  SECTION("truncated data") {
    Bytes short_file = idx({3, 4, 4}, pixels);
    short_file.resize(short_file.size() - 5);
    write_gzip(images, short_file);
    expect_runtime_error([&] { troupe::read_idx(images, 3); },
                         {"truncated IDX data", "promises 48 values, the file holds 43"});
  }
  SECTION("truncated header") {
    write_plain(images, Bytes{0, 0, 8, 3, 0, 0, 0, 3, 0, 0});
    expect_runtime_error([&] { troupe::read_idx(images, 3); }, {"truncated IDX header"});
  }
  SECTION("truncated gzip stream") {
    write_gzip(images, idx({3, 4, 4}, pixels));
    Bytes compressed = read_plain(images);
    compressed.resize(compressed.size() / 2);
    write_plain(images, compressed);
    expect_runtime_error([&] { troupe::read_idx(images, 3); }, {images, "truncated gzip"});
  }
  SECTION("data beyond what the header says") {
    Bytes long_file = idx({3, 4, 4}, pixels);
    long_file.push_back(0);
    write_plain(images, long_file);
    expect_runtime_error([&] { troupe::read_idx(images, 3); }, {"longer than its header"});
  }
  SECTION("image and label counts differ") {
    write_gzip(labels, idx({2}, Bytes{1, 2}));
    expect_runtime_error([&] { troupe::load_idx_dataset(images, labels, 10, norm); },
                         {"holds 3 images but", "holds 2 labels"});
  }
  SECTION("label outside the classes") {
    write_gzip(labels, idx({3}, Bytes{1, 10, 2}));
    expect_runtime_error([&] { troupe::load_idx_dataset(images, labels, 10, norm); },
                         {"label 10 of item 1", "[0, 10)"});
  }
  SECTION("missing Fashion-MNIST directory names the fix") {
    expect_runtime_error(
        [&] { troupe::load_fashion_mnist(dir.file("nowhere"), troupe::DataSplit::test); },
        {"t10k-images-idx3-ubyte.gz", "tools/setup.sh"});
  }
}

TEST_CASE("CIFAR-10 reader: records, CHW layout, per-channel normalisation", "[data][cifar]") {
  TempDir dir("cifar");
  // Record r of file f: label (3f + r) % 10, pixels pattern(3072, 13 + f + r).
  auto record = [](int f, int r) {
    Bytes out{static_cast<std::uint8_t>((3 * f + r) % 10)};
    const Bytes px = pattern(3072, static_cast<unsigned>(13 + f + r));
    out.insert(out.end(), px.begin(), px.end());
    return out;
  };
  auto write_batch = [&](const std::string& name, int f, int records) {
    Bytes bytes;
    for (int r = 0; r < records; ++r) {
      const Bytes rec = record(f, r);
      bytes.insert(bytes.end(), rec.begin(), rec.end());
    }
    write_plain(dir.file(name), bytes);
  };
  const auto norm = troupe::cifar10_normalization();

  SECTION("train = data_batch_1..5 in order") {
    const int records[] = {2, 1, 1, 3, 1};  // 8 images
    for (int f = 0; f < 5; ++f)
      write_batch("data_batch_" + std::to_string(f + 1) + ".bin", f, records[f]);
    troupe::ImageDataset data = troupe::load_cifar10(dir.path.string(), troupe::DataSplit::train);
    REQUIRE(data.size() == 8);
    CHECK(data.channels() == 3);
    CHECK(data.height() == 32);
    CHECK(data.width() == 32);
    std::vector<std::pair<int, int>> source;  // (file, record) of each image
    for (int f = 0; f < 5; ++f)
      for (int r = 0; r < records[f]; ++r) source.emplace_back(f, r);

    std::vector<std::int64_t> all(8);
    for (int i = 0; i < 8; ++i) all[static_cast<std::size_t>(i)] = 7 - i;  // reversed order
    troupe::Tensor x, y;
    data.gather(all, x, y);
    REQUIRE(x.shape() == troupe::Shape{8, 3, 32, 32});
    for (int i = 0; i < 8; ++i) {
      const auto [f, r] = source[static_cast<std::size_t>(7 - i)];
      const Bytes rec = record(f, r);
      CHECK(y.data<std::int32_t>()[i] == rec[0]);
      // Sample a few pixels of every channel: offset c·1024 + row·32 + col in the record's pixels.
      for (int c = 0; c < 3; ++c)
        for (int p : {0, 33, 517, 1023}) {
          const std::uint8_t v = rec[static_cast<std::size_t>(1 + c * 1024 + p)];
          const float got = x.data<float>()[i * 3072 + c * 1024 + p];
          CHECK(got == Approx(reference(v, norm.mean[static_cast<std::size_t>(c)],
                                        norm.std[static_cast<std::size_t>(c)]))
                           .epsilon(kNormTol));
        }
    }
  }
  SECTION("test = test_batch.bin") {
    write_batch("test_batch.bin", 7, 3);
    troupe::ImageDataset data = troupe::load_cifar10(dir.path.string(), troupe::DataSplit::test);
    CHECK(data.size() == 3);
    CHECK(data.labels() == std::vector<std::int32_t>{1, 2, 3});  // (3·7 + r) % 10
  }
  SECTION("a file that is not whole records") {
    write_batch("test_batch.bin", 0, 2);
    Bytes bytes = read_plain(dir.file("test_batch.bin"));
    bytes.pop_back();
    write_plain(dir.file("test_batch.bin"), bytes);
    expect_runtime_error([&] { troupe::load_cifar10(dir.path.string(), troupe::DataSplit::test); },
                         {"test_batch.bin", "6145 bytes", "3073-byte"});
  }
  SECTION("a label outside 0..9") {
    Bytes bytes = record(0, 0);
    bytes[0] = 10;
    write_plain(dir.file("test_batch.bin"), bytes);
    expect_runtime_error([&] { troupe::load_cifar10(dir.path.string(), troupe::DataSplit::test); },
                         {"record 0 has label 10"});
  }
  SECTION("a missing batch") {
    write_batch("data_batch_1.bin", 0, 1);
    expect_runtime_error([&] { troupe::load_cifar10(dir.path.string(), troupe::DataSplit::train); },
                         {"data_batch_2.bin: no such file"});
  }
}

TEST_CASE("the real Fashion-MNIST test set", "[data][fashion_mnist]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/t10k-images-idx3-ubyte.gz"))
    FAIL("Fashion-MNIST is not installed in " << dir
                                              << ": run tools/setup.sh (Debian package "
                                                 "dataset-fashion-mnist); CI installs it");
  troupe::ImageDataset data = troupe::load_fashion_mnist(dir, troupe::DataSplit::test);
  REQUIRE(data.size() == 10000);
  CHECK(data.channels() == 1);
  CHECK(data.height() == 28);
  CHECK(data.width() == 28);
  std::array<int, 10> histogram{};
  for (auto label : data.labels()) ++histogram[static_cast<std::size_t>(label)];
  for (int c = 0; c < 10; ++c) CHECK(histogram[static_cast<std::size_t>(c)] == 1000);
  // Facts read from the files with Python's gzip module: the first ten labels, and the byte sum
  // of image 0 (an ankle boot).
  CHECK(std::vector<std::int32_t>(data.labels().begin(), data.labels().begin() + 10) ==
        std::vector<std::int32_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});
  long sum0 = 0;
  for (int p = 0; p < 784; ++p) sum0 += data.pixels()[static_cast<std::size_t>(p)];
  CHECK(sum0 == 33456);
  // The test images' pixel mean is 0.2868493 (Python, over all 7,840,000 bytes / 255), so with the
  // training-set statistics the normalised mean is (0.2868493 − 0.2860) / 0.3530 = 0.0024059.
  // Summed in double; the tolerance covers the 7-digit rounding of the reference.
  std::vector<std::int64_t> all(10000);
  for (std::int64_t i = 0; i < 10000; ++i) all[static_cast<std::size_t>(i)] = i;
  troupe::Tensor x, y;
  data.gather(all, x, y);
  double total = 0.0;
  const float* xs = x.data<float>();
  for (std::int64_t i = 0; i < x.numel(); ++i) total += xs[i];
  CHECK(total / static_cast<double>(x.numel()) == Approx(0.0024059).margin(1e-6));
}
