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
  uint64_t committed = 0, elections = 0, reads = 0, transfers = 0;
  for (uint64_t s = first; s < first + seeds; ++s) {
    sim_options o;
    o.nodes = nodes;
    o.seed = s;
    cluster c(o);
    std::string failure = c.run();
    ASSERT_EQ(failure, "") << "replay: XERV_SIM_SEED=" << s << " --gtest_filter=*" << nodes << "_nodes*";
    committed += c.committed();
    elections += c.elections();
    reads += c.reads();
    transfers += c.transfers();
  }
  // The runs did something: elections and commits in every seed, on average.
  EXPECT_GE(elections, seeds);
  EXPECT_GE(committed, seeds * 10);
  EXPECT_GE(reads, seeds * 10);
  printf("%llu seeds of %u nodes: %llu elections, %llu entries committed, %llu reads, %llu transfers\n",
         static_cast<unsigned long long>(seeds), nodes, static_cast<unsigned long long>(elections),
         static_cast<unsigned long long>(committed), static_cast<unsigned long long>(reads),
         static_cast<unsigned long long>(transfers));
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

// Reads answered without a quorum's confirmation: a leader cut off (and,
// without check-quorum, still leading) serves stale ones, and the
// linearizability checker must see it.
TEST(raft_sim, reads_without_quorum_are_caught) {
  std::string caught;
  for (uint64_t s = 1; s <= 500 && caught.find("linearizability") == std::string::npos; ++s) {
    sim_options o;
    o.seed = s;
    o.unsafe_read_without_quorum = true;
    o.check_quorum = false;
    o.read_rate = 0.5;
    caught = cluster(o).run();
  }
  EXPECT_NE(caught.find("linearizability"), std::string::npos) << caught;
  printf("caught: %s\n", caught.c_str());
}

TEST(raft_sim, leadership_moves_to_the_chosen_node) {
  sim_options o;
  o.drop = o.duplicate = o.partition_rate = o.crash_rate = 0;
  o.transfer_rate = 0;
  cluster c(o);
  c.quiet_ticks(100);
  int from = c.leader();
  ASSERT_GE(from, 0);
  unsigned to = (unsigned(from) + 1) % 3;
  ASSERT_TRUE(c.transfer(unsigned(from), to));
  c.quiet_ticks(3 * o.election_ticks);  // well within one election timeout in practice
  EXPECT_EQ(c.leader(), int(to));
  EXPECT_EQ(c.run(), "");  // and the cluster goes on
}
