// Collective bandwidth over UCX between CPU ranks on one machine, printed as nccl-tests prints it
// (size, count, type, redop, root, time, algbw, busbw, #wrong), with the machine's memcpy
// bandwidth beside it for scale.
//
// Run without RANK in the environment, it serves a rendezvous store on a free port and starts
// --ranks copies of itself with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (UCX_TLS
// defaults to shared memory, "sm"); with RANK set (a launcher started it) it runs as that rank.
// Each size is validated first (integer-valued inputs, so sums are exact and #wrong counts the
// elements that differ from the reference), then timed: the mean of --iters calls after --warmup.
//
// busbw follows nccl-tests: algbw × 2(n−1)/n for all_reduce, × (n−1)/n for all_gather,
// reduce_scatter and all_to_all, × 1 for broadcast; it is comparable with the memcpy line.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "comm/rendezvous.hpp"
#include "comm/ucx_communicator.hpp"

using namespace troupe;

namespace {

struct Options {
  int ranks = 2;
  std::int64_t min_bytes = 8;
  std::int64_t max_bytes = 16 << 20;
  int iters = 20;
  int warmup = 5;
  std::vector<std::string> ops{"all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                               "broadcast"};
};

// Integer-valued floats: every sum below is exact, so results compare with ==.
float value(int rank, std::int64_t i) {
  return static_cast<float>((rank + 1) * (i % 13 + 1));
}

void fill(const Tensor& t, int rank, std::int64_t offset = 0) {
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = value(rank, i + offset);
}

void finish(const CommRequestPtr& request) {
  if (!request->wait(std::chrono::seconds(60))) {
    throw std::runtime_error("timed out: " + request->describe());
  }
  if (request->failed()) throw std::runtime_error(request->error());
}

// One collective at one size: `run` issues it on prepared buffers, `wrong` counts mismatches
// after a run on freshly filled inputs.
struct Case {
  const char* name;
  const char* redop;
  int root;
  double bus_factor;
  std::int64_t count;  // elements, as nccl-tests counts them
  std::function<void()> prepare;
  std::function<CommRequestPtr()> run;
  std::function<std::int64_t()> wrong;
};

Case make_case(const std::string& op, Communicator& comm, std::int64_t bytes) {
  const int n = comm.size(), r = comm.rank();
  const double ring = static_cast<double>(n - 1) / n;
  std::int64_t count = bytes / 4;
  if (op != "all_reduce" && op != "broadcast") count -= count % n;  // whole per-rank chunks
  const std::int64_t chunk = count / n;
  if (op == "all_reduce") {
    Tensor x = Tensor::empty({count});
    return {"all_reduce",
            "sum",
            -1,
            2 * ring,
            count,
            [x, r] { fill(x, r); },
            [&comm, x] { return comm.all_reduce(x); },
            [x, n] {
              std::int64_t bad = 0;
              for (std::int64_t i = 0; i < x.numel(); ++i) {
                float want = 0;
                for (int p = 0; p < n; ++p) want += value(p, i);
                bad += x.data<float>()[i] != want;
              }
              return bad;
            }};
  }
  if (op == "all_gather") {
    Tensor send = Tensor::empty({chunk}), recv = Tensor::empty({count});
    return {"all_gather",
            "none",
            -1,
            ring,
            count,
            [send, r] { fill(send, r); },
            [&comm, send, recv] { return comm.all_gather(send, recv); },
            [recv, n, chunk] {
              std::int64_t bad = 0;
              for (int p = 0; p < n; ++p) {
                for (std::int64_t i = 0; i < chunk; ++i)
                  bad += recv.data<float>()[p * chunk + i] != value(p, i);
              }
              return bad;
            }};
  }
  if (op == "reduce_scatter") {
    Tensor send = Tensor::empty({count}), recv = Tensor::empty({chunk});
    return {"reduce_scatter",
            "sum",
            -1,
            ring,
            count,
            [send, r] { fill(send, r); },
            [&comm, send, recv] { return comm.reduce_scatter(send, recv); },
            [recv, n, r, chunk] {
              std::int64_t bad = 0;
              for (std::int64_t i = 0; i < chunk; ++i) {
                float want = 0;
                for (int p = 0; p < n; ++p) want += value(p, r * chunk + i);
                bad += recv.data<float>()[i] != want;
              }
              return bad;
            }};
  }
  if (op == "all_to_all") {
    Tensor send = Tensor::empty({count}), recv = Tensor::empty({count});
    const std::vector<std::int64_t> rows(n, chunk);
    // Element i of the block for peer p encodes (sender, p, i) in the sender's value stream.
    return {"all_to_all",
            "none",
            -1,
            ring,
            count,
            [send, r] { fill(send, r); },
            [&comm, send, recv, rows] { return comm.all_to_all_v(send, rows, recv, rows); },
            [recv, n, r, chunk] {
              std::int64_t bad = 0;
              for (int p = 0; p < n; ++p) {
                for (std::int64_t i = 0; i < chunk; ++i)
                  bad += recv.data<float>()[p * chunk + i] != value(p, r * chunk + i);
              }
              return bad;
            }};
  }
  Tensor x = Tensor::empty({count});
  return {"broadcast",
          "none",
          0,
          1.0,
          count,
          [x, r] { fill(x, r); },
          [&comm, x] { return comm.broadcast(x, 0); },
          [x] {
            std::int64_t bad = 0;
            for (std::int64_t i = 0; i < x.numel(); ++i) bad += x.data<float>()[i] != value(0, i);
            return bad;
          }};
}

double memcpy_gbps(std::int64_t bytes) {
  std::vector<char> from(bytes, 1), to(bytes);
  const double ms =
      bench::median_ms(2, 10, [&] { std::memcpy(to.data(), from.data(), from.size()); });
  return static_cast<double>(bytes) / (ms * 1e6);
}

int run_rank(const Options& opt) {
  const int rank = std::atoi(std::getenv("RANK"));
  const int world = std::atoi(std::getenv("WORLD_SIZE"));
  const char* addr = std::getenv("MASTER_ADDR");
  const char* port = std::getenv("MASTER_PORT");
  if (addr == nullptr || port == nullptr)
    throw std::runtime_error("RANK is set but MASTER_ADDR/MASTER_PORT are not");
  RendezvousClient store(addr, static_cast<std::uint16_t>(std::atoi(port)));
  UcxOptions options;
  options.prefix = "bench-ucx";
  // Peer error handling would rule out shared memory (see comm/ucx_transport.hpp).
  options.peer_error_handling = false;
  auto transport = UcxTransport::connect(rank, world, store, options);
  std::vector<int> everyone(world);
  for (int r = 0; r < world; ++r) everyone[r] = r;
  UcxCommunicator comm(transport, everyone);
  const char* tls = std::getenv("UCX_TLS");
  if (rank == 0) {
    std::printf("# troupe_bench_comm: %d ranks, UCX_TLS=%s, %d iterations after %d warm-up\n",
                world, tls ? tls : "(UCX default)", opt.iters, opt.warmup);
    // 64 MiB: out of every cache, like the large messages.
    constexpr std::int64_t memcpy_bytes = std::int64_t{64} << 20;
    std::printf("# memcpy on one core, %lld bytes: %.2f GB/s\n",
                static_cast<long long>(memcpy_bytes), memcpy_gbps(memcpy_bytes));
  }
  std::int64_t total_wrong = 0;
  for (const std::string& op_name : opt.ops) {
    const char* op = op_name.c_str();
    if (rank == 0) {
      std::printf("#\n# %s\n#%12s %13s %9s %7s %7s %10s %8s %8s %6s\n", op, "size", "count", "type",
                  "redop", "root", "time", "algbw", "busbw", "#wrong");
      std::printf("#%12s %13s %9s %7s %7s %10s %8s %8s %6s\n", "(B)", "(elements)", "", "", "",
                  "(us)", "(GB/s)", "(GB/s)", "");
    }
    for (std::int64_t bytes = opt.min_bytes; bytes <= opt.max_bytes; bytes *= 2) {
      Case c = make_case(op, comm, bytes);
      c.prepare();
      finish(c.run());
      // Every rank's mismatches, summed, so rank 0 prints the whole group's count.
      const Tensor wrong = Tensor::empty({1}, DType::i64);
      wrong.data<std::int64_t>()[0] = c.wrong();
      finish(comm.all_reduce(wrong));
      total_wrong += wrong.data<std::int64_t>()[0];
      for (int i = 0; i < opt.warmup; ++i) finish(c.run());
      finish(comm.barrier());
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < opt.iters; ++i) finish(c.run());
      const double us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count() /
          opt.iters;
      const double size = static_cast<double>(c.count) * 4;
      const double algbw = size / (us * 1e3);
      if (rank == 0) {
        std::printf(" %12.0f %13lld %9s %7s %7d %10.2f %8.3f %8.3f %6lld\n", size,
                    static_cast<long long>(c.count), "float", c.redop, c.root, us, algbw,
                    algbw * c.bus_factor, static_cast<long long>(wrong.data<std::int64_t>()[0]));
      }
    }
  }
  std::fflush(stdout);
  finish(comm.barrier());
  return total_wrong == 0 ? 0 : 1;
}

// Starts opt.ranks copies of this program as ranks of one job and waits for them.
int launch(const Options& opt, char** argv) {
  RendezvousServer server("127.0.0.1", 0);
  setenv("UCX_TLS", "sm", 0);  // shared memory unless the caller chose
  std::fflush(nullptr);
  std::vector<pid_t> children;
  for (int r = 0; r < opt.ranks; ++r) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(opt.ranks).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(server.port()).c_str(), 1);
      execv("/proc/self/exe", argv);
      std::perror("execv /proc/self/exe");
      _exit(127);
    }
    children.push_back(pid);
  }
  int failed = 0;
  for (int r = 0; r < opt.ranks; ++r) {
    int status = 0;
    waitpid(children[r], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "rank %d failed (status %d)\n", r, status);
      ++failed;
    }
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "Validates, then times the collectives over UCX between CPU ranks (nccl-tests table)"};
  app.add_option("--ranks", opt.ranks, "ranks to start (when not started by a launcher)");
  app.add_option("--min-bytes", opt.min_bytes, "smallest message size");
  app.add_option("--max-bytes", opt.max_bytes, "largest message size (doubling from the smallest)");
  app.add_option("--iters", opt.iters, "timed calls per size");
  app.add_option("--warmup", opt.warmup, "untimed calls first");
  app.add_option("--ops", opt.ops, "collectives to run")
      ->check(
          CLI::IsMember({"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast"}));
  CLI11_PARSE(app, argc, argv);
  try {
    bench::require_at_least("--ranks", opt.ranks, 1);
    bench::require_at_least("--min-bytes", opt.min_bytes, 4);
    bench::require_at_least("--max-bytes", opt.max_bytes, opt.min_bytes);
    bench::require_at_least("--iters", opt.iters, 1);
    bench::require_at_least("--warmup", opt.warmup, 0);
    return std::getenv("RANK") != nullptr ? run_rank(opt) : launch(opt, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe_bench_comm: %s\n", e.what());
    return 1;
  }
}
