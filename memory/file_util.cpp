// write_atomically: temp file + fsync + rename (POSIX).
#include "memory/file_util.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace troupe {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_io(const std::string& what, const std::string& path) {
  throw std::runtime_error("write_atomically: " + what + " '" + path +
                           "': " + std::strerror(errno));
}

// fsync through a fresh descriptor: std::ofstream does not expose its own, and on Linux fsync
// flushes the file's dirty pages whichever descriptor names it.
void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw_io("cannot open for fsync", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw_io("fsync failed for", path);
}

}  // namespace

void write_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer,
                      const std::function<void()>& before_rename) {
  if (path.empty()) throw std::invalid_argument("write_atomically: path is empty");
  const fs::path target(path);
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  fs::create_directories(dir);

  // The pid and a process-wide counter keep concurrent writers of one target off each other's
  // temporary file; O_EXCL turns any remaining clash into an error instead of a shared file.
  static std::atomic<std::uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw_io("cannot create temporary file", tmp);
  ::close(fd);

  try {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw_io("cannot open temporary file", tmp);
    writer(out);
    out.close();  // close() flushes; checking after it also catches a failed final write
    if (!out) throw std::runtime_error("write_atomically: writing '" + tmp + "' failed");
    fsync_path(tmp, O_RDONLY);
    if (before_rename) before_rename();
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw_io("cannot rename onto", path);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  // The rename lives in the directory entry; without this a crash could bring the old file back.
  fsync_path(dir.string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace troupe
