// The Raft simulation (tests/sim/raft_sim.h) over many seeds, 3- and 5-node
// clusters, and a deliberately broken node (commit without a quorum) that it
// must catch. XERV_SIM_SEEDS sets how many seeds per cluster size; a failing
// seed is printed and replays with XERV_SIM_SEED.

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include "tests/sim/raft_sim.h"

using xerv::testing::sim::cluster;
using xerv::testing::sim::sim_options;

namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

struct totals {
  uint64_t committed = 0, elections = 0, reads = 0, transfers = 0, changes = 0, installs = 0;
};

// Runs `seeds` seeds (or only XERV_SIM_SEED), each with the options `make`
// gives for it; stops at the first failure, printing how to replay it.
totals run_seeds(const char* filter, uint64_t seeds, const std::function<sim_options(uint64_t)>& make) {
  uint64_t first = env_or("XERV_SIM_SEED", 1);
  if (std::getenv("XERV_SIM_SEED")) seeds = 1;
  totals t;
  for (uint64_t s = first; s < first + seeds; ++s) {
    cluster c(make(s));
    std::string failure = c.run();
    EXPECT_EQ(failure, "") << "replay: XERV_SIM_SEED=" << s << " --gtest_filter=*" << filter << "*";
    if (!failure.empty()) break;
    t.committed += c.committed();
    t.elections += c.elections();
    t.reads += c.reads();
    t.transfers += c.transfers();
    t.changes += c.membership_changes();
    t.installs += c.snapshots_installed();
  }
  printf("%llu seeds: %llu elections, %llu entries committed, %llu reads, %llu transfers, %llu membership changes, "
         "%llu snapshots installed\n",
         static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(t.elections),
         static_cast<unsigned long long>(t.committed), static_cast<unsigned long long>(t.reads),
         static_cast<unsigned long long>(t.transfers), static_cast<unsigned long long>(t.changes),
         static_cast<unsigned long long>(t.installs));
  return t;
}

void run_cluster(unsigned nodes) {
  uint64_t seeds = env_or("XERV_SIM_SEEDS", 2000);
  totals t = run_seeds(nodes == 3 ? "3_nodes" : "5_nodes", seeds, [nodes](uint64_t s) {
    sim_options o;
    o.nodes = nodes;
    o.seed = s;
    return o;
  });
  // The runs did something: elections, commits and reads in every seed, on average.
  uint64_t ran = std::getenv("XERV_SIM_SEED") ? 1 : seeds;
  EXPECT_GE(t.elections, ran);
  EXPECT_GE(t.committed, 10 * ran);
  EXPECT_GE(t.reads, ran);
  if (ran > 100) {
    EXPECT_GT(t.installs, 0u);  // laggards caught up by snapshot
  }
}

}  // namespace

TEST(raft_sim, every_checker_holds_on_3_nodes) { run_cluster(3); }
TEST(raft_sim, every_checker_holds_on_5_nodes) { run_cluster(5); }

// Servers join (learner, then voter) and leave while everything else goes on.
TEST(raft_sim, every_checker_holds_through_membership_changes) {
  totals t = run_seeds("membership", env_or("XERV_SIM_SEEDS", 2000) / 2, [](uint64_t s) {
    sim_options o;
    o.seed = s;
    o.spares = 2;
    o.membership_rate = 0.02;
    return o;
  });
  EXPECT_GT(t.changes, 0u);
}

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
