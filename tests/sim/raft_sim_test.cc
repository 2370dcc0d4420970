// The Raft simulation (tests/sim/raft_sim.h) over many seeds, 3- and 5-node
// clusters, and a deliberately broken node (commit without a quorum) that it
// must catch. XERV_SIM_SEEDS sets how many seeds per cluster size; a failing
// seed is printed and replays with XERV_SIM_SEED.

#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/sim/raft_sim.h"

using xerv::testing::sim::cluster;
using xerv::testing::sim::sim_options;

namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

void run_seeds(unsigned nodes, uint64_t seeds) {
  uint64_t first = env_or("XERV_SIM_SEED", 1);
  if (std::getenv("XERV_SIM_SEED")) seeds = 1;
  uint64_t committed = 0, elections = 0;
  for (uint64_t s = first; s < first + seeds; ++s) {
    sim_options o;
    o.nodes = nodes;
    o.seed = s;
    cluster c(o);
    std::string failure = c.run();
    ASSERT_EQ(failure, "") << "replay: XERV_SIM_SEED=" << s << " --gtest_filter=*" << nodes << "_nodes*";
    committed += c.committed();
    elections += c.elections();
  }
  // The runs did something: elections and commits in every seed, on average.
  EXPECT_GE(elections, seeds);
  EXPECT_GE(committed, seeds * 10);
  printf("%llu seeds of %u nodes: %llu elections, %llu entries committed\n", static_cast<unsigned long long>(seeds),
         nodes, static_cast<unsigned long long>(elections), static_cast<unsigned long long>(committed));
}

}  // namespace

TEST(raft_sim, every_checker_holds_on_3_nodes) { run_seeds(3, env_or("XERV_SIM_SEEDS", 2500)); }
TEST(raft_sim, every_checker_holds_on_5_nodes) { run_seeds(5, env_or("XERV_SIM_SEEDS", 2500)); }

TEST(raft_sim, a_single_node_elects_itself_and_commits) {
  sim_options o;
  o.nodes = 1;
  o.drop = o.duplicate = o.partition_rate = o.crash_rate = 0;
  cluster c(o);
  EXPECT_EQ(c.run(), "");
  EXPECT_GE(c.committed(), 100u);
}

// Committing what one follower has, not a majority: some seed must expose it.
TEST(raft_sim, commit_without_quorum_is_caught) {
  std::string caught;
  for (uint64_t s = 1; s <= 500 && caught.empty(); ++s) {
    sim_options o;
    o.nodes = 5;
    o.seed = s;
    o.unsafe_commit_without_quorum = true;
    caught = cluster(o).run();
  }
  EXPECT_NE(caught, "") << "the simulation did not notice commits without a quorum";
  printf("caught: %s\n", caught.c_str());
}
