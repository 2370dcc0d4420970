#pragma once
// One Raft node as a deterministic state machine (no I/O, no clock, no
// threads): the caller feeds it ticks and messages and carries out what
// take_ready() hands back. Section numbers are Ongaro's dissertation
// ("Consensus: Bridging Theory and Practice", 2014).
//
// The caller's contract for each ready, in this order: send `messages_now`
// (a leader's appends, snapshot chunks, pre-votes: they promise nothing about
// this node's disk, so the leader writes its log while the followers write
// theirs, §10.2.1; none is of a term this ready saves), make `snap`, `hard`
// and `entries` durable (entries from entries.front().index replace whatever
// the stored log has there), then send `messages`, then apply `committed`,
// all before the next call into the node. A node therefore never acknowledges (votes, replies) what is not
// durable; and a leader counts its own log as matching only up to what it has
// handed out for persisting.
//
// Rounds: elections with pre-vote (§9.6: a node partitioned away cannot bump
// everyone's term when it comes back) and leader stickiness (§4.2.3: a vote
// request is ignored while a leader is heard from); check-quorum (§6.2: a
// leader that heard from no majority within an election timeout steps down);
// replication per follower (raft/replication.h) with probing, pipelining and
// batching; commit of entries of the leader's own term only (§3.6.2).

#include <functional>
#include <optional>
#include <random>
#include <vector>

#include "raft/election.h"
#include "raft/log.h"
#include "raft/membership.h"
#include "raft/replication.h"

namespace xerv::raft {

enum class role : uint8_t { follower, pre_candidate, candidate, leader };
const char* to_string(role r);

struct options {
  node_id id;
  std::vector<node_id> voters;  // the first configuration (until a config entry in the log says otherwise)
  unsigned election_ticks = 10;  // the timeout is randomized in [this, 2 × this)
  unsigned heartbeat_ticks = 1;
  size_t inflight_max = 64;      // pipelined appends per follower
  size_t batch_entries = 256;    // entries per append
  size_t batch_bytes = 1 << 20;  // data bytes per append (at least one entry)
  size_t snapshot_chunk_bytes = 1 << 20;  // per InstallSnapshot message
  bool pre_vote = true;
  bool check_quorum = true;
  uint64_t seed = 0;             // the election timeouts' randomness
  // Test-only: commit what any one follower has (no quorum). The simulation
  // must catch it (tests/sim).
  bool unsafe_commit_without_quorum = false;
  // Test-only: answer reads without confirming leadership with a quorum.
  bool unsafe_read_without_quorum = false;
};

// What the node has restored from its storage.
struct restored {
  hard_state hard;
  std::optional<snapshot> snap;  // the state machine was restored from it
  std::vector<entry> log;        // the entries after it
};

// A linearizable read (§6.4): serve it once the state machine has applied `index`.
struct read_state {
  uint64_t id = 0;
  index_t index;
};

struct ready {
  // Installed from the leader: persist it in place of the whole stored log
  // (`entries` then holds what follows it) and restore the state machine
  // from it, before the rest of this ready.
  std::optional<snapshot> snap;
  // Changed: persist it. Its commit index covers only what earlier readies
  // made durable, so it may be written before `snap` and `entries`.
  std::optional<hard_state> hard;
  std::vector<entry> entries;      // persist (replacing the stored log from the first one's index)
  std::vector<message> messages_now;  // send at once
  std::vector<message> messages;      // send once the rest is durable
  std::vector<entry> committed;    // then apply, in order
  std::vector<read_state> reads;   // confirmed reads
  std::vector<uint64_t> reads_lost;  // reads this node can no longer confirm (it stopped leading): retry elsewhere
  bool empty() const {
    return !snap && !hard && entries.empty() && messages_now.empty() && messages.empty() && committed.empty() &&
           reads.empty() && reads_lost.empty();
  }
};

class node {
 public:
  explicit node(options opts, restored from = {});

  void tick();
  void step(const message& m);
  // Leader only: appends `data` and returns its index (nullopt: not the
  // leader, or handing over leadership).
  std::optional<index_t> propose(std::string data);
  // Leader only (§3.10): brings `to` up to date, then has it campaign; given up
  // after an election timeout. False: not the leader, or `to` is no peer.
  bool transfer_leadership(node_id to);
  // Leader only (§6.4): confirms with a quorum that it still leads, then
  // hands `id` back in ready::reads with the commit index of now. False: not
  // the leader, or nothing of its term committed yet (retry shortly).
  bool read_index(uint64_t id);

  // Leader only, one at a time (§4.1): a new server joins as a learner, is
  // promoted to voter once it has caught up (§4.2.1: its log holds what is
  // committed), or a server leaves. A leader that removes itself steps down
  // once the change is committed (§4.2.2).
  enum class change { add_learner, promote, remove };
  enum class change_result { done, not_leader, busy, unknown_node, not_caught_up, no_change };
  change_result change_membership(change c, node_id n);
  const configuration& config() const { return _config; }
  ready take_ready();
  // The caller took a snapshot of its state machine as of `upto` (applied):
  // the log up to there goes (§5.1); followers too far behind get `data`.
  void compact(index_t upto, std::string data);

  node_id id() const { return _opts.id; }
  role current_role() const { return _role; }
  term_t term() const { return _hard.term; }
  node_id leader() const { return _leader; }
  index_t commit_index() const { return _hard.commit; }
  const raft_log& log() const { return _log; }
  const std::optional<snapshot>& last_snapshot() const { return _snapshot; }

 private:
  size_t quorum() const { return _config.quorum(); }
  // The latest config entry in the log (or the first configuration).
  void reload_config();
  void apply_config(configuration c, index_t at);
  progress* peer(node_id n);
  bool may_campaign() const;
  void become_follower(term_t term, node_id leader);
  void campaign(bool pre, bool transfer = false);
  void confirm_reads(node_id from, uint64_t round);
  void drop_reads();
  void become_leader();
  void reset_election_timer();
  void send(message m);
  void send_append(node_id to, bool heartbeat);
  void broadcast_append(bool heartbeat);
  void maybe_commit();
  void commit_to(index_t i);
  void on_vote_request(const message& m);
  void on_vote_reply(const message& m);
  // An append or snapshot of the current term: its sender leads. The reply's start.
  message heard_leader(const message& m, msg_type reply);
  void on_append(const message& m);
  void on_append_reply(const message& m);
  void send_snapshot(node_id to, progress& pr);
  void on_snapshot(const message& m);
  void on_snapshot_reply(const message& m);
  // The configuration of the snapshot, else the options'.
  configuration base_config() const;
  void unstable_from(index_t i);

  options _opts;
  configuration _config;
  index_t _config_index;  // the entry it comes from (0: the options)
  hard_state _hard;
  raft_log _log;
  role _role = role::follower;
  node_id _leader;
  unsigned _election_elapsed = 0, _heartbeat_elapsed = 0, _timeout = 0;
  std::mt19937_64 _rng;
  std::optional<vote_round> _votes;
  std::vector<std::pair<node_id, progress>> _peers;  // leader: every other voter
  index_t _unstable;   // the first log index not handed out for persisting yet
  index_t _persisted;  // the last index handed out (the leader's own match)
  index_t _applied;    // the last index handed out for applying
  hard_state _saved;   // as last handed out
  std::vector<message> _outbox_now, _outbox;
  std::optional<snapshot> _snapshot;        // the latest: what the log before it became
  std::optional<snapshot> _incoming;        // being received, chunk by chunk
  std::optional<snapshot> _snapshot_ready;  // installed, to hand out
  node_id _transfer_to;  // leader: handing over to it
  unsigned _transfer_elapsed = 0;
  struct pending_read {
    uint64_t id = 0;
    index_t index;
    uint64_t round = 0;
    std::vector<node_id> acks;
  };
  std::vector<pending_read> _reads;  // oldest first
  uint64_t _read_round = 0;
  std::vector<read_state> _reads_ready;
  std::vector<uint64_t> _reads_lost;
};

}  // namespace xerv::raft
