// safetensors save/load: round trips, the exact byte layout, and every kind of malformed file.
#include <catch2/catch.hpp>

#include "test_util/temp_dir.hpp"

#include <unistd.h>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "memory/safetensors.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

// A tensor whose bytes are a pattern distinct per tensor (`seed`), so a swapped or shifted
// tensor shows up in a byte comparison.
Tensor patterned(const Shape& shape, DType dtype, unsigned seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* bytes = static_cast<unsigned char*>(t.raw_data());
  for (std::size_t i = 0; i < t.nbytes(); ++i)
    bytes[i] = static_cast<unsigned char>(seed * 31 + i * 7);
  return t;
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A file with the given header text and `data_bytes` zero bytes of data, built without the
// writer under test.
void write_raw(const std::string& path, const std::string& header, std::size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
}

template <class E>
void check_load_fails(const std::string& path, const std::string& fragment) {
  try {
    load_safetensors(path);
    FAIL("load_safetensors accepted a malformed file; expected: " << fragment);
  } catch (const E& e) {
    CHECK_THAT(e.what(), Catch::Contains(fragment));
  }
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, order, dtypes, shapes, bytes and metadata") {
  test::TempDir dir("safetensors_round_trip");
  // Zero-element tensors sit between others so their empty byte ranges share offsets.
  NamedTensors tensors = {
      {"w1", patterned({2, 3}, DType::f32, 1)},   {"empty", patterned({0, 4}, DType::f32, 2)},
      {"half", patterned({5}, DType::f16, 3)},    {"brain", patterned({1, 3, 1}, DType::bf16, 4)},
      {"none", patterned({3, 0}, DType::i64, 5)}, {"ids", patterned({7}, DType::i32, 6)},
      {"step", patterned({}, DType::i64, 7)},
  };
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"step", "12"}};
  save_safetensors(dir.file("model.safetensors"), tensors, metadata);

  SafetensorsFile loaded = load_safetensors(dir.file("model.safetensors"));
  CHECK(loaded.metadata == metadata);
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    const auto& [got_name, got] = loaded.tensors[i];
    INFO("tensor " << name);
    CHECK(got_name == name);
    CHECK(got.dtype() == expected.dtype());
    CHECK(got.shape() == expected.shape());
    REQUIRE(got.nbytes() == expected.nbytes());
    CHECK(std::memcmp(got.raw_data(), expected.raw_data(), got.nbytes()) == 0);
  }
  CHECK(loaded.at("step").numel() == 1);
  CHECK(loaded.at("step").dim() == 0);
  CHECK_THROWS_AS(loaded.at("missing"), std::out_of_range);

  save_safetensors(dir.file("bare.safetensors"), {{"x", patterned({1}, DType::i32, 8)}});
  CHECK(load_safetensors(dir.file("bare.safetensors")).metadata.empty());
}

TEST_CASE("safetensors header layout matches a hand-computed example byte for byte") {
  test::TempDir dir("safetensors_layout");
  save_safetensors(dir.file("tiny.safetensors"), {{"a", Tensor::from_vector({1.0f, 2.0f}, {2})}},
                   {{"k", "vvvv"}});
  // {"__metadata__":{"k":"vvvv"}, = 1+14+1+12+1 = 29 bytes; "a": = 4; {"dtype":"F32", = 15;
  // "shape":[2], = 12; "data_offsets":[0,8] = 20; }} = 2: 82 bytes, padded to 88 with 6 spaces.
  std::string header =
      R"({"__metadata__":{"k":"vvvv"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  REQUIRE(header.size() == 82);
  std::vector<unsigned char> expected(8 + 88 + 8, ' ');
  const unsigned char length[8] = {88, 0, 0, 0, 0, 0, 0, 0};
  // 1.0f = 0x3F800000 and 2.0f = 0x40000000, little-endian.
  const unsigned char data[8] = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40};
  std::memcpy(expected.data(), length, 8);
  std::memcpy(expected.data() + 8, header.data(), header.size());
  std::memcpy(expected.data() + 8 + 88, data, 8);
  CHECK(read_bytes(dir.file("tiny.safetensors")) == expected);
}

TEST_CASE("load_safetensors rejects malformed files with clear errors") {
  test::TempDir dir("safetensors_errors");
  const std::string path = dir.file("bad.safetensors");
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";

  SECTION("missing file") {
    check_load_fails<std::runtime_error>(path, "cannot open");
  }
  SECTION("shorter than the length prefix") {
    std::ofstream(path, std::ios::binary) << "abcde";
    check_load_fails<std::invalid_argument>(path, "truncated: 5 bytes");
  }
  SECTION("header length past the end of the file") {
    write_raw(path, R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]}})", 0);
    std::vector<unsigned char> bytes = read_bytes(path);
    bytes.resize(bytes.size() - 3);  // cut into the header
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    check_load_fails<std::invalid_argument>(path, "truncated: the header length");
  }
  SECTION("data section cut short") {
    save_safetensors(path, {{"a", patterned({4}, DType::f32, 1)}});
    std::uintmax_t size = fs::file_size(path);
    fs::resize_file(path, size - 4);
    check_load_fails<std::out_of_range>(path, "reach past the 12-byte data section");
  }
  SECTION("header that is not JSON") {
    write_raw(path, "{not json", 0);
    check_load_fails<std::invalid_argument>(path, "bad header: not valid JSON");
  }
  SECTION("header that is not an object") {
    write_raw(path, "[1, 2]", 0);
    check_load_fails<std::invalid_argument>(path, "bad header: expected a JSON object");
  }
  SECTION("metadata value that is not a string") {
    write_raw(path, R"({"__metadata__":{"step":12}})", 0);
    check_load_fails<std::invalid_argument>(path, "value of 'step' must be a string");
  }
  SECTION("offsets out of range") {
    write_raw(path, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
    check_load_fails<std::out_of_range>(path, "tensor 'a': data_offsets [0,16] reach past");
  }
  SECTION("offsets ending before they begin") {
    write_raw(path, R"({"a":{)" + f32x2 + R"(,"data_offsets":[8,0]}})", 8);
    check_load_fails<std::invalid_argument>(path, "end before they begin");
  }
  SECTION("overlapping offsets") {
    write_raw(path,
              R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 +
                  R"(,"data_offsets":[4,12]}})",
              12);
    check_load_fails<std::invalid_argument>(path, "tensor 'b' bytes [4, 12) overlap tensor 'a'");
  }
  SECTION("a gap between tensors") {
    write_raw(path,
              R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
              12);
    check_load_fails<std::invalid_argument>(path, "tensor 'b' bytes [8, 12) leave a gap");
  }
  SECTION("bytes after the last tensor") {
    write_raw(path, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8);
    check_load_fails<std::invalid_argument>(path, "cover 4 bytes of the 8-byte data section");
  }
  SECTION("unknown dtype") {
    write_raw(path, R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8);
    check_load_fails<std::invalid_argument>(path, "tensor 'a': unknown dtype \"F64\"");
  }
  SECTION("byte range that does not match the shape") {
    write_raw(path, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12);
    check_load_fails<std::invalid_argument>(path, "needs 12 bytes but data_offsets [0,8] give 8");
  }
  SECTION("negative shape extent") {
    write_raw(path, R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8);
    check_load_fails<std::invalid_argument>(path, "shape extent must be a non-negative integer");
  }
  SECTION("a shape far larger than the file") {
    write_raw(path, R"({"a":{"dtype":"I64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
              8);
    check_load_fails<std::invalid_argument>(path, "holds more bytes than the 8-byte data section");
  }
  SECTION("missing data_offsets") {
    write_raw(path, R"({"a":{)" + f32x2 + "}}", 8);
    check_load_fails<std::invalid_argument>(path, "tensor 'a': missing \"data_offsets\"");
  }
}

TEST_CASE("save_safetensors rejects tensors it cannot write and leaves no file") {
  test::TempDir dir("safetensors_save_errors");
  const std::string path = dir.file("out.safetensors");
  Tensor t = patterned({2}, DType::f32, 1);
  CHECK_THROWS_AS(save_safetensors(path, {{"a", t}, {"a", t}}), std::invalid_argument);
  CHECK_THROWS_AS(save_safetensors(path, {{"__metadata__", t}}), std::invalid_argument);
  CHECK_THROWS_AS(save_safetensors(path, {{"", t}}), std::invalid_argument);
  CHECK_THROWS_AS(save_safetensors(path, {{"a", Tensor()}}), std::invalid_argument);
  TensorDesc strided{{2}, {2}, DType::f32, Device::cpu(), 0};
  CHECK_THROWS_AS(save_safetensors(path, {{"a", Tensor(strided, t.storage())}}),
                  std::invalid_argument);
  CHECK(fs::is_empty(dir.path));
}

TEST_CASE("the header alone: safetensors_header is the file's first bytes, metadata reads alone") {
  test::TempDir dir("safetensors_header_only");
  const std::string path = dir.file("x.safetensors");
  const NamedTensors tensors{{"a", patterned({4}, DType::f32, 1)},
                             {"b", patterned({2, 3}, DType::i64, 2)}};
  const SafetensorsMetadata metadata{{"step", "12"}, {"run_id", "abc"}};
  save_safetensors(path, tensors, metadata);
  const std::string header = safetensors_header(tensors, metadata);
  const auto bytes = read_bytes(path);
  REQUIRE(bytes.size() == header.size() + 4 * 4 + 6 * 8);
  CHECK(std::equal(header.begin(), header.end(), bytes.begin(),
                   [](char h, unsigned char b) { return static_cast<unsigned char>(h) == b; }));
  CHECK(load_safetensors_metadata(path) == metadata);

  // Truncated data does not matter to the metadata; a truncated header does.
  fs::resize_file(path, header.size() + 4);
  CHECK(load_safetensors_metadata(path) == metadata);
  fs::resize_file(path, 12);
  CHECK_THROWS_WITH(load_safetensors_metadata(path), Catch::Contains(path));
  save_safetensors(path, tensors);
  CHECK(load_safetensors_metadata(path).empty());
}
