// Whole-file reading through zlib (gzip or plain).
#include "data/file_io.hpp"

#include <zlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

namespace troupe {

std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error(path + ": no such file");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw std::runtime_error(path + ": cannot open");
  gzbuffer(file.get(), 1u << 18);  // zlib's 8 KB default costs a read call per 8 KB
  std::vector<std::uint8_t> bytes;
  constexpr unsigned kChunk = 1u << 20;
  for (;;) {
    const std::size_t used = bytes.size();
    bytes.resize(used + kChunk);
    const int got = gzread(file.get(), bytes.data() + used, kChunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file.get(), &code);
      throw std::runtime_error(path + ": corrupt gzip data (" + message + ")");
    }
    bytes.resize(used + static_cast<std::size_t>(got));
    if (got == 0) break;
  }
  // At the end of the input, Z_BUF_ERROR means the file stopped in the middle of a gzip stream.
  int code = 0;
  gzerror(file.get(), &code);
  if (code == Z_BUF_ERROR)
    throw std::runtime_error(path + ": truncated gzip file (it ends inside the compressed stream)");
  return bytes;
}

bool file_exists(const std::string& path) {
  return std::filesystem::is_regular_file(path);
}

}  // namespace troupe
