#pragma once
// One xerv node's member of the Raft group (XERV_DISPATCH_BACKEND=raft, issue
// 13): the raft::node protocol state machine driven on a shard, with its log on
// disk (raft/storage.h), its peers over TCP (raft/transport.h), and the
// dispatch state machine (state_machine.h) it applies. It offers the dispatch
// interface (core/dispatch.h) of this node: a trace_queue whose consumers get
// the traces this node owns, and the pipeline_store of the whole cluster.
//
// Every node takes every call. A command (admit, finish, pipeline change) is
// proposed by the leader, or forwarded to it by a follower; it is durable once
// this node has applied it (it is committed: a majority has it on disk). Until
// then the node keeps it and sends it again whenever the leader changes, so an
// admission in flight during a failover is delayed, not lost; commands are
// idempotent in the state machine, so sending one twice is harmless. A command
// not applied within request_timeout fails with `unavailable` (it may still
// commit later: its trace then runs, so a client that retries must send an
// idempotency key).
//
// Ownership: a trace is owned by the node that admitted it (the load balancer
// in front chose that node already, and its shard holds the input). The leader
// watches its peers: a node not heard from for `lease` loses its unfinished
// traces to the live nodes, least loaded first, through a `reassign` command;
// they run again from their admission (attempt + 1), so nodes with outside
// effects are at-least-once.
//
// Everything runs on one shard (the control shard); all calls into the
// raft::node happen in one coroutine (drive), which carries out each ready
// before the next call, as raft/node.h requires.

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "backends/change_feed.h"
#include "backends/local_queue.h"
#include "backends/raft/shard_queue.h"
#include "backends/raft/state_machine.h"
#include "backends/raft/tickets.h"
#include "core/dispatch.h"
#include "core/wal.h"
#include "io/event.h"
#include "io/gate.h"
#include "raft/node.h"
#include "raft/storage.h"
#include "raft/transport.h"

namespace xerv::backends::raft {

using xerv::raft::node_id;
using xerv::raft::peer_address;

struct replica_options {
  uint64_t id = 1;
  // Every member of the first configuration but this node (empty: a
  // single-node cluster). Later membership lives in the log.
  std::vector<peer_address> peers;
  // Joining a running group (xerv cluster add): no configuration of its own;
  // it learns the group's from the leader.
  bool join = false;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0: any free port
  std::string dir;           // the node's log and snapshots
  core::wal_sync sync = core::wal_sync::always;
  uint64_t segment_bytes = 64ull << 20;
  unsigned shards = 1;                  // of this node: shard_queues are attached for 1..shards-1
  std::chrono::milliseconds tick{100};  // the heartbeat interval
  unsigned election_ticks = 10;         // election timeout: this many ticks, randomized up to twice that
  std::chrono::milliseconds lease{5000};
  std::chrono::milliseconds request_timeout{5000};
  uint64_t snapshot_entries = 10'000;   // applied entries between snapshots
  size_t pending_max = 100'000;         // commands not applied yet; beyond: unavailable
};

struct replica_status {
  xerv::raft::role role = xerv::raft::role::follower;
  uint64_t id = 0, leader = 0, term = 0, commit = 0, applied = 0;
  std::vector<uint64_t> voters, learners;
  // Applied what the cluster had committed when this node started (what a
  // leader's append said): only then does it take admissions and deliver.
  bool caught_up = false;
  bool removed = false;  // no longer a member: takes no admissions
};

enum class member_change : uint8_t { add = 1, remove, transfer };
struct change_outcome {
  int status = 200;  // as HTTP: 200, 400 (bad request), 404 (no such member), 409 (no change), 503 (no leader)
  std::string message;
};

class replica final : state_machine::listener {
 public:
  using start_result = std::variant<std::unique_ptr<replica>, std::string>;
  // Opens the log (replaying it into the state machine), listens, and starts
  // driving the node. On the calling shard, which it then lives on.
  static io::task<start_result> start(replica_options o);
  ~replica() override;
  io::task<void> stop();

  core::trace_queue& queue();
  core::pipeline_store& store();

  replica_status status() const;
  // A trace as the group knows it (unfinished with its owner, or among the
  // recently finished), whichever node ran it.
  std::optional<core::trace_whereabouts> locate(const core::trace_id& id) const;
  uint16_t port() const;
  const state_machine& state() const { return _sm; }
  // Membership (dissertation §4.2: a new node is a learner until it has
  // caught up, then the leader promotes it) and leadership transfer (§3.10),
  // on any node: a follower hands it to the leader. `host`/`port`: add only.
  io::task<change_outcome> change_member(member_change what, uint64_t id, std::string host = {}, uint16_t port = 0);
  // Where the members are (the first configuration's and any added later);
  // a member without an address here gets nothing until it has one.
  void set_peers(std::vector<peer_address> peers);

  // The queues of this node's shards (shard_queue; [0] unused), once they
  // exist: traces for shard s are held until then, then delivered there.
  void attach_shards(std::vector<shard_queue*> queues);
  // Runs here for shard_queue: each command's outcome once applied (in order).
  io::task<std::vector<std::error_code>> submit_from(unsigned shard, std::vector<shard_command> commands);

 private:
  class queue_impl;
  class store_impl;
  struct pending : ticket {
    std::string command;  // what to send again until it is applied
    std::chrono::steady_clock::time_point since;
    std::optional<core::pipeline_change> change;
  };
  // Settles a command (see ticket_table: an acknowledgement nobody awaits
  // must not hold memory, nor count against pending_max, for a minute).
  void settle(ticket_table<pending>::iterator it, std::error_code e);

  explicit replica(replica_options o);
  request_ref next_ref() { return {_opts.id, ++_next_request}; }
  // Registers a command (encoded with `ref`) and queues it for the leader.
  io::result<uint64_t> submit(request_ref ref, std::string command);
  io::task<io::result<core::pipeline_change>> wait_change(uint64_t request);
  void kick() { _kick.notify(); }
  // Runs f on the node between two readies (raft/node.h: no call while one is
  // carried out), and completes once it ran.
  io::task<void> with_node(std::function<void(xerv::raft::node&)> f);
  io::task<change_outcome> change_here(member_change what, uint64_t id, std::string host, uint16_t port);
  io::task<void> answer_admin(uint64_t from, std::string payload);
  void on_admin_reply(std::string_view payload);

  io::task<void> drive();
  io::task<void> ticker();
  io::task<io::result<void>> carry_out(xerv::raft::ready& rd);
  void apply(const xerv::raft::entry& e);
  void restore_local(bool restarting);
  // A change to the traces deliverable on one of this node's shards.
  void deliver(shard_delivery d);
  io::result<uint64_t> submit_admit(uint32_t shard, std::string_view record);
  io::result<uint64_t> submit_finish(const core::trace_id& id, std::string_view record);
  void check_caught_up();
  void flush_commands();
  void resend_pending(std::chrono::milliseconds older_than);
  void expire_pending();
  void watch_leases();
  void promote_learners();
  void update_peers();
  void maybe_snapshot();
  io::task<void> save_snapshot(xerv::raft::snapshot s);

  // state_machine::listener
  void on_assigned(const core::trace_id& id, const trace_state& t) override;
  void on_unassigned(const core::trace_id& id, uint64_t from) override;
  void on_finished(const core::trace_id& id, uint64_t owner, uint32_t shard, request_ref by) override;
  void on_pipeline(const core::pipeline_change& c) override;
  void on_address(uint64_t id, const node_address& a) override;
  void on_result(request_ref r, std::error_code e, const core::pipeline_change* change) override;

  replica_options _opts;
  std::unique_ptr<xerv::raft::storage> _storage;
  std::unique_ptr<xerv::raft::transport> _transport;
  std::unique_ptr<xerv::raft::node> _node;
  state_machine _sm;
  local_queue _local;
  std::unique_ptr<queue_impl> _queue;
  std::unique_ptr<store_impl> _store;
  change_feed _feed;
  std::vector<shard_queue*> _shards;                 // [0]: this shard (_local)
  std::vector<std::vector<shard_delivery>> _outbox;  // per shard, sent at the end of the turn
  struct outbox_hook : io::turn_hook {
    replica* r = nullptr;
  } _ship;

  uint64_t _next_request = 0;
  ticket_table<pending> _pending;
  std::vector<std::string> _outgoing;         // commands for the leader, in entries of about 1 MiB
  std::vector<std::string> _forwarded;        // batches followers sent us, to propose
  std::vector<xerv::raft::message> _inbox;    // messages to step
  std::vector<std::function<void()>> _node_calls;  // with_node()'s, run by drive()
  std::map<uint64_t, peer_address> _book;     // where every known node listens (options, then the log)
  struct admin_wait {
    bool done = false;
    change_outcome outcome;
    io::event resolved;
  };
  std::map<uint64_t, admin_wait> _admin_waits;  // changes handed to the leader
  bool _removed = false;
  unsigned _ticks = 0;                        // ticks to feed
  uint64_t _last_leader = 0;
  uint64_t _applied = 0;
  uint64_t _leader_commit = 0;                // the highest commit index a leader told us
  bool _caught_up = false;
  // Traces this process acknowledged whose finish is not applied yet: a
  // finish applied for any other trace of ours ends it here (it was another
  // node's, or an earlier process's).
  std::set<state_machine::key> _acking;
  uint64_t _snapshot_index = 0;
  bool _snapshotting = false;  // a save_snapshot() in flight
  std::map<uint64_t, std::chrono::steady_clock::time_point> _heard;  // the leader's view of its peers
  std::map<uint64_t, std::chrono::steady_clock::time_point> _reassigned;  // when we last moved a node's traces
  std::chrono::steady_clock::time_point _last_resend;
  std::string _failure;  // the log failed: this node stops
  io::event _kick;
  io::event _caught_up_event;
  io::cancel_source _stop;
  io::cancel_source _never;  // waits that only a resolution ends (stop() resolves every one)
  io::gate _gate;
};

}  // namespace xerv::backends::raft
