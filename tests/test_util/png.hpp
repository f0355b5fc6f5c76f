// Reads a PNG file's signature and IHDR chunk, so plot tests can check they got a real image of
// the size they asked for without decoding it.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace troupe::test {

struct PngHeader {
  bool valid = false;  // the 8-byte PNG signature followed by an IHDR chunk
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::uintmax_t bytes = 0;  // file size
};

inline PngHeader read_png_header(const std::string& path) {
  PngHeader h;
  std::ifstream in(path, std::ios::binary);
  std::array<unsigned char, 24> b{};
  if (!in.read(reinterpret_cast<char*>(b.data()), b.size())) return h;
  static constexpr std::array<unsigned char, 8> signature{0x89, 'P',  'N',  'G',
                                                          '\r', '\n', 0x1a, '\n'};
  auto be32 = [&b](std::size_t at) {
    return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
           (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
  };
  h.valid = std::equal(signature.begin(), signature.end(), b.begin()) && b[12] == 'I' &&
            b[13] == 'H' && b[14] == 'D' && b[15] == 'R';
  h.width = be32(16);
  h.height = be32(20);
  h.bytes = std::filesystem::file_size(path);
  return h;
}

}  // namespace troupe::test
