// write_atomically: the target ends up complete or untouched, and no temporary file is left.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "memory/file_util.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("troupe_file_util_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  return dir;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t entries_in(const fs::path& dir) {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

}  // namespace

TEST_CASE("write_atomically creates parent directories and leaves only the target") {
  fs::path dir = fresh_dir("create");
  fs::path target = dir / "a" / "b" / "out.bin";
  write_atomically(target.string(), [](std::ostream& out) { out << "hello " << 42; });
  CHECK(read_all(target) == "hello 42");
  CHECK(entries_in(target.parent_path()) == 1);

  write_atomically(target.string(), [](std::ostream& out) { out << "second"; });
  CHECK(read_all(target) == "second");
  CHECK(entries_in(target.parent_path()) == 1);
  fs::remove_all(dir);
}

TEST_CASE("before_rename runs with the new contents complete but not yet in place") {
  fs::path dir = fresh_dir("before_rename");
  fs::path target = dir / "state.json";
  write_atomically(target.string(), [](std::ostream& out) { out << "old"; });
  int calls = 0;
  write_atomically(
      target.string(), [](std::ostream& out) { out << "new"; },
      [&] {
        ++calls;
        CHECK(read_all(target) == "old");
        REQUIRE(entries_in(dir) == 2);  // the target and the finished temporary file
        for (const auto& entry : fs::directory_iterator(dir))
          if (entry.path() != target) CHECK(read_all(entry.path()) == "new");
      });
  CHECK(calls == 1);
  CHECK(read_all(target) == "new");
  CHECK(entries_in(dir) == 1);
  fs::remove_all(dir);
}

TEST_CASE("a writer that throws leaves the old file intact and no temporary file") {
  fs::path dir = fresh_dir("throw");
  fs::path target = dir / "state.json";
  write_atomically(target.string(), [](std::ostream& out) { out << "old contents"; });

  auto failing = [](std::ostream& out) {
    out << "new contents, half written";
    out.flush();
    throw std::runtime_error("writer failed");
  };
  CHECK_THROWS_WITH(write_atomically(target.string(), failing), "writer failed");
  CHECK(read_all(target) == "old contents");
  CHECK(entries_in(dir) == 1);
  fs::remove_all(dir);
}

TEST_CASE("write_atomically rejects an empty path and a directory as target") {
  CHECK_THROWS_AS(write_atomically("", [](std::ostream&) {}), std::invalid_argument);
  fs::path dir = fresh_dir("dir_target");
  fs::create_directories(dir / "taken");
  CHECK_THROWS_AS(write_atomically((dir / "taken").string(), [](std::ostream& out) { out << 1; }),
                  std::runtime_error);
  CHECK(fs::is_directory(dir / "taken"));
  CHECK(entries_in(dir) == 1);
  fs::remove_all(dir);
}
