// Character-level text: reading from files and commands, vocabulary, encoding, the contiguous
// split, next-token windows, and the real KJV text.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "data/text_dataset.hpp"

namespace fs = std::filesystem;
using Ids = std::vector<std::int32_t>;

TEST_CASE("text from files and commands", "[data][text]") {
  SECTION("a file") {
    const fs::path path = fs::temp_directory_path() / "troupe_text_test.txt";
    std::ofstream(path) << "In the beginning\n";
    CHECK(troupe::read_text_file(path.string()) == "In the beginning\n");
    fs::remove(path);
  }
  SECTION("a command's standard output") {
    CHECK(troupe::read_command_output("printf 'ab\\nc'") == "ab\nc");
  }
  SECTION("a failing command") {
    CHECK_THROWS_WITH(troupe::read_command_output("exit 3"), Catch::Contains("exit status 3"));
  }
  SECTION("a command that prints nothing") {
    CHECK_THROWS_WITH(troupe::read_command_output("true"), Catch::Contains("printed nothing"));
  }
  SECTION("a missing file") {
    CHECK_THROWS_WITH(troupe::read_text_file("/nonexistent/kjv.txt"),
                      Catch::Contains("/nonexistent/kjv.txt"));
  }
}

TEST_CASE("CharVocab: sorted distinct bytes, encode and decode", "[data][text]") {
  const std::string text = "hello, world";
  troupe::CharVocab vocab = troupe::CharVocab::from_text(text);
  CHECK(vocab.chars() == " ,dehlorw");  // sorted by byte value: ' ' 32 < ',' 44 < letters
  CHECK(vocab.size() == 9);
  CHECK(vocab.encode('h') == 4);
  const Ids ids = vocab.encode(text);
  CHECK(ids == Ids{4, 3, 5, 5, 6, 1, 0, 8, 6, 7, 5, 2});
  CHECK(vocab.decode(ids) == text);
  CHECK_THROWS_WITH(vocab.encode('z'), Catch::Contains("byte 122 is not in the vocabulary"));
  CHECK_THROWS_AS(vocab.decode(Ids{9}), std::out_of_range);
  CHECK_THROWS_AS(vocab.decode(Ids{-1}), std::out_of_range);
  // A saved vocabulary restores the same ids; unsorted or repeated characters are refused.
  CHECK(troupe::CharVocab(vocab.chars()).encode(text) == ids);
  CHECK_THROWS_AS(troupe::CharVocab("ba"), std::invalid_argument);
  CHECK_THROWS_AS(troupe::CharVocab("aa"), std::invalid_argument);
  CHECK_THROWS_AS(troupe::CharVocab::from_text(""), std::invalid_argument);
}

TEST_CASE("split_tokens: validation is the contiguous tail", "[data][text]") {
  Ids tokens(10);
  std::iota(tokens.begin(), tokens.end(), 0);
  auto split = troupe::split_tokens(tokens, 0.25);  // floor(10 · 0.25) = 2
  CHECK(split.train == Ids{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(split.validation == Ids{8, 9});
  split = troupe::split_tokens(tokens, 0.0);
  CHECK(split.train == tokens);
  CHECK(split.validation.empty());
  split = troupe::split_tokens(tokens, 0.05);  // floor(0.5) = 0
  CHECK(split.validation.empty());
  CHECK_THROWS_AS(troupe::split_tokens(tokens, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(troupe::split_tokens(tokens, -0.1), std::invalid_argument);
}

TEST_CASE("TokenWindows: inputs and next-token targets", "[data][text]") {
  Ids tokens(11);
  std::iota(tokens.begin(), tokens.end(), 100);  // 100..110

  SECTION("tiling windows (stride = seq_len)") {
    troupe::TokenWindows windows(tokens, 3);
    // Starts 0, 3, 6: a window needs seq_len + 1 = 4 tokens, and start 9 would need 13.
    REQUIRE(windows.size() == 3);
    std::vector<std::int64_t> pick{2, 0};
    troupe::Tensor x, y;
    windows.gather(pick, x, y);
    REQUIRE(x.shape() == troupe::Shape{2, 3});
    REQUIRE(y.shape() == troupe::Shape{2, 3});
    CHECK(x.dtype() == troupe::DType::i32);
    const std::int32_t* xs = x.data<std::int32_t>();
    const std::int32_t* ys = y.data<std::int32_t>();
    CHECK(Ids(xs, xs + 6) == Ids{106, 107, 108, 100, 101, 102});
    CHECK(Ids(ys, ys + 6) == Ids{107, 108, 109, 101, 102, 103});
  }
  SECTION("overlapping windows (stride 1) reach the last token") {
    troupe::TokenWindows windows(tokens, 3, 1);
    REQUIRE(windows.size() == 8);  // starts 0..7
    std::vector<std::int64_t> last{7};
    troupe::Tensor x, y;
    windows.gather(last, x, y);
    CHECK(y.data<std::int32_t>()[2] == 110);
  }
  SECTION("exactly one window") {
    CHECK(troupe::TokenWindows(Ids{1, 2, 3, 4}, 3).size() == 1);
  }
  SECTION("errors") {
    CHECK_THROWS_WITH(troupe::TokenWindows(Ids{1, 2, 3}, 3),
                      Catch::Contains("3 tokens do not hold one window of seq_len + 1 = 4"));
    CHECK_THROWS_AS(troupe::TokenWindows(tokens, 0), std::invalid_argument);
    CHECK_THROWS_AS(troupe::TokenWindows(tokens, 3, -1), std::invalid_argument);
    troupe::TokenWindows windows(tokens, 3);
    std::vector<std::int64_t> bad{3};
    troupe::Tensor x, y;
    CHECK_THROWS_AS(windows.gather(bad, x, y), std::out_of_range);
  }
}

TEST_CASE("the real KJV text from the bible command", "[data][text][kjv]") {
  std::string text;
  try {
    text = troupe::load_kjv_text("");
  } catch (const std::runtime_error& error) {
    FAIL(error.what() << " (run tools/setup.sh; CI installs bible-kjv)");
  }
  // Measured with `bible -f "Gen1:1-Rev22:21" | wc -c`.
  CHECK(text.size() == 4404412);
  CHECK(text.rfind("Ge1:1 In the beginning God created the heaven and the earth.\n", 0) == 0);
  troupe::CharVocab vocab = troupe::CharVocab::from_text(text);
  // Newline, space, ! ' ( ) , - . 0-9 : ; ? and the letters (no capital X): 73 distinct bytes,
  // counted with Python over the command's output.
  CHECK(vocab.size() == 73);
  CHECK(vocab.chars().substr(0, 9) == "\n !'(),-.");
  auto split = troupe::split_tokens(vocab.encode(text), 0.05);
  CHECK(split.validation.size() == 220220);  // floor(4404412 · 0.05)
  CHECK(vocab.decode(split.validation)
            .find("Rev22:21 The grace of our Lord Jesus Christ be with you all. Amen.") !=
        std::string::npos);
}
