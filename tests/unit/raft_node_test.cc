// raft::node driven by hand: scripted message exchanges for the rules the
// simulation only finds by luck.

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>

#include "raft/node.h"

using namespace xerv::raft;

namespace {

// Nodes 1..n; every ready is persisted at once and its messages queued;
// deliver() runs the queue until it is empty (or `filter` drops a message).
struct bench {
  std::map<uint64_t, std::unique_ptr<node>> nodes;
  std::deque<message> wire;

  explicit bench(unsigned n) {
    std::vector<node_id> voters;
    for (unsigned i = 1; i <= n; ++i) voters.push_back(node_id(i));
    for (unsigned i = 1; i <= n; ++i) {
      options o;
      o.id = node_id(i);
      o.voters = voters;
      o.seed = i;
      o.inflight_max = 4;
      nodes[i] = std::make_unique<node>(o);
    }
  }
  node& at(unsigned i) { return *nodes.at(i); }
  void drain(unsigned i) {
    ready r = at(i).take_ready();
    for (auto& m : r.messages_now) wire.push_back(std::move(m));
    for (auto& m : r.messages) wire.push_back(std::move(m));
  }
  template <class Keep>
  void deliver(Keep keep) {
    while (!wire.empty()) {
      message m = std::move(wire.front());
      wire.pop_front();
      if (!keep(m)) continue;
      at(unsigned(m.to.value)).step(m);
      drain(unsigned(m.to.value));
    }
  }
  void deliver() {
    deliver([](const message&) { return true; });
  }
  // Ticks node i until it campaigns.
  void elect(unsigned i) {
    while (at(i).current_role() == role::follower) at(i).tick();
    drain(i);
  }
};

}  // namespace

TEST(raft_node, a_new_leader_changes_membership_only_after_committing_in_its_term) {
  bench b(3);
  b.elect(1);
  // The votes come back, but none of the appends' answers yet.
  b.deliver([](const message& m) { return m.type != msg_type::append_reply; });
  ASSERT_EQ(b.at(1).current_role(), role::leader);
  // Its no-op is not committed: a change now could race a leader of the old
  // configuration (the flaw of single-server changes without this rule).
  EXPECT_EQ(b.at(1).change_membership(node::change::add_learner, node_id(4)), node::change_result::busy);
  b.at(1).tick();  // a heartbeat round; its answers move the commit index
  b.drain(1);
  b.deliver();
  ASSERT_EQ(b.at(1).log().term_at(b.at(1).commit_index()), b.at(1).term());
  EXPECT_EQ(b.at(1).change_membership(node::change::add_learner, node_id(4)), node::change_result::done);
  // And one at a time: the next waits until this one commits.
  EXPECT_EQ(b.at(1).change_membership(node::change::remove, node_id(3)), node::change_result::busy);
}

TEST(raft_node, a_learner_is_promoted_only_once_it_caught_up) {
  bench b(3);
  b.elect(1);
  b.deliver();
  b.at(1).tick();
  b.drain(1);
  b.deliver();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.at(1).propose("x"));
  b.drain(1);
  b.deliver();
  ASSERT_EQ(b.at(1).change_membership(node::change::add_learner, node_id(4)), node::change_result::done);
  b.drain(1);
  b.deliver([](const message& m) { return m.to != node_id(4); });  // node 4 hears nothing yet
  b.at(1).tick();
  b.drain(1);
  b.deliver([](const message& m) { return m.to != node_id(4); });
  EXPECT_EQ(b.at(1).change_membership(node::change::promote, node_id(4)), node::change_result::not_caught_up);
  options o;
  o.id = node_id(4);
  o.voters = {node_id(1), node_id(2), node_id(3)};
  b.nodes[4] = std::make_unique<node>(o);
  for (int i = 0; i < 10; ++i) {  // heartbeats probe it down to its empty log and fill it
    b.at(1).tick();
    b.drain(1);
    b.deliver();
  }
  EXPECT_FALSE(b.at(4).config().is_voter(node_id(4)));
  EXPECT_TRUE(b.at(4).config().is_learner(node_id(4)));
  EXPECT_EQ(b.at(1).change_membership(node::change::promote, node_id(4)), node::change_result::done);
  b.drain(1);
  b.deliver();
  EXPECT_TRUE(b.at(1).config().is_voter(node_id(4)));
  EXPECT_EQ(b.at(1).config().quorum(), 3u);
}

// Answers lost while appends are pipelined must not leak flight slots: once
// a follower holds everything, its heartbeat answers free them.
TEST(raft_node, lost_answers_do_not_stall_a_pipelined_follower) {
  bench b(3);
  b.elect(1);
  b.deliver();
  for (unsigned quiet : {2u, 3u}) {  // each follower's answers lost in turn
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE(b.at(1).propose("x"));
      b.drain(1);
      b.deliver([quiet](const message& m) { return !(m.type == msg_type::append_reply && m.from == node_id(quiet)); });
    }
    b.at(1).tick();  // heartbeats: their answers come through
    b.drain(1);
    b.deliver();
  }
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(b.at(1).propose("y"));
    b.drain(1);
    b.deliver();
  }
  EXPECT_EQ(b.at(1).commit_index(), b.at(1).log().last_index());
  EXPECT_EQ(b.at(2).log().last_index(), b.at(1).log().last_index());
  EXPECT_EQ(b.at(3).log().last_index(), b.at(1).log().last_index());
}

// A saved commit index below the snapshot (the snapshot was written, the
// hard state not yet) is the snapshot's: nothing before it is handed out.
TEST(raft_node, a_restart_from_a_snapshot_past_the_saved_commit) {
  options o;
  o.id = node_id(1);
  o.voters = {node_id(1)};
  restored r;
  r.hard.term = term_t(1);
  r.hard.commit = index_t(2);
  r.snap = snapshot{index_t(5), term_t(1), "voters=1;learners=", "state"};
  r.log = {entry{term_t(1), index_t(6), "six"}};
  node n(o, r);
  EXPECT_EQ(n.commit_index(), index_t(5));
  ready first = n.take_ready();
  EXPECT_TRUE(first.committed.empty());
}

// The storage writes a ready's hard state before its entries: a commit index
// in it that covered those entries would, after a crash between the two,
// be restored over the stale suffix they were to replace (the simulation's
// torn writes applied such an entry). It covers what is on disk already; the
// rest goes with the next ready. The entries are applied at once all the same.
TEST(raft_node, a_saved_commit_index_never_covers_the_entries_it_is_saved_with) {
  options o;
  o.id = node_id(3);
  o.voters = {node_id(1), node_id(2), node_id(3)};
  restored from;  // index 2 is a stale entry of term 1, never committed
  from.hard = hard_state{term_t(1), node_id(1), index_t(1)};
  from.log = {entry{term_t(1), index_t(1), ""}, entry{term_t(1), index_t(2), "stale"}};
  node n(o, from);
  // The leader of term 2 replaces it, and everything is committed already.
  message m;
  m.type = msg_type::append;
  m.from = node_id(2);
  m.to = node_id(3);
  m.term = term_t(2);
  m.index = index_t(1);
  m.log_term = term_t(1);
  m.entries = {entry{term_t(2), index_t(2), ""}, entry{term_t(2), index_t(3), "new"}};
  m.commit = index_t(3);
  n.step(m);
  ready r = n.take_ready();
  ASSERT_EQ(r.entries.size(), 2u);
  ASSERT_TRUE(r.hard);
  EXPECT_EQ(r.hard->commit, index_t(1));  // not over the stale index 2
  ASSERT_FALSE(r.committed.empty());  // applied once this ready is durable all the same
  EXPECT_EQ(r.committed.back().data, "new");
  // A crash after the hard state record, before the entries: the storage
  // restores the commit index clamped to its log, and nothing stale applies.
  restored torn{*r.hard, std::nullopt, from.log};
  torn.hard.commit = std::min(torn.hard.commit, index_t(2));
  node again(o, torn);
  for (const entry& e : again.take_ready().committed) EXPECT_NE(e.data, "stale");
  // Else the next ready saves the commit index.
  n.tick();
  ready next = n.take_ready();
  ASSERT_TRUE(next.hard);
  EXPECT_EQ(next.hard->commit, index_t(3));
}

// A sole voter wins its election within one step: its appends of the new
// term wait until the term is durable (nothing goes out at a term a crash
// could take back).
TEST(raft_node, a_sole_voter_sends_nothing_of_its_new_term_before_saving_it) {
  options o;
  o.id = node_id(1);
  o.voters = {node_id(1)};
  restored from;
  from.hard.term = term_t(3);
  from.hard.vote = node_id(1);
  from.hard.commit = index_t(2);
  configuration with_learner;
  with_learner.voters = {node_id(1)};
  with_learner.learners = {node_id(2)};
  from.log = {entry{term_t(3), index_t(1), ""},
              entry{term_t(3), index_t(2), with_learner.encode(), entry_kind::config}};
  node n(o, from);
  while (n.current_role() != role::leader) n.tick();
  ready r = n.take_ready();
  ASSERT_TRUE(r.hard);
  EXPECT_EQ(r.hard->term, term_t(4));
  for (const message& m : r.messages_now) EXPECT_NE(m.term, term_t(4)) << to_string(m.type);
  EXPECT_TRUE(std::any_of(r.messages.begin(), r.messages.end(),
                          [](const message& m) { return m.type == msg_type::append && m.to == node_id(2); }));
  // Later appends of the term go out at once again (§10.2.1).
  message ack;
  ack.type = msg_type::append_reply;
  ack.from = node_id(2);
  ack.to = node_id(1);
  ack.term = term_t(4);
  ack.granted = true;
  ack.match = n.log().last_index();
  n.step(ack);
  n.take_ready();
  ASSERT_TRUE(n.propose("x"));
  ready later = n.take_ready();
  EXPECT_TRUE(std::any_of(later.messages_now.begin(), later.messages_now.end(),
                          [](const message& m) { return m.type == msg_type::append; }));
}

// A snapshot whose last entry the follower's log holds brings it nothing but
// the commit index: it commits instead of installing. (An install replaces
// the stored log and writes the entries after the snapshot again: a crash in
// between lost entries it had acknowledged, and the leader's match stayed
// above its log for good, in the simulation.)
TEST(raft_node, a_snapshot_the_log_already_holds_is_a_commit_not_an_install) {
  options o;
  o.id = node_id(2);
  o.voters = {node_id(1), node_id(2), node_id(3)};
  restored from;
  from.hard.term = term_t(1);
  for (uint64_t i = 1; i <= 5; ++i) from.log.push_back(entry{term_t(1), index_t(i), "e" + std::to_string(i)});
  node n(o, from);
  message m;
  m.type = msg_type::snapshot;
  m.from = node_id(1);
  m.to = node_id(2);
  m.term = term_t(1);
  m.context = 1;
  m.index = index_t(3);
  m.log_term = term_t(1);
  m.chunk = "state";
  m.last = true;
  m.config = n.config().encode();
  n.step(m);
  ready r = n.take_ready();
  EXPECT_FALSE(r.snap);
  EXPECT_TRUE(r.entries.empty());  // nothing written again
  EXPECT_EQ(n.log().last_index(), index_t(5));
  EXPECT_EQ(n.commit_index(), index_t(3));
  ASSERT_EQ(r.committed.size(), 3u);
  EXPECT_EQ(r.committed.back().data, "e3");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].type, msg_type::snapshot_reply);
  EXPECT_TRUE(r.messages[0].granted);
  EXPECT_EQ(r.messages[0].match, index_t(3));
}

// The same for an installed snapshot: the hard state goes to disk before its
// install marker, so until the snapshot is durable the saved commit index
// stays where it was (a crash in between keeps the old log, stale suffix
// included, and the storage's clamp to it would commit that suffix).
TEST(raft_node, a_saved_commit_index_reaches_an_installed_snapshot_only_once_it_is_durable) {
  options o;
  o.id = node_id(2);
  o.voters = {node_id(1), node_id(2), node_id(3)};
  restored from;
  from.hard = hard_state{term_t(1), node_id(1), index_t(1)};
  from.log = {entry{term_t(1), index_t(1), ""}, entry{term_t(1), index_t(2), "stale"},
              entry{term_t(1), index_t(3), "stale"}};
  node n(o, from);
  message m;
  m.type = msg_type::snapshot;
  m.from = node_id(1);
  m.to = node_id(2);
  m.term = term_t(2);
  m.context = 1;
  m.index = index_t(3);
  m.log_term = term_t(2);  // not the log's entry 3
  m.chunk = "state";
  m.last = true;
  m.config = n.config().encode();
  n.step(m);
  ready r = n.take_ready();
  ASSERT_TRUE(r.snap);
  ASSERT_TRUE(r.hard);
  EXPECT_EQ(r.hard->term, term_t(2));
  EXPECT_EQ(r.hard->commit, index_t(1));
  EXPECT_EQ(n.commit_index(), index_t(3));
  n.tick();
  ready next = n.take_ready();
  ASSERT_TRUE(next.hard);
  EXPECT_EQ(next.hard->commit, index_t(3));
}
