#include "backends/raft/replica.h"

#include <algorithm>
#include <deque>
#include <random>

#include "core/metrics.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/runtime.h"

namespace xerv::backends::raft {

namespace rf = xerv::raft;
using clock = std::chrono::steady_clock;

namespace {

// Application frames on the Raft transport.
constexpr uint32_t frame_forward = 1;      // a follower's batch of commands for the leader
constexpr uint32_t frame_admin = 2;        // a membership change or transfer for the leader
constexpr uint32_t frame_admin_reply = 3;  // its outcome
constexpr uint32_t frame_removed = 4;      // the leader to a node it no longer counts as a member

constexpr size_t chunk_bytes = 1u << 20;    // commands per proposed entry (about)
constexpr size_t command_max = 32u << 20;   // one admission or final record
// A command failed for lack of a quorum stays answerable this long.
constexpr auto failed_kept = std::chrono::seconds(60);

io::task<io::result<void>> ready_now() { co_return io::result<void>{}; }

// Registered whatever the backend (this file is in every build), so dashboards
// and alerts need no special case: 0 without Raft.
core::gauge g_leader{"xerv_raft_leader", "1 when this node is the Raft leader; 0 otherwise (always 0 without the Raft backend)"};
core::gauge g_term{"xerv_raft_term", "The Raft term this node is in"};
core::gauge g_commit{"xerv_raft_commit_index", "The last Raft log index this node knows committed"};
core::gauge g_applied{"xerv_raft_applied_index", "The last Raft log index this node applied"};
core::counter g_elections{"xerv_raft_elections_total", "Leaders this node saw elected (changes of leader)"};
core::counter g_moved{"xerv_raft_reassigned_traces_total",
                      "Unfinished traces this leader moved off nodes not heard from within the lease"};
core::histogram g_append{"xerv_raft_append_seconds", "Time to make one batch of Raft log writes durable on this node",
                         core::latency_buckets()};

io::task<void> ship(shard_queue* q, unsigned shard, std::vector<shard_delivery> items) {
  auto sending = io::submit_to(shard, [q, d = std::move(items)]() mutable { q->receive(std::move(d)); });
  co_await std::move(sending);
}

}  // namespace

// ---- the dispatch interface of this node ----

class replica::queue_impl final : public core::trace_queue {
 public:
  explicit queue_impl(replica& r) : _r(r) {}
  io::result<core::dispatch_ticket> admit(const core::admission& a) override {
    core::encode(_record, a);
    return _r.submit_admit(0, _record);
  }
  io::task<io::result<void>> durable(core::dispatch_ticket t) override {
    if (t == 0) return ready_now();
    return _r._pending.wait(t);
  }
  std::unique_ptr<core::trace_consumer> consume(std::string name) override { return _r._local.consume(std::move(name)); }
  core::queue_depth depth() const override { return _r._local.depth(); }
  core::queue_depth depth(std::string_view pipeline) const override { return _r._local.depth(pipeline); }
  io::task<std::optional<core::trace_whereabouts>> locate(const core::trace_id& id) override { co_return _r.locate(id); }

 private:
  replica& _r;
  std::string _record;  // reused: one encoding buffer per queue
};


class replica::store_impl final : public core::pipeline_store {
 public:
  explicit store_impl(replica& r) : _r(r) {}
  // Once the node has caught up with the cluster (it may wait for a quorum).
  io::task<io::result<std::vector<core::pipeline_change>>> load() override {
    while (!_r._caught_up && !_r._stop.cancelled()) {
      auto caught_up = _r._caught_up_event.wait(_r._stop);
      co_await caught_up;
    }
    if (!_r._caught_up) co_return core::make_error_code(core::dispatch_errc::unavailable);
    std::vector<core::pipeline_change> out;
    for (const auto& [name, p] : _r._sm.pipelines()) {
      core::pipeline_change c;
      c.what = core::pipeline_change::kind::deploy;
      c.name = name;
      c.source = p.source;
      c.state = p.state;
      c.disabled = p.disabled;
      c.persist = p.persist;
      c.revision = p.revision;
      c.seq = _r._sm.seq();
      out.push_back(std::move(c));
    }
    co_return out;
  }
  io::task<io::result<core::pipeline_change>> publish(core::pipeline_change c, uint64_t expected_revision) override {
    request_ref ref = _r.next_ref();
    std::string cmd;
    add_pipeline(cmd, ref, c, expected_revision);
    auto t = _r.submit(ref, std::move(cmd));
    if (!t) co_return t.error();
    _r._pending.find(*t)->second.kept = true;
    auto waiting = _r.wait_change(*t);
    co_return co_await std::move(waiting);
  }
  std::unique_ptr<core::pipeline_watch> watch() override { return _r._feed.watch(); }

 private:
  replica& _r;
};

// ---- start and stop ----

replica::replica(replica_options o)
    : _opts(std::move(o)), _local([this](const local_queue::entry& e, std::string_view rec) {
        return submit_finish(e.id, rec);
      }) {
  _ship.r = this;
  _ship.run = [](io::turn_hook* h) {
    replica& r = *static_cast<outbox_hook*>(h)->r;
    for (unsigned s = 1; s < r._outbox.size() && s < r._shards.size(); ++s) {
      if (r._outbox[s].empty()) continue;
      std::vector<shard_delivery> items = std::move(r._outbox[s]);
      r._outbox[s].clear();
      (void)io::spawn(r._gate, ship(r._shards[s], s, std::move(items)));
    }
  };
  _outbox.resize(std::max(1u, _opts.shards));
  _queue = std::make_unique<queue_impl>(*this);
  _store = std::make_unique<store_impl>(*this);
}

replica::~replica() {
  if (_ship.queued) io::this_reactor().cancel_turn_end(&_ship);
}

void replica::attach_shards(std::vector<shard_queue*> queues) {
  ASSERT(queues.empty() || queues.size() == _opts.shards, "%zu shard queues for %u shards", queues.size(), _opts.shards);
  _shards = std::move(queues);
  if (!_shards.empty()) io::this_reactor().at_turn_end(&_ship);
}

io::task<replica::start_result> replica::start(replica_options o) {
  std::unique_ptr<replica> r(new replica(std::move(o)));
  const replica_options& opts = r->_opts;
  auto opening = rf::storage::open(rf::storage_options{opts.dir, opts.sync, opts.segment_bytes, nullptr});
  auto opened = co_await std::move(opening);
  if (auto* e = std::get_if<std::string>(&opened)) co_return "raft log: " + *e;
  r->_storage = std::move(std::get<std::unique_ptr<rf::storage>>(opened));
  rf::restored from = r->_storage->take_restored();
  if (from.snap) {
    if (!r->_sm.restore(from.snap->data)) {
      auto closing = r->_storage->close();
      co_await std::move(closing);
      co_return "raft snapshot at index " + std::to_string(from.snap->index.value) + " does not decode";
    }
    r->_applied = r->_snapshot_index = from.snap->index.value;
  }

  rf::options no;
  no.id = node_id(opts.id);
  if (!opts.join) {
    no.voters.push_back(no.id);
    for (const auto& p : opts.peers) no.voters.push_back(p.id);
    std::sort(no.voters.begin(), no.voters.end());
  }
  for (const auto& p : opts.peers) r->_book[p.id.value] = p;
  for (const auto& [id, a] : r->_sm.addresses()) r->_book[id] = peer_address{node_id(id), a.host, a.port};
  no.election_ticks = opts.election_ticks;
  no.heartbeat_ticks = 1;
  no.seed = std::random_device{}();
  r->_node = std::make_unique<rf::node>(std::move(no), std::move(from));

  replica* self = r.get();
  rf::transport::handlers h;
  h.on_message = [self](rf::message&& m) {
    self->_heard[m.from.value] = clock::now();
    // A removed node may never get the entry that removed it (the leader
    // stopped replicating to it at once, §4.2.2): tell it when it calls.
    if (self->_node->current_role() == rf::role::leader && !self->_node->config().is_member(m.from) &&
        self->_caught_up)
      self->_transport->send_app(m.from, frame_removed, {});
    if (m.type == rf::msg_type::append) self->_leader_commit = std::max(self->_leader_commit, m.commit.value);
    self->_inbox.push_back(std::move(m));
    self->kick();
  };
  h.on_app = [self](node_id sender, uint32_t kind, std::string&& payload) {
    self->_heard[sender.value] = clock::now();
    if (kind == frame_forward) {
      self->_forwarded.push_back(std::move(payload));
      self->kick();
    } else if (kind == frame_admin) {
      (void)io::spawn(self->_gate, self->answer_admin(sender.value, std::move(payload)));
    } else if (kind == frame_admin_reply) {
      self->on_admin_reply(payload);
    } else if (kind == frame_removed && self->_node->config().is_member(sender) && !self->_removed) {
      self->_removed = true;
      XLOG(warn, "raft node %llu was removed from the group (node %llu says): it takes no more admissions",
           static_cast<unsigned long long>(self->_opts.id), static_cast<unsigned long long>(sender.value));
    }
  };
  rf::transport_options to;
  to.self = node_id(opts.id);
  to.listen_host = opts.listen_host;
  to.listen_port = opts.listen_port;
  auto t = rf::transport::start(to, std::move(h));
  if (!t) {
    auto closing = r->_storage->close();
    co_await std::move(closing);
    co_return "raft transport: cannot listen on " + opts.listen_host + ":" + std::to_string(opts.listen_port) + ": " +
        t.error().message();
  }
  r->_transport = std::move(*t);
  r->update_peers();
  r->_last_resend = clock::now();
  (void)io::spawn(r->_gate, r->drive());
  (void)io::spawn(r->_gate, r->ticker());
  co_return r;
}

io::task<void> replica::stop() {
  _stop.cancel();
  kick();
  auto closing = _gate.close();
  co_await std::move(closing);
  auto stopping = _transport->stop();
  co_await std::move(stopping);
  auto closing_log = _storage->close();
  co_await std::move(closing_log);
  // Calls that will never run on the node: run them now (its state no longer
  // matters), so their callers go on.
  for (auto& call : std::exchange(_node_calls, {})) call();
  for (auto& [req, aw] : _admin_waits)
    if (!aw.done) {
      aw.done = true;
      aw.outcome = change_outcome{503, "stopping"};
      aw.resolved.notify();
    }
  for (auto it = _pending.all().begin(); it != _pending.end();) {
    auto here = it++;
    if (!here->second.done) settle(here, core::make_error_code(core::dispatch_errc::unavailable));
  }
  // The woken waiters read their entries before this returns.
  co_await io::yield{};
}

void replica::set_peers(std::vector<peer_address> peers) {
  for (auto& p : peers) _book[p.id.value] = p;
  update_peers();
}

// Every node we know of, member or not: a node joining must answer the
// leader before it is in any configuration it knows.
void replica::update_peers() {
  std::vector<peer_address> now;
  for (const auto& [id, p] : _book)
    if (p.port != 0 && id != _opts.id) now.push_back(p);
  _transport->set_peers(std::move(now));
}

core::trace_queue& replica::queue() { return *_queue; }
core::pipeline_store& replica::store() { return *_store; }
uint16_t replica::port() const { return _transport->port(); }

std::optional<core::trace_whereabouts> replica::locate(const core::trace_id& id) const {
  core::trace_whereabouts w;
  if (const finished_trace* f = _sm.finished(id)) {
    w.pipeline = f->pipeline;
    w.owner = f->owner;
    w.attempt = f->attempt;
    w.finished = true;
    w.status = f->status;
    w.created_ms = f->created_ms;
    w.finished_ms = f->finished_ms;
    return w;
  }
  auto it = _sm.unfinished().find(state_machine::key_of(id));
  if (it == _sm.unfinished().end()) return std::nullopt;
  const trace_state& t = it->second;
  auto rec = core::decode_admission(t.record);
  w.pipeline = t.pipeline;
  w.owner = t.owner;
  w.attempt = t.attempt;
  w.created_ms = rec ? rec->created_ms : 0;
  return w;
}

replica_status replica::status() const {
  replica_status s;
  s.role = _node->current_role();
  s.id = _opts.id;
  s.leader = _node->leader().value;
  s.term = _node->term().value;
  s.commit = _node->commit_index().value;
  s.applied = _applied;
  s.caught_up = _caught_up;
  s.removed = _removed;
  for (auto n : _node->config().voters) s.voters.push_back(n.value);
  for (auto n : _node->config().learners) s.learners.push_back(n.value);
  return s;
}

// ---- membership and leadership transfer ----

io::task<void> replica::with_node(std::function<void(rf::node&)> f) {
  bool done = false;
  io::event ran;
  _node_calls.push_back([&] {
    f(*_node);
    done = true;
    ran.notify();
  });
  kick();
  while (!done) {
    auto waiting = ran.wait(_never);
    co_await waiting;
  }
}

io::task<change_outcome> replica::change_member(member_change what, uint64_t id, std::string host, uint16_t port) {
  if (_node->current_role() == rf::role::leader) {
    auto changing = change_here(what, id, std::move(host), port);
    co_return co_await std::move(changing);
  }
  uint64_t leader = _node->leader().value;
  if (leader == 0) co_return change_outcome{503, "no Raft leader (a majority of the group is not reachable)"};
  uint64_t req = ++_next_request;
  std::string payload;
  core::record_writer w{payload};
  w.u64(req);
  w.u8(uint8_t(what));
  w.u64(id);
  w.str(host);
  w.u64(port);
  _transport->send_app(node_id(leader), frame_admin, payload);
  admin_wait& aw = _admin_waits[req];
  io::cancel_source limit;
  io::deadline timeout(_opts.request_timeout, limit);
  while (!aw.done && !limit.cancelled()) {
    auto waiting = aw.resolved.wait(limit);
    co_await waiting;
  }
  change_outcome out = aw.done ? aw.outcome : change_outcome{503, "the leader did not answer in time"};
  _admin_waits.erase(req);
  co_return out;
}

io::task<change_outcome> replica::change_here(member_change what, uint64_t id, std::string host, uint16_t port) {
  using change = rf::node::change;
  using result = rf::node::change_result;
  if (what == member_change::transfer) {
    bool ok = false;
    auto transferring = with_node([&](rf::node& n) { ok = n.transfer_leadership(node_id(id)); });
    co_await std::move(transferring);
    if (!ok) co_return change_outcome{404, "node " + std::to_string(id) + " is not a member, or this node no longer leads"};
    co_return change_outcome{200, "leadership is moving to node " + std::to_string(id)};
  }
  if (what == member_change::add) {
    if (host.empty() || port == 0) co_return change_outcome{400, "a new member needs its ADDR (HOST:PORT)"};
    if (_node->config().is_member(node_id(id))) co_return change_outcome{409, "node " + std::to_string(id) + " is a member already"};
    // Everyone learns where it listens first, so the leader and later leaders
    // reach it as soon as it is a learner.
    request_ref ref = next_ref();
    std::string cmd;
    add_address(cmd, ref, id, host, port);
    auto t = submit(ref, std::move(cmd));
    if (!t) co_return change_outcome{503, "cannot record the address: " + t.error().message()};
    auto recording = _pending.wait(*t);
    auto recorded = co_await std::move(recording);
    if (!recorded) co_return change_outcome{503, "cannot record the address: " + recorded.error().message()};
  }
  // One change at a time (§4.1): retried while the previous one commits.
  auto end = clock::now() + _opts.request_timeout;
  while (true) {
    result r = result::not_leader;
    auto changing = with_node([&](rf::node& n) {
      r = n.change_membership(what == member_change::add ? change::add_learner : change::remove, node_id(id));
    });
    co_await std::move(changing);
    switch (r) {
      case result::done:
        co_return what == member_change::add
            ? change_outcome{200, "node " + std::to_string(id) + " joins as a learner; it becomes a voter once it has caught up"}
            : change_outcome{200, "node " + std::to_string(id) + " is leaving the group"};
      case result::no_change:
        co_return change_outcome{409, what == member_change::add ? "node " + std::to_string(id) + " is a member already"
                                                                 : "the last voter cannot leave"};
      case result::unknown_node: co_return change_outcome{404, "node " + std::to_string(id) + " is not a member"};
      case result::not_leader: co_return change_outcome{503, "this node no longer leads; try again"};
      case result::busy:
      case result::not_caught_up: break;
    }
    if (clock::now() > end) co_return change_outcome{503, "another membership change is still committing; try again"};
    auto sleeping = io::sleep_for(_opts.tick, &_stop);
    co_await sleeping;
    if (_stop.cancelled()) co_return change_outcome{503, "stopping"};
  }
}

io::task<void> replica::answer_admin(uint64_t from, std::string payload) {
  core::record_reader in{payload};
  uint64_t req = in.u64();
  uint8_t what = in.u8();
  uint64_t id = in.u64();
  std::string host = in.str();
  uint64_t port = in.u64();
  change_outcome out{400, "a malformed membership request"};
  if (in.done() && what >= uint8_t(member_change::add) && what <= uint8_t(member_change::transfer) && port <= 65535) {
    if (_node->current_role() != rf::role::leader) {
      out = change_outcome{503, "the node asked no longer leads; try again"};
    } else {
      auto changing = change_here(member_change(what), id, std::move(host), uint16_t(port));
      out = co_await std::move(changing);
    }
  }
  std::string reply;
  core::record_writer w{reply};
  w.u64(req);
  w.u64(uint64_t(out.status));
  w.str(out.message);
  _transport->send_app(node_id(from), frame_admin_reply, reply);
}

void replica::on_admin_reply(std::string_view payload) {
  core::record_reader in{payload};
  uint64_t req = in.u64();
  int status = int(in.u64());
  std::string message = in.str();
  auto it = _admin_waits.find(req);
  if (!in.done() || it == _admin_waits.end()) return;
  it->second.done = true;
  it->second.outcome = change_outcome{status, std::move(message)};
  it->second.resolved.notify();
}

// ---- commands ----

io::result<uint64_t> replica::submit(request_ref ref, std::string command) {
  if (!_failure.empty() || _stop.cancelled() || _pending.size() >= _opts.pending_max)
    return core::make_error_code(core::dispatch_errc::unavailable);
  if (_outgoing.empty() || _outgoing.back().size() + command.size() > chunk_bytes) _outgoing.emplace_back();
  _outgoing.back() += command;
  auto& p = _pending.open(ref.id);
  p.command = std::move(command);
  p.since = clock::now();
  kick();
  return ref.id;
}

io::result<uint64_t> replica::submit_admit(uint32_t shard, std::string_view record) {
  // A node still catching up does not know what it owns yet; a removed one
  // owns nothing new.
  if (!_caught_up || _removed) return core::make_error_code(core::dispatch_errc::unavailable);
  if (record.size() > command_max) return core::make_error_code(core::dispatch_errc::too_large);
  request_ref ref = next_ref();
  std::string cmd;
  add_admit(cmd, ref, _opts.id, shard, record);
  return submit(ref, std::move(cmd));
}

io::result<uint64_t> replica::submit_finish(const core::trace_id& id, std::string_view record) {
  if (record.size() > command_max) return core::make_error_code(core::dispatch_errc::too_large);
  request_ref ref = next_ref();
  std::string cmd;
  add_finish(cmd, ref, record);
  auto t = submit(ref, std::move(cmd));
  if (t) _acking.insert(state_machine::key_of(id));
  return t;
}

io::task<std::vector<std::error_code>> replica::submit_from(unsigned shard, std::vector<shard_command> commands) {
  std::vector<io::result<uint64_t>> tickets;
  tickets.reserve(commands.size());
  for (const auto& c : commands)
    tickets.push_back(c.finish ? submit_finish(c.id, c.record) : submit_admit(shard, c.record));
  std::vector<std::error_code> out;
  out.reserve(commands.size());
  for (auto& t : tickets) {
    if (!t) {
      out.push_back(t.error());
      continue;
    }
    auto waiting = _pending.wait(*t);
    auto r = co_await std::move(waiting);
    out.push_back(r ? std::error_code{} : r.error());
  }
  co_return out;
}

// A trace runs on the shard its id names (where it was admitted, so GET
// /traces/{id} finds it), modulo this node's shards for one moved here.
void replica::deliver(shard_delivery d) {
  unsigned s = d.id.shard() % _opts.shards;
  if (s != 0) {
    _outbox[s].push_back(std::move(d));
    // Held until the app has attached the shards' queues.
    if (!_shards.empty()) io::this_reactor().at_turn_end(&_ship);
    return;
  }
  if (d.what == shard_delivery::kind::remove) {
    _local.remove(d.id);
    return;
  }
  if (d.what == shard_delivery::kind::push_if_absent && _local.contains(d.id)) return;
  _local.push(local_queue::entry{d.id, &_local.slot(d.pipeline), std::move(d.record), d.attempt, 0, {}});
}

io::task<io::result<core::pipeline_change>> replica::wait_change(uint64_t request) {
  auto it = _pending.find(request);
  ASSERT(it != _pending.end(), "pipeline change %llu waited for twice", static_cast<unsigned long long>(request));
  auto answered = _pending.until_done(it->second);
  co_await std::move(answered);
  std::error_code e = it->second.error;
  std::optional<core::pipeline_change> c = std::move(it->second.change);
  _pending.erase(it);
  if (e) co_return e;
  if (!c) co_return core::make_error_code(core::dispatch_errc::unavailable);
  co_return std::move(*c);
}

void replica::flush_commands() {
  bool leading = _node->current_role() == rf::role::leader;
  uint64_t leader = _node->leader().value;
  if (leading) {
    for (auto& batch : _forwarded) (void)_node->propose(std::move(batch));
    // Refused while handing over leadership: they stay pending and go to the
    // next leader.
    for (auto& batch : _outgoing) (void)_node->propose(std::move(batch));
  } else if (leader != 0) {
    for (auto& batch : _outgoing) _transport->send_app(node_id(leader), frame_forward, batch);
  }
  // Not leading: what followers forwarded is theirs to send again.
  _forwarded.clear();
  _outgoing.clear();
}

void replica::resend_pending(std::chrono::milliseconds older_than) {
  // Everything pending goes again, or only what has waited: then the
  // commands of this turn not flushed yet must stay (clearing them lost them
  // until the next resend, a second later: the benchmark's p99).
  if (older_than.count() == 0) _outgoing.clear();
  auto now = clock::now();
  for (auto& [id, p] : _pending.all()) {
    if (p.done || now - p.since < older_than) continue;
    if (_outgoing.empty() || _outgoing.back().size() + p.command.size() > chunk_bytes) _outgoing.emplace_back();
    _outgoing.back() += p.command;
  }
  _last_resend = clock::now();
}

void replica::expire_pending() {
  auto now = clock::now();
  for (auto it = _pending.all().begin(); it != _pending.end();) {
    auto here = it++;
    pending& p = here->second;
    if (!p.done && now - p.since > _opts.request_timeout) {
      settle(here, core::make_error_code(core::dispatch_errc::unavailable));
      continue;
    }
    // A kept answer nobody came for.
    if (p.done && p.waiters == 0 && now - p.since > _opts.request_timeout + failed_kept) _pending.erase(here);
  }
}

// ---- driving the node ----

io::task<void> replica::ticker() {
  while (!_stop.cancelled()) {
    auto sleeping = io::sleep_for(_opts.tick, &_stop);
    co_await sleeping;
    ++_ticks;
    kick();
  }
}

io::task<void> replica::drive() {
  const auto election = _opts.tick * _opts.election_ticks;
  while (!_stop.cancelled()) {
    for (auto& call : std::exchange(_node_calls, {})) call();
    if (_ticks) {
      // A removed node stays quiet: no elections of a group it left.
      for (; _ticks; --_ticks)
        if (!_removed) _node->tick();
      promote_learners();
      expire_pending();
      watch_leases();
      // Lost on the way (a connection dropped, a leader died before it
      // replicated them): commands waiting longer than an election go again.
      if (clock::now() - _last_resend > election) resend_pending(election);
    }
    std::vector<rf::message> inbox = std::move(_inbox);
    _inbox.clear();
    for (const auto& m : inbox) _node->step(m);
    flush_commands();
    rf::ready rd = _node->take_ready();
    if (rd.empty()) {
      if (!_ticks && _inbox.empty() && _forwarded.empty() && _outgoing.empty() && _node_calls.empty()) {
        auto kicked = _kick.wait(_stop);
        co_await kicked;
      }
      continue;
    }
    auto doing = carry_out(rd);
    auto done = co_await std::move(doing);
    if (!done) {
      // The log cannot be written: stop taking part (raft/storage.h), as the
      // WAL does; a restart recovers what is on disk.
      _failure = done.error().message();
      XLOG(error, "raft node %llu stops: its log failed: %s", static_cast<unsigned long long>(_opts.id),
           _failure.c_str());
      co_return;
    }
    uint64_t leader = _node->leader().value;
    if (leader != _last_leader) {
      if (leader != 0) g_elections.inc();
      if (leader == _opts.id) {
        // A new leader gives every peer a full lease before judging it.
        for (const auto& n : _node->config().voters) _heard[n.value] = clock::now();
        for (const auto& n : _node->config().learners) _heard[n.value] = clock::now();
      }
      _last_leader = leader;
      if (leader != 0) resend_pending(std::chrono::milliseconds(0));
    }
    maybe_snapshot();
  }
}

io::task<io::result<void>> replica::carry_out(rf::ready& rd) {
  for (const auto& m : rd.messages_now) _transport->send(m);
  if (rd.snap || rd.hard || !rd.entries.empty()) {
    auto began = clock::now();
    auto persisting = _storage->persist(rd);
    auto persisted = co_await std::move(persisting);
    if (!persisted) co_return persisted;
    g_append.observe(std::chrono::duration<double>(clock::now() - began).count());
  }
  if (rd.snap) {
    if (!_sm.restore(rd.snap->data)) co_return core::make_error_code(core::dispatch_errc::unavailable);
    _applied = _snapshot_index = rd.snap->index.value;
    if (_caught_up) restore_local(false);
    for (const auto& [id, a] : _sm.addresses()) _book[id] = peer_address{node_id(id), a.host, a.port};
    update_peers();
  }
  for (const auto& m : rd.messages) _transport->send(m);
  bool config = false;
  for (const auto& e : rd.committed) {
    config |= e.kind == rf::entry_kind::config;
    apply(e);
  }
  check_caught_up();
  if (config && _caught_up && !_node->config().is_member(node_id(_opts.id)) && !_removed) {
    _removed = true;
    XLOG(warn, "raft node %llu is no longer a member of the group: it takes no more admissions",
         static_cast<unsigned long long>(_opts.id));
  }
  g_leader.set(_node->current_role() == rf::role::leader ? 1 : 0);
  g_term.set(double(_node->term().value));
  g_commit.set(double(_node->commit_index().value));
  g_applied.set(double(_applied));
  co_return io::result<void>{};
}

void replica::apply(const rf::entry& e) {
  if (e.index.value <= _applied) return;
  _applied = e.index.value;
  if (e.kind != rf::entry_kind::data || e.data.empty()) return;
  // Every node decodes the same bytes the same way: a bad entry is skipped
  // everywhere alike.
  if (!_sm.apply(e.data, *this))
    XLOG(error, "raft entry %llu does not decode; the rest of it is skipped", static_cast<unsigned long long>(_applied));
}

void replica::restore_local(bool restarting) {
  // The traces this node owns per the state machine, in admission order.
  std::vector<std::pair<uint64_t, state_machine::key>> mine;
  for (const auto& [k, t] : _sm.unfinished())
    if (t.owner == _opts.id) mine.push_back({t.order, k});
  std::sort(mine.begin(), mine.end());
  for (const auto& [order, k] : mine) {
    const trace_state& t = _sm.unfinished().at(k);
    // At a restart the previous process may have been running them.
    uint32_t attempt = restarting ? t.attempt + 1 : t.attempt;
    auto how = restarting ? shard_delivery::kind::push : shard_delivery::kind::push_if_absent;
    deliver(shard_delivery{how, core::trace_id{k.first, k.second}, t.pipeline, t.record, attempt});
  }
}

void replica::check_caught_up() {
  if (_caught_up) return;
  bool leading = _node->current_role() == rf::role::leader;
  uint64_t target = leading ? _node->commit_index().value : _leader_commit;
  if (_node->leader().value == 0 || target == 0 || _applied < target) return;
  _caught_up = true;
  _caught_up_event.notify();
  // What this node owns now was admitted before it started: an earlier
  // process may have been running it.
  restore_local(true);
  XLOG(info, "raft node %llu caught up at index %llu (leader %llu)", static_cast<unsigned long long>(_opts.id),
       static_cast<unsigned long long>(_applied), static_cast<unsigned long long>(_node->leader().value));
}

// §4.2.1: a learner becomes a voter once its log holds what is committed.
void replica::promote_learners() {
  if (_node->current_role() != rf::role::leader) return;
  std::vector<node_id> learners = _node->config().learners;
  for (node_id n : learners)
    if (_node->change_membership(rf::node::change::promote, n) == rf::node::change_result::done)
      XLOG(info, "raft: node %llu caught up and is now a voter", static_cast<unsigned long long>(n.value));
}

void replica::watch_leases() {
  if (_node->current_role() != rf::role::leader) return;
  auto now = clock::now();
  const auto& cfg = _node->config();
  auto alive = [&](uint64_t n) {
    if (n == _opts.id) return true;
    if (!cfg.is_voter(node_id(n)) && !cfg.is_learner(node_id(n))) return false;
    auto it = _heard.find(n);
    return it != _heard.end() && now - it->second <= _opts.lease;
  };
  std::vector<uint64_t> live;
  for (const auto& n : cfg.voters)
    if (alive(n.value)) live.push_back(n.value);
  for (const auto& [owner, count] : _sm.loads()) {
    if (alive(owner)) continue;
    auto last = _reassigned.find(owner);
    if (last != _reassigned.end() && now - last->second <= _opts.lease) continue;
    _reassigned[owner] = now;
    XLOG(warn, "raft: node %llu not heard from for %lld ms; its %llu unfinished traces move to the live nodes",
         static_cast<unsigned long long>(owner), static_cast<long long>(_opts.lease.count()),
         static_cast<unsigned long long>(count));
    g_moved.inc({}, double(count));
    request_ref ref = next_ref();
    std::string cmd;
    add_reassign(cmd, ref, owner, live);
    (void)submit(ref, std::move(cmd));
  }
}

void replica::maybe_snapshot() {
  if (_snapshotting || _applied < _snapshot_index + _opts.snapshot_entries) return;
  auto term = _node->log().term_at(rf::index_t(_applied));
  if (!term) return;
  rf::snapshot s{rf::index_t(_applied), *term, _node->config().encode(), _sm.snapshot()};
  _snapshot_index = _applied;  // the next one after as many entries, whether this one is saved or not
  _snapshotting = true;
  (void)io::spawn(_gate, save_snapshot(std::move(s)));
}

// Off the drive loop: its file write and fsyncs took milliseconds every
// snapshot_entries entries, and every admission of that turn waited them out.
io::task<void> replica::save_snapshot(rf::snapshot s) {
  auto saving = _storage->save_snapshot(s);
  auto saved = co_await std::move(saving);
  _snapshotting = false;
  if (!saved) {
    XLOG(warn, "raft snapshot at %llu not saved: %s", static_cast<unsigned long long>(s.index.value),
         saved.error().message().c_str());
    co_return;
  }
  // Between two readies; a snapshot installed from the leader meanwhile may cover it.
  _node_calls.push_back([this, s = std::move(s)]() mutable {
    if (s.index > _node->log().snapshot_index()) _node->compact(s.index, std::move(s.data));
  });
  kick();
}

// ---- what applying did ----

void replica::on_assigned(const core::trace_id& id, const trace_state& t) {
  // Before catching up, restore_local() delivers what is ours then.
  if (t.owner != _opts.id || !_caught_up) return;
  deliver(shard_delivery{shard_delivery::kind::push, id, t.pipeline, t.record, t.attempt});
}

void replica::on_unassigned(const core::trace_id& id, uint64_t from) {
  if (from != _opts.id || !_caught_up) return;
  deliver(shard_delivery{shard_delivery::kind::remove, id, {}, {}, 0});
}

void replica::on_finished(const core::trace_id& id, uint64_t owner, uint32_t, request_ref) {
  // Our own acknowledgement left the local queue already.
  if (_acking.erase(state_machine::key_of(id))) return;
  if (owner == _opts.id && _caught_up) deliver(shard_delivery{shard_delivery::kind::remove, id, {}, {}, 0});
}

void replica::on_address(uint64_t id, const node_address& a) {
  _book[id] = peer_address{node_id(id), a.host, a.port};
  update_peers();
}

void replica::on_pipeline(const core::pipeline_change& c) {
  _feed.push(c);
}

void replica::on_result(request_ref r, std::error_code e, const core::pipeline_change* change) {
  if (r.origin != _opts.id) return;
  auto it = _pending.find(r.id);
  if (it == _pending.end() || it->second.done) return;
  if (change) it->second.change = *change;
  settle(it, e);
}

void replica::settle(ticket_table<pending>::iterator it, std::error_code e) {
  it->second.command.clear();
  _pending.settle(it, e);
}

}  // namespace xerv::backends::raft
