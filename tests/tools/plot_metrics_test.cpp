// troupe plot on metrics files: the series handed to gnuplot equal the file's numbers (the heat
// map is exp_counts), the PNGs are real images of the requested size, and bad input is named.
#include <catch2/catch.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "test_util/png.hpp"
#include "test_util/temp_dir.hpp"
#include "tools/plot_metrics.hpp"

using namespace troupe;

namespace {

// Three steps of a model with two MoE layers of three experts, and one evaluation.
const char* const moe_metrics =
    R"({"type":"train","step":1,"loss":2.5,"lr":0.0,"elapsed_s":0.5,"exp_counts":[[1,2,3],[4,5,6]],"dropped":0}
{"type":"train","step":2,"loss":2.0,"lr":0.001,"elapsed_s":1.0,"exp_counts":[[3,2,1],[6,5,4]],"dropped":2}

{"type":"eval","step":2,"loss":1.9,"accuracy":0.25,"count":100,"elapsed_s":1.25}
{"type":"train","step":3,"loss":1.5,"lr":0.002,"elapsed_s":1.5,"exp_counts":[[5,5,5],[0,0,9]],"dropped":1}
)";

const char* const dense_metrics =
    R"({"type":"train","step":1,"loss":2.4,"lr":0.0,"elapsed_s":0.25,"exp_counts":[],"dropped":0}
{"type":"train","step":2,"loss":2.2,"lr":0.001,"elapsed_s":0.5,"exp_counts":[],"dropped":0}
{"type":"eval","step":2,"loss":2.1,"accuracy":0.2,"count":100}
)";

}  // namespace

TEST_CASE("read_metrics keeps every train and eval number") {
  test::TempDir dir("plot_metrics_read");
  const MetricsRun run = read_metrics(dir.write("moe.jsonl", moe_metrics));
  CHECK(run.label == "moe");
  REQUIRE(run.train.size() == 3);
  REQUIRE(run.eval.size() == 1);
  CHECK(run.eval_metric == "accuracy");
  CHECK(run.train[1].dropped == 2);
  CHECK(run.train[2].exp_counts == std::vector<std::vector<std::int64_t>>{{5, 5, 5}, {0, 0, 9}});

  CHECK(train_loss_series(run, PlotAxis::step) == GnuplotRows{{1, 2.5}, {2, 2.0}, {3, 1.5}});
  CHECK(train_loss_series(run, PlotAxis::wall_time) ==
        GnuplotRows{{0.5, 2.5}, {1.0, 2.0}, {1.5, 1.5}});
  CHECK(eval_series(run, PlotAxis::step) == GnuplotRows{{2, 0.25}});
  CHECK(eval_series(run, PlotAxis::wall_time) == GnuplotRows{{1.25, 0.25}});
  CHECK(learning_rate_series(run) == GnuplotRows{{1, 0.0}, {2, 0.001}, {3, 0.002}});
  CHECK(dropped_series(run) == GnuplotRows{{1, 0}, {2, 2}, {3, 1}});

  // `troupe train` writes runs/<config>/metrics.jsonl: the folder names the run. An eval line
  // without elapsed_s (older files) has no place on the wall-time axis.
  std::filesystem::create_directories(dir.path / "kjv_gpt_dense");
  const MetricsRun dense = read_metrics(dir.write("kjv_gpt_dense/metrics.jsonl", dense_metrics));
  CHECK(dense.label == "kjv_gpt_dense");
  CHECK(eval_series(dense, PlotAxis::step) == GnuplotRows{{2, 0.2}});
  CHECK(eval_series(dense, PlotAxis::wall_time).empty());
}

TEST_CASE("the expert-load heat map is the exp_counts of each layer, experts by steps") {
  test::TempDir dir("plot_metrics_heat");
  const MetricsRun run = read_metrics(dir.write("moe.jsonl", moe_metrics));
  const ExpertLoad layer0 = expert_load(run, 0, 100);
  CHECK(layer0.tokens == GnuplotRows{{1, 3, 5}, {2, 2, 5}, {3, 1, 5}});
  CHECK(layer0.first_step == 1);
  CHECK(layer0.step_width == 1);
  CHECK(expert_load(run, 1, 100).tokens == GnuplotRows{{4, 6, 0}, {5, 5, 0}, {6, 4, 9}});

  // Long runs are averaged over groups of consecutive steps: here steps {1, 2} and {3}.
  const ExpertLoad grouped = expert_load(run, 1, 2);
  CHECK(grouped.tokens == GnuplotRows{{5, 0}, {5, 0}, {5, 9}});
  CHECK(grouped.first_step == 1.5);
  CHECK(grouped.step_width == 2);

  CHECK_THROWS_WITH(expert_load(run, 2, 100), Catch::Contains("has no MoE layer 2 (it has 2)"));
}

TEST_CASE("plot_metrics writes readable PNGs for MoE and dense runs overlaid") {
  test::TempDir dir("plot_metrics_png");
  const std::string moe = dir.write("moe.jsonl", moe_metrics);
  const std::string dense = dir.write("dense.jsonl", dense_metrics);
  const std::vector<std::string> written = plot_metrics({moe, dense}, dir.file("plots"));
  const std::vector<std::string> expected{dir.file("plots/loss.png"), dir.file("plots/eval.png"),
                                          dir.file("plots/lr.png"),
                                          dir.file("plots/expert_load_moe.png")};
  CHECK(written == expected);  // no heat map for the dense run
  struct Size {
    std::uint32_t width, height;
  };
  const std::vector<Size> sizes{{1400, 500}, {1400, 500}, {1000, 450}, {1400, 750}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO(expected[i]);
    const test::PngHeader png = test::read_png_header(expected[i]);
    CHECK(png.valid);
    CHECK(png.width == sizes[i].width);
    CHECK(png.height == sizes[i].height);
    CHECK(png.bytes > 5000);  // axes, lines and text, not an empty canvas
  }
}

TEST_CASE("read_metrics names the file, line and key of bad input") {
  test::TempDir dir("plot_metrics_errors");
  CHECK_THROWS_AS(read_metrics(dir.file("missing.jsonl")), std::runtime_error);
  CHECK_THROWS_WITH(read_metrics(dir.file("missing.jsonl")), Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(read_metrics(dir.write("a.jsonl", "{\"type\":\"train\",\"step\":1,\n")),
                    Catch::Contains("a.jsonl') line 1: not JSON"));
  CHECK_THROWS_WITH(
      read_metrics(dir.write("b.jsonl", R"({"type":"train","step":1,"lr":0,"elapsed_s":1})")),
      Catch::Contains("line 1: has no \"loss\""));
  CHECK_THROWS_WITH(
      read_metrics(
          dir.write("c.jsonl", R"({"type":"train","step":"one","loss":1,"lr":0,"elapsed_s":1})")),
      Catch::Contains("\"step\" must be an integer: \"one\""));
  CHECK_THROWS_WITH(read_metrics(dir.write("d.jsonl", R"({"type":"eval","step":1,"loss":1,
"accuracy":0.5})")),
                    Catch::Contains("not JSON"));
  CHECK_THROWS_WITH(
      read_metrics(dir.write("e.jsonl", R"({"type":"eval","step":1,"loss":1,"accuracy":0.5})")),
      Catch::Contains("no {\"type\": \"train\"} lines"));
  CHECK_THROWS_WITH(
      read_metrics(
          dir.write("f.jsonl",
                    R"({"type":"train","step":1,"loss":1,"lr":0,"elapsed_s":1,"exp_counts":[[1,2]]}
{"type":"train","step":2,"loss":1,"lr":0,"elapsed_s":2,"exp_counts":[[1,2],[3,4]]})")),
      Catch::Contains("line 2: has 2 MoE layers in \"exp_counts\"; the first train line has 1"));
  CHECK_THROWS_WITH(plot_metrics({dir.file("missing.jsonl")}, dir.file("out")),
                    Catch::Contains("missing.jsonl"));
}
