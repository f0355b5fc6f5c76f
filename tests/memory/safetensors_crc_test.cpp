// A CRC-32 inside a safetensors file: the file stays valid safetensors, the CRC follows its
// documented definition, and flipped bytes or a truncated file are detected.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "memory/safetensors_crc.hpp"
#include "test_util/temp_dir.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

NamedTensors sample_tensors() {
  Tensor a = Tensor::empty({64});
  Tensor b = Tensor::empty({3, 5}, DType::i32);
  for (std::int64_t i = 0; i < 64; ++i) a.data<float>()[i] = 0.25f * static_cast<float>(i);
  for (std::int64_t i = 0; i < 15; ++i) b.data<std::int32_t>()[i] = static_cast<int>(i * 7);
  return {{"a", a}, {"b", b}};
}

void check_rejected(const std::string& path, const std::string& fragment) {
  try {
    verify_safetensors_crc(path, "crc32");
    FAIL("verify_safetensors_crc accepted a damaged file; expected: " << fragment);
  } catch (const std::exception& e) {
    CHECK_THAT(e.what(), Catch::Contains(path));
    CHECK_THAT(e.what(), Catch::Contains(fragment));
  }
}

}  // namespace

TEST_CASE("a CRC-carrying file is plain safetensors and its CRC follows the definition") {
  const test::TempDir dir("crc_definition");
  const std::string path = dir.file("x.safetensors");
  save_safetensors_with_crc(path, sample_tensors(), {{"note", "hello"}}, "crc32");
  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(file.tensors.size() == 2);
  CHECK(file.metadata.at("note") == "hello");
  const std::string stored = file.metadata.at("crc32");
  REQUIRE(stored.size() == 8);

  // The definition, computed here independently: the whole file with the 8 digits zeroed.
  std::string bytes = read_text(path);
  const auto at = bytes.find("\"crc32\":\"" + stored + "\"");
  REQUIRE(at != std::string::npos);
  bytes.replace(at + 9, 8, "00000000");
  const auto crc =
      crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size()));
  CHECK(crc32_hex(static_cast<std::uint32_t>(crc)) == stored);
  CHECK_NOTHROW(verify_safetensors_crc(path, "crc32"));
}

TEST_CASE("flipped bytes in the data, the header or the CRC itself, and truncation are detected") {
  const test::TempDir dir("crc_damage");
  const std::string path = dir.file("x.safetensors");
  save_safetensors_with_crc(path, sample_tensors(), {}, "crc32");
  const std::string intact = read_text(path);
  const std::size_t data_start = intact.size() - 64 * 4 - 15 * 4;

  SECTION("16 bytes in the middle of the tensor data") {
    std::string bytes = intact;
    const std::size_t middle = data_start + (intact.size() - data_start) / 2 - 8;
    for (std::size_t i = middle; i < middle + 16; ++i) bytes[i] = static_cast<char>(~bytes[i]);
    write_text(path, bytes);
    CHECK_NOTHROW(load_safetensors(path));  // still well-formed: only the CRC can tell
    check_rejected(path, "damaged");
  }
  SECTION("one byte of the header (a shape digit)") {
    std::string bytes = intact;
    const auto at = bytes.find("[3,5]");
    REQUIRE(at != std::string::npos);
    bytes[at + 1] = '5';  // [5,3]: same size, so still well-formed
    bytes[at + 3] = '3';
    write_text(path, bytes);
    CHECK_NOTHROW(load_safetensors(path));
    check_rejected(path, "damaged");
  }
  SECTION("the stored CRC") {
    std::string bytes = intact;
    const auto at = bytes.find("\"crc32\":\"") + 9;
    bytes[at] = bytes[at] == 'a' ? 'b' : 'a';
    write_text(path, bytes);
    check_rejected(path, "damaged");
  }
  SECTION("truncated data") {
    write_text(path, intact.substr(0, intact.size() - 10));
    CHECK_THROWS(verify_safetensors_crc(path, "crc32"));
    CHECK_THROWS(load_safetensors(path));
  }
  SECTION("truncated header") {
    write_text(path, intact.substr(0, 20));
    CHECK_THROWS_WITH(verify_safetensors_crc(path, "crc32"), Catch::Contains(path));
  }
  SECTION("no CRC at all") {
    save_safetensors(path, sample_tensors(), {{"other", "1"}});
    check_rejected(path, "no 'crc32'");
  }
}
