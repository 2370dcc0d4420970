// The Raft backend (backends/raft) against the dispatch conformance suite: three
// nodes in this process, each with its log in its own temp dir and its peers
// over loopback TCP, driven on one shard. The suite runs once through the
// leader and once through a follower (which forwards every command). Then
// what only a replicated backend does: failover, restart from disk, a dead
// node's traces moving to the live ones, and snapshots.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

#include "backends/raft/replica.h"
#include "tests/dispatch/conformance.h"

using namespace xerv;
using namespace std::chrono_literals;

// Named, not anonymous: the suite's coroutine frames hold a cluster.
namespace raft_test {

using backends::raft::replica;
using backends::raft::replica_options;

inline std::string make_temp_dir() {
  std::string tmpl = "/tmp/xerv-raft-test.XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

// N replicas on this shard. Ticks of 10 ms: elections within a few hundred ms.
struct cluster {
  explicit cluster(size_t n = 3) : size(n) {}
  ~cluster() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  size_t size;
  std::string root = make_temp_dir();
  std::vector<std::unique_ptr<replica>> nodes;  // nodes[i] is id i + 1; null: stopped
  std::vector<uint16_t> ports;
  std::chrono::milliseconds lease{5000};
  uint64_t snapshot_entries = 10'000;
  unsigned shards = 1;

  replica_options options(uint64_t id) const {
    replica_options o;
    o.id = id;
    o.shards = shards;
    for (uint64_t p = 1; p <= size; ++p)
      if (p != id) o.peers.push_back({xerv::raft::node_id(p), "127.0.0.1", ports.empty() ? uint16_t(0) : ports[p - 1]});
    o.listen_port = ports.empty() ? 0 : ports[id - 1];
    o.dir = root + "/node-" + std::to_string(id);
    o.tick = 10ms;
    o.election_ticks = 10;
    o.lease = lease;
    o.request_timeout = 3s;
    o.snapshot_entries = snapshot_entries;
    return o;
  }

  io::task<bool> start_node(uint64_t id) {
    auto starting = replica::start(options(id));
    auto r = co_await std::move(starting);
    auto* started = std::get_if<std::unique_ptr<replica>>(&r);
    EXPECT_TRUE(started) << std::get<std::string>(r);
    if (!started) co_return false;
    nodes[id - 1] = std::move(*started);
    co_return true;
  }

  io::task<void> stop_node(uint64_t id) {
    auto stopping = nodes[id - 1]->stop();
    co_await std::move(stopping);
    nodes[id - 1].reset();
  }

  // Starts every node (ports: any free one, then told to every peer).
  io::task<bool> start_all() {
    nodes.resize(size);
    for (uint64_t id = 1; id <= size; ++id) {
      auto starting = start_node(id);
      if (!co_await std::move(starting)) co_return false;
    }
    for (auto& n : nodes) ports.push_back(n->port());
    for (uint64_t id = 1; id <= size; ++id) nodes[id - 1]->set_peers(options(id).peers);
    auto electing = wait_leader();
    co_return co_await std::move(electing) != 0;
  }

  // The leader every running node agrees on, once it has applied its own
  // term's first entry (0 after 5 s).
  io::task<uint64_t> wait_leader() {
    for (int i = 0; i < 500; ++i) {
      uint64_t leader = 0;
      bool agreed = true;
      for (auto& n : nodes) {
        if (!n || n->status().removed) continue;
        auto s = n->status();
        if (leader == 0) leader = s.leader;
        agreed &= s.leader != 0 && s.leader == leader && s.caught_up;
      }
      if (agreed && leader && nodes[leader - 1]) {
        auto s = nodes[leader - 1]->status();
        if (s.role == xerv::raft::role::leader && s.applied >= s.commit && s.commit > 0) co_return leader;
      }
      auto sleeping = io::sleep_for(10ms);
      co_await sleeping;
    }
    ADD_FAILURE() << "no leader within 5 s";
    co_return 0;
  }

  replica& leader() {
    for (auto& n : nodes)
      if (n && !n->status().removed && n->status().role == xerv::raft::role::leader) return *n;
    throw std::runtime_error("no leader");
  }
  replica& follower() {
    for (auto& n : nodes)
      if (n && n->status().role != xerv::raft::role::leader) return *n;
    throw std::runtime_error("no follower");
  }

  io::task<void> stop_all() {
    for (uint64_t id = 1; id <= nodes.size(); ++id)
      if (nodes[id - 1]) {
        auto stopping = stop_node(id);
        co_await std::move(stopping);
      }
  }
};

// The conformance suite's view: one node's queue and store.
template <bool through_leader>
struct raft_cluster {
  static constexpr const char* name = through_leader ? "raft_leader" : "raft_follower";
  cluster c;
  replica* home = nullptr;
  io::task<bool> start() {
    auto starting = c.start_all();
    if (!co_await std::move(starting)) co_return false;
    home = through_leader ? &c.leader() : &c.follower();
    co_return true;
  }
  io::task<void> stop() {
    auto stopping = c.stop_all();
    co_await std::move(stopping);
  }
  core::trace_queue& queue() { return home->queue(); }
  core::pipeline_store& store() { return home->store(); }
  std::unique_ptr<core::trace_consumer> consumer(std::string n) { return home->queue().consume(std::move(n)); }
  void crash(std::unique_ptr<core::trace_consumer>& con) { con.reset(); }
};

}  // namespace raft_test

using raft_backends = ::testing::Types<raft_test::raft_cluster<true>, raft_test::raft_cluster<false>>;
INSTANTIATE_TYPED_TEST_SUITE_P(raft, dispatch_conformance, raft_backends);

namespace raft_test {

using conformance::admit_n;
using conformance::final_record;
using conformance::take_n;

int run(io::task<int> (*body)(cluster&), size_t n = 3, std::chrono::milliseconds lease = 5000ms,
        uint64_t snapshot_entries = 10'000) {
  return xerv::testing::run_on(1, [](io::task<int> (*b)(cluster&), size_t size, std::chrono::milliseconds l,
                                     uint64_t every) -> io::task<int> {
    cluster c(size);
    c.lease = l;
    c.snapshot_entries = every;
    auto starting = c.start_all();
    if (!co_await std::move(starting)) co_return 100;
    auto running = b(c);
    int rc = co_await std::move(running);
    auto stopping = c.stop_all();
    co_await std::move(stopping);
    co_return rc;
  }(body, n, lease, snapshot_entries));
}

// A queue view for admit_n on one node.
struct on_node {
  replica& r;
  core::trace_queue& queue() { return r.queue(); }
};

io::task<void> await_durable(core::trace_queue* q, core::dispatch_ticket t, int* ok) {
  auto waiting = q->durable(t);
  auto r = co_await std::move(waiting);
  *ok += r.ok() ? 1 : 0;
}

// Admissions acknowledged before the leader dies are all delivered; a new
// leader is elected and admissions through a follower go on.
io::task<int> failover_keeps_acknowledged_admissions(cluster& c) {
  replica& f = c.follower();
  uint64_t fid = f.status().id;
  on_node home{f};
  auto before_job = admit_n(home, "p", 1, 20);
  auto before = co_await std::move(before_job);
  if (before.size() != 20) co_return 1;
  uint64_t old = c.leader().status().id;
  auto killing = c.stop_node(old);
  co_await std::move(killing);
  auto electing = c.wait_leader();
  uint64_t now = co_await std::move(electing);
  EXPECT_NE(now, 0u);
  EXPECT_NE(now, old);
  auto after_job = admit_n(home, "p", 100, 20);
  auto after = co_await std::move(after_job);
  EXPECT_EQ(after.size(), 20u);
  auto con = c.nodes[fid - 1]->queue().consume("w");
  auto got_job = take_n(*con, 40, 100);
  auto got = co_await std::move(got_job);
  EXPECT_EQ(got.size(), 40u);
  for (const auto& d : got) EXPECT_TRUE(con->ack(d.id, final_record(d.id)).ok());
  co_return 0;
}

TEST(raft_backend, failover_keeps_acknowledged_admissions) { EXPECT_EQ(run(&failover_keeps_acknowledged_admissions), 0); }

// A node restarted from its disk has the pipelines and the unfinished traces
// (as second attempts: the process that ran them may have died midway).
io::task<int> restart_recovers_from_disk(cluster& c) {
  replica& f = c.follower();
  uint64_t fid = f.status().id;
  on_node home{f};
  auto admitting = admit_n(home, "p", 1, 5);
  auto a = co_await std::move(admitting);
  if (a.size() != 5) co_return 1;
  core::pipeline_change ch;
  ch.name = "orders";
  ch.source = "name: orders\n";
  auto publishing = f.store().publish(ch, 0);
  auto published = co_await std::move(publishing);
  EXPECT_TRUE(published.ok());
  {
    auto con = f.queue().consume("w");
    auto taking = take_n(*con, 2, 2);
    auto got = co_await std::move(taking);
    EXPECT_EQ(got.size(), 2u);
    if (got.size() != 2) co_return 2;
    EXPECT_TRUE(con->ack(got[0].id, final_record(got[0].id)).ok());
    auto ack_ticket = con->ack(got[1].id, final_record(got[1].id));
    EXPECT_TRUE(ack_ticket.ok());
    auto acked = c.nodes[fid - 1]->queue().durable(*ack_ticket);
    auto acked_r = co_await std::move(acked);
    EXPECT_TRUE(acked_r.ok());
  }
  auto stopping = c.stop_node(fid);
  co_await std::move(stopping);
  auto starting = c.start_node(fid);
  if (!co_await std::move(starting)) co_return 3;
  replica& back = *c.nodes[fid - 1];
  auto loading = back.store().load();
  auto loaded = co_await std::move(loading);
  EXPECT_TRUE(loaded.ok());
  if (loaded) {
    EXPECT_EQ(loaded->size(), 1u);
    if (!loaded->empty()) {
      EXPECT_EQ((*loaded)[0].name, "orders");
      EXPECT_EQ((*loaded)[0].revision, 1u);
    }
  }
  auto con = back.queue().consume("w2");
  auto taking = take_n(*con, 3, 10);
  auto got = co_await std::move(taking);
  EXPECT_EQ(got.size(), 3u);
  for (const auto& d : got) {
    EXPECT_EQ(d.attempt, 2u);
    EXPECT_TRUE(con->ack(d.id, final_record(d.id)).ok());
  }
  co_return 0;
}

TEST(raft_backend, restart_recovers_from_disk) { EXPECT_EQ(run(&restart_recovers_from_disk), 0); }

// A node that is gone longer than the lease loses its unfinished traces to the
// live nodes, each exactly once, as a later attempt.
io::task<int> dead_nodes_traces_move(cluster& c) {
  replica& f = c.follower();
  uint64_t fid = f.status().id;
  on_node home{f};
  auto admitting = admit_n(home, "p", 1, 6);
  auto a = co_await std::move(admitting);
  if (a.size() != 6) co_return 1;
  auto stopping = c.stop_node(fid);
  co_await std::move(stopping);
  std::vector<std::unique_ptr<core::trace_consumer>> cons;
  for (auto& n : c.nodes)
    if (n) cons.push_back(n->queue().consume("w"));
  std::map<std::pair<uint64_t, uint64_t>, int> seen;
  for (int round = 0; round < 300 && seen.size() < 6; ++round) {
    for (auto& con : cons)
      for (auto& d : con->poll(100)) {
        ++seen[{d.id.hi, d.id.lo}];
        EXPECT_GE(d.attempt, 2u);
        EXPECT_TRUE(con->ack(d.id, final_record(d.id)).ok());
      }
    auto sleeping = io::sleep_for(10ms);
    co_await sleeping;
  }
  EXPECT_EQ(seen.size(), 6u);
  for (auto& [k, n] : seen) EXPECT_EQ(n, 1);
  co_return 0;
}

TEST(raft_backend, dead_nodes_traces_move) { EXPECT_EQ(run(&dead_nodes_traces_move, 3, 300ms), 0); }

// With snapshots every few entries, a node that was down while the others
// compacted their logs catches up from a snapshot, and restarts from its own.
io::task<int> lagging_node_catches_up_by_snapshot(cluster& c) {
  replica& f = c.follower();
  uint64_t fid = f.status().id;
  auto stopping = c.stop_node(fid);
  co_await std::move(stopping);
  on_node home{c.leader()};
  for (uint64_t i = 0; i < 10; ++i) {
    auto admitting = admit_n(home, "p", 1 + i * 10, 10);
    auto a = co_await std::move(admitting);
    if (a.size() != 10) co_return 1;
  }
  core::pipeline_change ch;
  ch.name = "orders";
  ch.source = "name: orders\n";
  auto publishing = c.leader().store().publish(ch, 0);
  auto published = co_await std::move(publishing);
  EXPECT_TRUE(published.ok());
  auto starting = c.start_node(fid);
  if (!co_await std::move(starting)) co_return 2;
  replica& back = *c.nodes[fid - 1];
  uint64_t target = c.leader().status().commit;
  for (int i = 0; i < 300 && back.status().applied < target; ++i) {
    auto sleeping = io::sleep_for(10ms);
    co_await sleeping;
  }
  EXPECT_GE(back.status().applied, target);
  EXPECT_EQ(back.state().unfinished().size(), 100u);
  EXPECT_EQ(back.state().pipelines().count("orders"), 1u);
  EXPECT_EQ(back.state().snapshot(), c.leader().state().snapshot());
  co_return 0;
}

TEST(raft_backend, lagging_node_catches_up_by_snapshot) {
  EXPECT_EQ(run(&lagging_node_catches_up_by_snapshot, 3, 5000ms, 20), 0);
}

// One node with no peers is a valid cluster (single-node production).
io::task<int> single_node(cluster& c) {
  // A ticket awaited twice at once (the engine and a sync webhook).
  auto t = c.nodes[0]->queue().admit(core::admission{conformance::make_id(77), 1, "p", "v1", "manual", "{}"});
  EXPECT_TRUE(t.ok());
  if (!t) co_return 1;
  int ok = 0;
  std::vector<io::task<void>> both;
  both.push_back(await_durable(&c.nodes[0]->queue(), *t, &ok));
  both.push_back(await_durable(&c.nodes[0]->queue(), *t, &ok));
  auto all = io::when_all(std::move(both));
  co_await std::move(all);
  EXPECT_EQ(ok, 2);
  on_node home{*c.nodes[0]};
  auto admitting = admit_n(home, "p", 1, 3);
  auto a = co_await std::move(admitting);
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(c.nodes[0]->queue().depth().ready, 4u);
  co_return 0;
}

TEST(raft_backend, single_node) { EXPECT_EQ(run(&single_node, 1), 0); }

}  // namespace raft_test

namespace raft_test {

// The queue of a node's second shard: admissions there go to the replica on
// shard 0 and their traces come back to shard 1, where they were admitted.
struct shard_one {
  std::unique_ptr<backends::raft::shard_queue> q;
  core::trace_queue& queue() { return *q; }
};

io::task<int> second_shard_body(replica* home, shard_one* one) {
  // Ids of this shard, as the engine here makes them. Each ticket is awaited
  // twice at once (the engine and a sync webhook both wait for it).
  for (int i = 0; i < 5; ++i) {
    auto t = one->q->admit(core::admission{core::new_trace_id(1), 1, "p", "v1", "manual", "{}"});
    EXPECT_TRUE(t.ok());
    if (!t) co_return 1;
    int ok = 0;
    std::vector<io::task<void>> both;
    both.push_back(await_durable(one->q.get(), *t, &ok));
    both.push_back(await_durable(one->q.get(), *t, &ok));
    auto all = io::when_all(std::move(both));
    co_await std::move(all);
    EXPECT_EQ(ok, 2);
  }
  EXPECT_EQ(one->q->depth().ready, 5u);
  auto con = one->q->consume("shard-1");
  auto taking = take_n(*con, 5, 10);
  auto got = co_await std::move(taking);
  EXPECT_EQ(got.size(), 5u);
  std::vector<core::dispatch_ticket> tickets;
  for (const auto& d : got) {
    auto t = con->ack(d.id, final_record(d.id));
    EXPECT_TRUE(t.ok());
    if (t) tickets.push_back(*t);
  }
  for (auto t : tickets) {
    auto waiting = one->q->durable(t);
    auto r = co_await std::move(waiting);
    EXPECT_TRUE(r.ok());
  }
  EXPECT_EQ(one->q->depth().in_flight, 0u);
  (void)home;
  co_return 0;
}

io::task<int> second_shard(cluster& c) {
  replica* home = &c.follower();
  shard_one one;
  auto making = io::submit_to(1, [&one, home] { one.q = std::make_unique<backends::raft::shard_queue>(home, 1); });
  co_await std::move(making);
  home->attach_shards({nullptr, one.q.get()});
  auto running = io::submit_to(1, [home, &one] { return second_shard_body(home, &one); });
  int rc = co_await std::move(running);
  EXPECT_EQ(home->queue().depth().ready + home->queue().depth().in_flight, 0u) << "delivered to shard 0";
  EXPECT_TRUE(home->state().unfinished().empty());
  home->attach_shards({});
  auto stopping = io::submit_to(1, [&one]() -> io::task<void> {
    auto s = one.q->stop();
    co_await std::move(s);
    one.q.reset();
  });
  co_await std::move(stopping);
  co_return rc;
}

TEST(raft_backend, second_shard) {
  EXPECT_EQ(xerv::testing::run_on(2, []() -> io::task<int> {
              cluster c(3);
              c.shards = 2;
              auto starting = c.start_all();
              if (!co_await std::move(starting)) co_return 100;
              auto running = second_shard(c);
              int rc = co_await std::move(running);
              auto stopping = c.stop_all();
              co_await std::move(stopping);
              co_return rc;
            }()),
            0);
}

}  // namespace raft_test

namespace raft_test {

// §4.2: a fourth node joins as a learner and becomes a voter once caught up;
// then a node leaves and stops taking admissions; leadership moves on request.
io::task<int> membership_and_transfer(cluster& c) {
  replica_options o = c.options(4);
  o.peers.clear();
  for (uint64_t p = 1; p <= 3; ++p) o.peers.push_back({xerv::raft::node_id(p), "127.0.0.1", c.ports[p - 1]});
  o.listen_port = 0;
  o.join = true;
  c.nodes.resize(4);
  auto starting = replica::start(o);
  auto started = co_await std::move(starting);
  auto* fourth = std::get_if<std::unique_ptr<replica>>(&started);
  EXPECT_TRUE(fourth);
  if (!fourth) co_return 1;
  c.nodes[3] = std::move(*fourth);
  replica& f = c.follower();
  auto adding = f.change_member(backends::raft::member_change::add, 4, "127.0.0.1", c.nodes[3]->port());
  auto added = co_await std::move(adding);
  EXPECT_EQ(added.status, 200) << added.message;
  auto again = f.change_member(backends::raft::member_change::add, 4, "127.0.0.1", c.nodes[3]->port());
  auto twice = co_await std::move(again);
  EXPECT_EQ(twice.status, 409) << twice.message;
  bool voter = false;
  for (int i = 0; i < 300 && !voter; ++i) {
    auto s = c.leader().status();
    voter = std::count(s.voters.begin(), s.voters.end(), 4u) == 1;
    auto sleeping = io::sleep_for(10ms);
    co_await sleeping;
  }
  EXPECT_TRUE(voter) << "node 4 was not promoted";
  for (int i = 0; i < 300 && !c.nodes[3]->status().caught_up; ++i) {
    auto sleeping = io::sleep_for(10ms);
    co_await sleeping;
  }
  on_node four{*c.nodes[3]};
  auto admitting = admit_n(four, "p", 1, 3);
  auto a = co_await std::move(admitting);
  EXPECT_EQ(a.size(), 3u);
  // Node 1 leaves (through node 4); it then refuses admissions.
  auto removing = c.nodes[3]->change_member(backends::raft::member_change::remove, 1);
  auto removed = co_await std::move(removing);
  EXPECT_EQ(removed.status, 200) << removed.message;
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    gone = c.nodes[0]->status().removed;
    auto sleeping = io::sleep_for(10ms);
    co_await sleeping;
  }
  EXPECT_TRUE(gone);
  auto refused = c.nodes[0]->queue().admit(core::admission{conformance::make_id(99), 1, "p", "v1", "manual", "{}"});
  EXPECT_FALSE(refused.ok());
  auto electing = c.wait_leader();
  co_await std::move(electing);  // (node 1 may have led: the rest elect)
  // Leadership moves to a chosen voter.
  replica* target = nullptr;
  for (uint64_t id = 2; id <= 4; ++id)
    if (c.nodes[id - 1]->status().role != xerv::raft::role::leader) target = c.nodes[id - 1].get();
  if (!target) co_return 2;
  uint64_t tid = target->status().id;
  auto moving = c.nodes[3]->change_member(backends::raft::member_change::transfer, tid);
  auto moved = co_await std::move(moving);
  EXPECT_EQ(moved.status, 200) << moved.message;
  bool led = false;
  for (int i = 0; i < 300 && !led; ++i) {
    led = target->status().role == xerv::raft::role::leader;
    auto sleeping = io::sleep_for(10ms);
    co_await sleeping;
  }
  EXPECT_TRUE(led) << "node " << tid << " did not take over";
  auto unknown = target->change_member(backends::raft::member_change::remove, 9);
  auto nobody = co_await std::move(unknown);
  EXPECT_EQ(nobody.status, 404) << nobody.message;
  co_return 0;
}

TEST(raft_backend, membership_and_transfer) { EXPECT_EQ(run(&membership_and_transfer), 0); }

}  // namespace raft_test
