// The Raft simulation (tests/sim/raft_sim.h) over many seeds, 3- and 5-node
// clusters, each seed with protocol options of its own (draw_protocol()), and
// deliberately broken nodes (commits or reads without a quorum) and clients
// (admissions acknowledged before they commit) that it must catch.
// XERV_SIM_SEEDS sets how many seeds per cluster size (half that with
// membership changes), XERV_SIM_SEED_BASE the first one (1; scripts/sim-soak
// moves it on); a failing seed is printed with its options and replays with
// XERV_SIM_SEED.

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include "tests/sim/raft_sim.h"

using xerv::testing::sim::cluster;
using xerv::testing::sim::draw_protocol;
using xerv::testing::sim::sim_options;

namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

struct totals {
  uint64_t committed = 0, elections = 0, reads = 0, admissions = 0, acked = 0, transfers = 0, changes = 0, installs = 0,
           torn = 0, eios = 0;
};

// Runs `seeds` seeds (or only XERV_SIM_SEED), each with the options `make`
// gives for it; stops at the first failure, printing how to replay it.
totals run_seeds(const char* filter, uint64_t seeds, const std::function<sim_options(uint64_t)>& make) {
  uint64_t first = env_or("XERV_SIM_SEED", env_or("XERV_SIM_SEED_BASE", 1));
  if (std::getenv("XERV_SIM_SEED") && *std::getenv("XERV_SIM_SEED")) seeds = 1;
  bool keep_going = std::getenv("XERV_SIM_KEEP_GOING") != nullptr;  // report every failing seed, not the first
  totals t;
  for (uint64_t s = first; s < first + seeds; ++s) {
    cluster c(make(s));
    std::string failure = c.run();
    EXPECT_EQ(failure, "") << "replay: XERV_SIM_SEED=" << s << " --gtest_filter=*" << filter << "*";
    if (!failure.empty() && !keep_going) break;
    t.committed += c.committed();
    t.elections += c.elections();
    t.reads += c.reads();
    t.admissions += c.admissions();
    t.acked += c.admissions_acked();
    t.transfers += c.transfers();
    t.changes += c.membership_changes();
    t.installs += c.snapshots_installed();
    t.torn += c.torn_writes();
    t.eios += c.eios();
  }
  printf("%llu seeds from %llu: %llu elections, %llu entries committed, %llu reads, %llu admissions (%llu "
         "acknowledged), %llu transfers, %llu membership changes, %llu snapshots installed, %llu torn writes (%llu of "
         "them EIO)\n",
         static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(first),
         static_cast<unsigned long long>(t.elections), static_cast<unsigned long long>(t.committed),
         static_cast<unsigned long long>(t.reads), static_cast<unsigned long long>(t.admissions),
         static_cast<unsigned long long>(t.acked), static_cast<unsigned long long>(t.transfers),
         static_cast<unsigned long long>(t.changes), static_cast<unsigned long long>(t.installs),
         static_cast<unsigned long long>(t.torn), static_cast<unsigned long long>(t.eios));
  return t;
}

void run_cluster(unsigned nodes) {
  uint64_t seeds = env_or("XERV_SIM_SEEDS", 2000);
  totals t = run_seeds(nodes == 3 ? "3_nodes" : "5_nodes", seeds, [nodes](uint64_t s) {
    sim_options o;
    o.nodes = nodes;
    o.seed = s;
    draw_protocol(o);
    return o;
  });
  // The runs did something: elections, commits, reads and acknowledged
  // admissions in every seed, on average.
  uint64_t ran = std::getenv("XERV_SIM_SEED") ? 1 : seeds;
  EXPECT_GE(t.elections, ran);
  EXPECT_GE(t.committed, 10 * ran);
  EXPECT_GE(t.reads, ran);
  EXPECT_GE(t.acked, 5 * ran);
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
    draw_protocol(o);
    // With neither pre-vote nor check-quorum (which brings leader
    // stickiness, §4.2.3) a server removed without learning it campaigns at
    // ever higher terms and deposes every leader: no liveness then.
    if (!o.check_quorum) o.pre_vote = true;
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

namespace {

// A mutation must be caught within `limit` seeds (options drawn per seed,
// XERV_SIM_SEED_BASE ignored: the same seeds every run); `what` is the
// checker that must see it. The limit is far above the seed that catches it
// (every seed would not, but a good share does: see raft/README.md), so a
// harness change that shifts the runs does not let it slip through.
std::string first_caught(uint64_t limit, const std::string& what, const std::function<void(sim_options&)>& mutate) {
  std::string caught;
  uint64_t s = 1;
  auto hit = [&what](const std::string& failure) {
    return !failure.empty() && failure.find(what) != std::string::npos;
  };
  for (; s <= limit && !hit(caught); ++s) {
    sim_options o;
    o.seed = s;
    draw_protocol(o);
    mutate(o);
    caught = cluster(o).run();
  }
  printf("caught at seed %llu of at most %llu: %s\n", static_cast<unsigned long long>(s - 1),
         static_cast<unsigned long long>(limit), caught.c_str());
  return caught;
}

}  // namespace

// Committing what one follower has, not a majority: some seed must expose it.
TEST(raft_sim, commit_without_quorum_is_caught) {
  std::string caught = first_caught(300, "", [](sim_options& o) {
    o.nodes = 5;
    o.unsafe_commit_without_quorum = true;
  });
  EXPECT_NE(caught, "") << "the simulation did not notice commits without a quorum";
}

// Reads answered without a quorum's confirmation: a leader cut off (and,
// without check-quorum, still leading) serves stale ones, and the
// linearizability checker must see it.
TEST(raft_sim, reads_without_quorum_are_caught) {
  std::string caught = first_caught(300, "linearizability", [](sim_options& o) {
    o.unsafe_read_without_quorum = true;
    o.check_quorum = false;
    o.read_rate = 0.5;
  });
  EXPECT_NE(caught.find("linearizability"), std::string::npos) << caught;
}

// Admissions acknowledged once the leader has appended them, before they
// commit: a leader deposed before it replicates one loses it (or a later
// leader puts another entry at its index, and later admissions before it),
// and the linearizability checker must see it.
TEST(raft_sim, admissions_acked_before_commit_are_caught) {
  std::string caught = first_caught(300, "linearizability", [](sim_options& o) { o.unsafe_ack_on_append = true; });
  EXPECT_NE(caught.find("linearizability"), std::string::npos) << caught;
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
