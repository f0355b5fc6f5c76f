// The launcher's pure parts: hostfiles, which ranks a node starts, the rank environment, the
// command that starts another host, and reading a rank's identity from torchrun, Slurm or MPI
// variables.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "tools/launch_plan.hpp"
#include "tools/rank_environment.hpp"

using namespace troupe;
using Catch::Matchers::Contains;

TEST_CASE("hostfiles: HOST slots=N lines, comments, and clear errors") {
  const auto hosts =
      parse_hostfile("# cluster\nworker-1 slots=4\n\nworker-2 # default slots\n", "hf");
  REQUIRE(hosts.size() == 2);
  CHECK(hosts[0].host == "worker-1");
  CHECK(hosts[0].slots == 4);
  CHECK(hosts[1].host == "worker-2");
  CHECK(hosts[1].slots == 1);
  CHECK_THROWS_WITH(parse_hostfile("a slots=0\n", "hf"),
                    Contains("hf line 1") && Contains("at least 1"));
  CHECK_THROWS_WITH(parse_hostfile("a slots=two\n", "hf"), Contains("whole number"));
  CHECK_THROWS_WITH(parse_hostfile("a gpus=2\n", "hf"), Contains("not slots=N"));
  CHECK_THROWS_WITH(parse_hostfile("a slots=1\na slots=2\n", "hf"),
                    Contains("line 2") && Contains("twice"));
  CHECK_THROWS_WITH(parse_hostfile("# nothing\n", "hf"), Contains("no hosts"));
}

TEST_CASE("plan_node numbers ranks node by node, as torchrun does") {
  LaunchOptions o;
  o.nproc_per_node = 4;
  o.nnodes = 3;
  o.node_rank = 2;
  o.master_addr = "10.0.0.1";
  const NodePlan plan = plan_node(o);
  CHECK(plan.first_rank == 8);
  CHECK(plan.local_world_size == 4);
  CHECK(plan.world_size == 12);
  CHECK(plan.master_addr == "10.0.0.1");
  const auto env = rank_environment(plan, 1, {{"PATH", "/bin"}, {"RANK", "stale"}});
  CHECK(env.at("RANK") == "9");
  CHECK(env.at("WORLD_SIZE") == "12");
  CHECK(env.at("LOCAL_RANK") == "1");
  CHECK(env.at("LOCAL_WORLD_SIZE") == "4");
  CHECK(env.at("MASTER_ADDR") == "10.0.0.1");
  CHECK(env.at("MASTER_PORT") == "29500");
  CHECK(env.at("PATH") == "/bin");

  o.node_rank = 3;
  CHECK_THROWS_WITH(plan_node(o), Contains("--node_rank = 3") && Contains("0 to 2"));
  o.node_rank = 0;
  o.nproc_per_node = 0;
  CHECK_THROWS_WITH(plan_node(o), Contains("--nproc_per_node = 0"));
  o.nproc_per_node = 1;
  o.master_port = 70000;
  CHECK_THROWS_WITH(plan_node(o), Contains("--master_port"));
}

TEST_CASE("with a hostfile, hosts with different slot counts get contiguous ranks") {
  LaunchOptions o;
  o.hosts = {{"a", 2}, {"b", 3}, {"c", 1}};
  o.node_rank = 1;
  NodePlan plan = plan_node(o);
  CHECK(plan.first_rank == 2);
  CHECK(plan.local_world_size == 3);
  CHECK(plan.world_size == 6);
  CHECK(plan.master_addr == "a");
  o.nnodes = 2;
  CHECK_THROWS_WITH(plan_node(o), Contains("--nnodes = 2") && Contains("3 hosts"));
  o.nnodes.reset();
  o.nproc_per_node = 2;
  CHECK_THROWS_WITH(plan_node(o), Contains("slots=N"));
}

TEST_CASE("another host's launcher gets its ranks, the master and the transport settings") {
  LaunchOptions o;
  o.hosts = {{"a", 2}, {"b", 3}, {"c", 1}};
  o.master_port = 1234;
  const auto command = remote_node_command(
      "ssh -p 2222", o, 2, "/work dir", {"/opt/troupe", "launch"}, {"cfg.json", "--steps", "it's"},
      {{"UCX_TLS", "tcp"}, {"NCCL_DEBUG", "INFO"}, {"HOME", "/root"}, {"TROUPE_BIN", "/x"}});
  REQUIRE(command.size() == 5);
  CHECK(command[0] == "ssh");
  CHECK(command[1] == "-p");
  CHECK(command[2] == "2222");
  CHECK(command[3] == "c");
  CHECK(command[4] ==
        "cd '/work dir' && env 'NCCL_DEBUG=INFO' 'TROUPE_BIN=/x' 'UCX_TLS=tcp' '/opt/troupe' "
        "'launch' --nproc_per_node '1' --nnodes '3' --node_rank '2' --master_addr 'a' "
        "--master_port '1234' --world_size '6' --rank_offset '5' 'cfg.json' '--steps' "
        "'it'\"'\"'s'");
  // What the remote launcher does with those options: ranks 5..5 of 6.
  LaunchOptions remote;
  remote.nproc_per_node = 1;
  remote.nnodes = 3;
  remote.node_rank = 2;
  remote.world_size = 6;
  remote.rank_offset = 5;
  const NodePlan plan = plan_node(remote);
  CHECK(plan.first_rank == 5);
  CHECK(plan.world_size == 6);
}

TEST_CASE("a rank's identity from torchrun, Slurm or Open MPI variables") {
  auto torchrun = read_rank_environment({{"RANK", "3"},
                                         {"WORLD_SIZE", "4"},
                                         {"LOCAL_RANK", "1"},
                                         {"LOCAL_WORLD_SIZE", "2"},
                                         {"MASTER_ADDR", "h"},
                                         {"MASTER_PORT", "29500"},
                                         {"SLURM_PROCID", "0"},
                                         {"SLURM_NTASKS", "9"}});
  CHECK(torchrun.launcher == "torchrun");  // torchrun's variables win
  CHECK(torchrun.rank == 3);
  CHECK(torchrun.world_size == 4);
  CHECK(torchrun.local_rank == 1);
  CHECK(torchrun.local_world_size == 2);
  CHECK(torchrun.master_addr == "h");
  CHECK(torchrun.master_port == 29500);

  auto slurm = read_rank_environment({{"SLURM_PROCID", "5"},
                                      {"SLURM_NTASKS", "6"},
                                      {"SLURM_LOCALID", "1"},
                                      {"SLURM_NTASKS_PER_NODE", "2(x3)"}});
  CHECK(slurm.launcher == "slurm");
  CHECK(slurm.rank == 5);
  CHECK(slurm.world_size == 6);
  CHECK(slurm.local_rank == 1);
  CHECK(slurm.local_world_size == 2);

  auto mpi = read_rank_environment({{"OMPI_COMM_WORLD_RANK", "2"},
                                    {"OMPI_COMM_WORLD_SIZE", "3"},
                                    {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                                    {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}});
  CHECK(mpi.launcher == "mpi");
  CHECK(mpi.rank == 2);
  CHECK(mpi.world_size == 3);

  auto none = read_rank_environment({{"HOME", "/root"}});
  CHECK(none.launcher == "none");
  CHECK(none.world_size == 1);
  CHECK(none.rank == 0);

  CHECK_THROWS_WITH(read_rank_environment({{"RANK", "4"}, {"WORLD_SIZE", "4"}}),
                    Contains("RANK = 4") && Contains("WORLD_SIZE = 4"));
  CHECK_THROWS_WITH(read_rank_environment({{"WORLD_SIZE", "four"}}),
                    Contains("WORLD_SIZE = 'four'"));
}
