#pragma once
// A deterministic simulation of a Raft cluster (STYLE §7, after TigerBeetle's
// VOPR): N raft::node in one thread on a tick clock, a network that drops,
// delays (so reorders), duplicates and partitions (also one way), and nodes
// that crash and restart from what their storage holds. The storage is
// modelled as raft/storage writes it: a ready's durable part goes in order
// hard state record, snapshot (all or nothing), then the entries one by one;
// a crash or an EIO (the node fail-stops) while persisting keeps any prefix of
// that, after the ready's messages_now went out; on restart the commit index
// is clamped to the restored log (never below its snapshot). One seed drives
// every choice, the protocol options included (draw_protocol()), so a
// failing seed replays exactly. Checkers, as the run goes: election safety
// (one leader per term), leader completeness (a new leader holds every
// committed entry), state machine safety (one entry per applied index,
// everywhere, snapshots included: nodes compact their logs and laggards get
// snapshots in small chunks), linearizable reads (a ReadIndex read sees every
// write applied before it was asked), linearizable admissions (the client
// model of invoke(), after backends/raft/replica.cc: a client's admission,
// resent by the node it asked until that node applies it, is acknowledged
// once, with the index of its first occurrence in the committed sequence, as
// the state machine dedups by request id; it comes after every admission
// acknowledged before it was invoked, and nothing is committed that no client
// invoked or that was refused); one vote per node and term (granted replies,
// and the persisted vote never changes within a term), terms never decrease
// (persisted, and in memory while up) and no message promises a term that is
// not durable, the persisted commit index never decreases and never passes
// the persisted log; leadership transfers and membership changes (spare
// servers added as learners, promoted, servers removed) happen at random too.
// At the end, log matching across every pair of logs, liveness (once the
// faults stop, a leader is elected and a new entry is applied everywhere),
// and every acknowledged admission is on every member, at its index.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "raft/node.h"

namespace xerv::testing::sim {

struct sim_options {
  unsigned nodes = 3;           // the first configuration's voters
  unsigned spares = 0;          // more servers, members only once added (as learners, then promoted)
  double membership_rate = 0;   // per tick: the leader adds, promotes or removes one server
  uint64_t seed = 1;
  unsigned ticks = 1000;        // with faults, then a quiet phase for liveness
  double drop = 0.05, duplicate = 0.02;
  unsigned delay_max = 3;       // ticks; a message takes 0..delay_max
  double partition_rate = 0.01; // per tick: a partition starts (or the current one heals)
  double crash_rate = 0.005;    // per tick: a node crashes (down for 5..50 ticks)
  // Per ready with something in it: the node crashes while persisting it, or
  // its fdatasync fails (EIO: it stops for good until restarted). Either way
  // any prefix of its writes is durable.
  double persist_crash_rate = 0.0005;
  double eio_rate = 0.0002;
  double propose_rate = 0.3;    // per tick: a client invokes an admission on a node (see invoke())
  double read_rate = 0.1;       // per tick: a linearizable read (ReadIndex) on the leader
  double transfer_rate = 0.003; // per tick: the leader hands over to a random peer
  bool unsafe_commit_without_quorum = false;
  bool unsafe_read_without_quorum = false;
  // Test-only, the client model's: an admission is acknowledged once the
  // leader has appended it, before it commits. The checker must catch it.
  bool unsafe_ack_on_append = false;
  // The protocol options (raft::options); draw_protocol() picks them per seed.
  bool pre_vote = true;
  bool check_quorum = true;  // off: a cut-off leader keeps leading (and, unsafe, reading)
  unsigned election_ticks = 10;
  unsigned heartbeat_ticks = 1;
  size_t batch_entries = 256;
  size_t inflight_max = 64;
  size_t snapshot_chunk_bytes = 64;  // small: a snapshot travels in many chunks
  unsigned compact_every = 100;  // entries applied beyond a node's snapshot before it takes another (0: never)

  // The options above as drawn, for a failure message.
  std::string protocol() const {
    return "pre_vote=" + std::to_string(pre_vote) + " check_quorum=" + std::to_string(check_quorum) +
           " election_ticks=" + std::to_string(election_ticks) + " heartbeat_ticks=" + std::to_string(heartbeat_ticks) +
           " batch_entries=" + std::to_string(batch_entries) + " inflight_max=" + std::to_string(inflight_max) +
           " snapshot_chunk_bytes=" + std::to_string(snapshot_chunk_bytes) + " compact_every=" +
           std::to_string(compact_every);
  }
};

// Protocol options drawn from `o.seed` (a stream of its own: the run's
// choices do not shift with them), so that each seed runs another mix:
// with and without pre-vote and check-quorum, batches of often one entry,
// narrow to wide pipelines, heartbeat to election timeout ratios, snapshot
// chunk sizes and compaction intervals.
inline void draw_protocol(sim_options& o) {
  std::mt19937_64 r(o.seed * 0x9e3779b97f4a7c15ull + 0x5eed);
  auto below = [&r](uint64_t n) { return r() % n; };
  o.pre_vote = below(3) != 0;
  o.check_quorum = below(3) != 0;
  o.election_ticks = unsigned(6 + below(15));  // 6..20
  o.heartbeat_ticks = unsigned(1 + below(std::max(1u, o.election_ticks / 3)));
  o.batch_entries = below(5) < 2 ? 1 : below(2) ? 2 + below(7) : 1 + below(256);
  o.inflight_max = below(4) == 0 ? 1 : 1 + below(64);
  static constexpr size_t chunks[] = {16, 64, 64, 300, 4096, 1 << 20};
  o.snapshot_chunk_bytes = chunks[below(std::size(chunks))];
  o.compact_every = unsigned(20 + below(181));  // 20..200
}

class cluster {
 public:
  explicit cluster(sim_options o) : _o(o), _rng(o.seed) {
    for (unsigned i = 1; i <= _o.nodes; ++i) _voters.push_back(raft::node_id(i));
    _o.nodes += _o.spares;  // from here on: every server
    for (unsigned i = 1; i <= _o.nodes; ++i) _ids.push_back(raft::node_id(i));
    _m.resize(_o.nodes);
    for (unsigned i = 0; i < _o.nodes; ++i) start(i);
  }

  // The first violation found (empty: none), with the seed to replay it.
  std::string run() {
    for (_now = 0; _now < _o.ticks && _failure.empty(); ++_now) {
      faults();
      step_all();
      clients();
      if (chance(_o.propose_rate)) invoke();
      if (chance(_o.read_rate)) read();
      if (chance(_o.transfer_rate)) transfer();
      if (chance(_o.membership_rate)) change_membership();
    }
    if (_failure.empty()) quiet_phase();
    if (_failure.empty()) check_acknowledged();
    if (_failure.empty()) check_log_matching();
    if (_failure.empty()) return "";
    return "seed " + std::to_string(_o.seed) + " (" + _o.protocol() + "): " + _failure;
  }

  uint64_t committed() const { return _committed.size(); }
  uint64_t elections() const { return _leaders.size(); }
  uint64_t reads() const { return _reads_done; }
  uint64_t admissions() const { return _admissions.size() - _refused; }  // invoked (refused ones not counted)
  uint64_t admissions_acked() const { return _acks; }
  uint64_t transfers() const { return _transfers; }
  uint64_t membership_changes() const { return _changes; }
  uint64_t snapshots_installed() const { return _installs; }
  uint64_t torn_writes() const { return _torn; }  // crashes while persisting, EIO included
  uint64_t eios() const { return _eios; }

  // Scripted scenarios: ticks without faults, and who leads now (-1: nobody).
  void quiet_ticks(unsigned n) {
    for (unsigned end = _now + n; _now < end; ++_now) step_all();
  }
  int leader() const {
    for (unsigned i = 0; i < _o.nodes; ++i)
      if (up(i) && _m[i].n->current_role() == raft::role::leader) return int(i);
    return -1;
  }
  bool transfer(unsigned from, unsigned to) {
    bool ok = _m[from].n->transfer_leadership(_ids[to]);
    handle_ready(from);
    return ok;
  }

 private:
  struct member {
    std::unique_ptr<raft::node> n;
    raft::hard_state hard;          // what it persisted
    std::optional<raft::snapshot> snap;
    std::vector<raft::entry> log;   // after the snapshot
    std::vector<raft::entry> applied;
    unsigned down_until = 0;
    bool leader_seen = false;       // checked as leader in its current term
    raft::term_t term_seen;         // the highest term since it last started
    // Its state machine's admissions (rebuilt with it): request id -> the
    // index of its first occurrence (a resend's later copy is ignored).
    std::map<uint64_t, uint64_t> admitted;
    // In memory only (a crash loses it): the admissions its clients wait
    // for (request id -> invoked when), the leader it last knew, its last resend.
    std::map<uint64_t, unsigned> pending;
    raft::node_id leader_known;
    unsigned last_resend = 0;
  };
  // A client's call (request id r is _admissions[r - 1]).
  struct admission {
    unsigned client;          // the node it talks to
    uint64_t floor, floor_id; // the highest index acknowledged when it was invoked, and whose
    uint64_t pos = 0;         // its first index in the committed sequence (0: not there yet)
    uint64_t acked = 0;       // the index it was acknowledged with (0: not acknowledged)
    bool refused = false;     // no leader known when invoked: never proposed
  };
  struct flight {
    unsigned at;
    raft::message m;
  };

  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(_rng) < p; }
  unsigned pick(unsigned n) { return unsigned(_rng() % n); }
  // XERV_SIM_TRACE (see _trace): what happens to the nodes and their storage, for a replay.
  template <class... A>
  void trace(const char* fmt, A... a) {
    if (!_trace) return;
    printf("%5u ", _now);
    printf(fmt, a...);
    printf("\n");
  }
  void fail(std::string why) {
    if (_failure.empty()) _failure = "tick " + std::to_string(_now) + ": " + why;
  }

  void start(unsigned i) {
    raft::options opts;
    opts.id = _ids[i];
    opts.voters = _voters;
    opts.election_ticks = _o.election_ticks;
    opts.heartbeat_ticks = _o.heartbeat_ticks;
    opts.pre_vote = _o.pre_vote;
    opts.batch_entries = _o.batch_entries;
    opts.inflight_max = _o.inflight_max;
    opts.seed = _o.seed * 1000 + _now;
    opts.unsafe_commit_without_quorum = _o.unsafe_commit_without_quorum;
    opts.unsafe_read_without_quorum = _o.unsafe_read_without_quorum;
    opts.check_quorum = _o.check_quorum;
    opts.snapshot_chunk_bytes = _o.snapshot_chunk_bytes;
    member& m = _m[i];
    // The storage's restore: the hard state record may be ahead of the
    // entries written after it, so its commit index is clamped to the log
    // restored (and never below the snapshot, which is committed).
    raft::hard_state hard = m.hard;
    hard.commit = raft::index_t(std::max(std::min(hard.commit.value, stored_last(m)), snapshot_index(m)));
    m.n = std::make_unique<raft::node>(opts, raft::restored{hard, m.snap, m.log});
    m.term_seen = m.n->term();
    m.leader_known = raft::node_id();
    m.last_resend = _now;
    trace("node %u starts: term %llu vote %llu commit %llu (saved %llu), snapshot %llu, log to %llu", i + 1,
          ull(hard.term.value), ull(hard.vote.value), ull(hard.commit.value), ull(m.hard.commit.value),
          ull(snapshot_index(m)), ull(stored_last(m)));
    // The state machine is rebuilt from the snapshot, then the log.
    m.applied.clear();
    m.admitted.clear();
    if (m.snap) restore_state(i, m.snap->data);
    m.leader_seen = false;
  }

  // A snapshot's data: the applied entries, one "term kind data" line each.
  static std::string encode_state(const std::vector<raft::entry>& applied, size_t upto) {
    std::string out;
    for (size_t k = 0; k < upto; ++k)
      out += std::to_string(applied[k].term.value) + '\t' + std::to_string(int(applied[k].kind)) + '\t' +
             applied[k].data + '\n';
    return out;
  }
  void restore_state(unsigned i, const std::string& data) {
    _m[i].applied.clear();
    _m[i].admitted.clear();
    for (size_t at = 0, k = 1; at < data.size(); ++k) {
      size_t t1 = data.find('\t', at), t2 = data.find('\t', t1 + 1), nl = data.find('\n', t2 + 1);
      raft::entry e{raft::term_t(std::stoull(data.substr(at, t1 - at))), raft::index_t(k),
                    data.substr(t2 + 1, nl - t2 - 1), raft::entry_kind(std::stoi(data.substr(t1 + 1, t2 - t1 - 1)))};
      apply(i, e);
      at = nl + 1;
    }
  }
  bool up(unsigned i) const { return _m[i].n != nullptr; }
  static unsigned long long ull(uint64_t v) { return v; }
  static uint64_t snapshot_index(const member& m) { return m.snap ? m.snap->index.value : 0; }
  static uint64_t stored_last(const member& m) { return m.log.empty() ? snapshot_index(m) : m.log.back().index.value; }
  std::string node_name(unsigned i) const { return "node " + std::to_string(i + 1); }

  void crash(unsigned i) {
    trace("node %u down", i + 1);
    _m[i].n.reset();
    _m[i].pending.clear();  // its clients' outcomes are unknown: they stop waiting
    _m[i].down_until = _now + 5 + pick(46);
  }

  void faults() {
    if (chance(_o.partition_rate)) {
      if (!_group.empty()) {
        _group.clear();
      } else {
        // Two sides at random; one way only now and then.
        _group.assign(_o.nodes, 0);
        for (auto& g : _group) g = int(pick(2));
        _one_way = chance(0.3);
      }
    }
    for (unsigned i = 0; i < _o.nodes; ++i)
      if (!up(i) && _now >= _m[i].down_until) start(i);
    if (chance(_o.crash_rate)) {
      unsigned i = pick(_o.nodes);
      if (up(i)) crash(i);
    }
  }

  bool reachable(unsigned from, unsigned to) const {
    if (_group.empty() || _group[from] == _group[to]) return true;
    return _one_way && _group[from] < _group[to];  // one way: side 0 reaches side 1 only
  }

  void step_all() {
    for (unsigned i = 0; i < _o.nodes; ++i)
      if (up(i)) {
        _m[i].n->tick();
        handle_ready(i);
      }
    // Due messages, in an order of their own.
    // (One pass, the rest kept in order: erasing each one was quadratic.)
    std::vector<flight> due;
    auto kept = _net.begin();
    for (auto it = _net.begin(); it != _net.end(); ++it)
      if (it->at <= _now) due.push_back(std::move(*it));
      else if (kept++ != it) *std::prev(kept) = std::move(*it);
    _net.erase(kept, _net.end());
    std::shuffle(due.begin(), due.end(), _rng);
    for (auto& f : due) {
      unsigned to = unsigned(f.m.to.value - 1);
      if (!up(to)) continue;
      if (_trace > 1)
        trace("%s %llu -> %llu: term %llu index %llu log_term %llu entries %zu commit %llu granted %d match %llu "
              "offset %llu",
              raft::to_string(f.m.type), ull(f.m.from.value), ull(f.m.to.value), ull(f.m.term.value),
              ull(f.m.index.value), ull(f.m.log_term.value), f.m.entries.size(), ull(f.m.commit.value), f.m.granted,
              ull(f.m.match.value), ull(f.m.offset));
      _m[to].n->step(f.m);
      handle_ready(to);
    }
  }

  void handle_ready(unsigned i) {
    member& m = _m[i];
    raft::ready r = m.n->take_ready();
    if (m.n->term() < m.term_seen) fail(node_name(i) + "'s term went down while it ran");
    m.term_seen = std::max(m.term_seen, m.n->term());
    for (auto& msg : r.messages_now) {
      // Sent before this ready is durable: a leader's term must be already.
      if (msg.type != raft::msg_type::pre_vote && msg.term > m.hard.term)
        fail(node_name(i) + " sent a " + raft::to_string(msg.type) + " of term " + std::to_string(msg.term.value) +
             " before that term was durable (" + std::to_string(m.hard.term.value) + ")");
      transmit(i, std::move(msg));
    }
    // Crashed, or fdatasync failed (the node stops: the WAL fails for good),
    // while persisting: any prefix of the writes is durable, nothing more is sent.
    size_t writes = (r.snap ? 1 : 0) + (r.hard ? 1 : 0) + r.entries.size();
    bool eio = false;
    if (!r.empty() && (chance(_o.persist_crash_rate) || (eio = chance(_o.eio_rate)))) {
      size_t kept = pick(unsigned(writes) + 1);
      trace("node %u %s while persisting: %zu of %zu writes durable (snapshot %d, hard %d, entries from %llu)", i + 1,
            eio ? "EIO" : "crash", kept, writes, bool(r.snap), bool(r.hard),
            ull(r.entries.empty() ? 0 : r.entries.front().index.value));
      persist(i, r, kept);
      ++_torn;
      _eios += eio;
      return crash(i);
    }
    persist(i, r, writes);
    for (auto& msg : r.messages) {
      // Sent once durable: no promise of a term not on disk (a granted
      // pre-vote names the candidate's next term, not this node's).
      if (msg.type != raft::msg_type::pre_vote_reply && msg.term > m.hard.term)
        fail(node_name(i) + " sent a " + raft::to_string(msg.type) + " of term " + std::to_string(msg.term.value) +
             " above its durable term " + std::to_string(m.hard.term.value));
      transmit(i, std::move(msg));
    }
    if (r.snap) restore_state(i, r.snap->data);
    for (auto& e : r.committed) {
      apply(i, e);
      // A client waiting on this node hears back once it applies an entry
      // carrying its request id (a resend's copy too: the first may have come
      // in a snapshot), with the index of the first (replica.cc's on_result).
      if (m.pending.empty() || !_failure.empty()) continue;
      for_each_request(e, [&](uint64_t q) {
        auto at = m.admitted.find(q);
        if (at != m.admitted.end() && m.pending.erase(q)) acknowledge(q, at->second);
      });
    }
    maybe_compact(i);
    // A read must see every write applied anywhere before it was asked (§6.4).
    for (const auto& rs : r.reads) {
      auto it = _pending_reads.find(rs.id);
      if (it == _pending_reads.end()) {
        fail("read " + std::to_string(rs.id) + " answered twice or never asked");
        continue;
      }
      if (rs.index.value < it->second)
        fail("linearizability: read " + std::to_string(rs.id) + " at index " + std::to_string(rs.index.value) +
             " misses index " + std::to_string(it->second) + ", applied before it was asked");
      _pending_reads.erase(it);
      ++_reads_done;
    }
    for (uint64_t id : r.reads_lost) _pending_reads.erase(id);
    check_leader(i);
  }

  // The first `writes` of the ready's durable part, in raft/storage's WAL
  // order: the hard state record, the snapshot (its file is written first,
  // but counts only once the install marker after the hard state is durable;
  // it replaces the whole log), the entries (the first one written replaces
  // the stored log from its index).
  void persist(unsigned i, const raft::ready& r, size_t writes) {
    member& m = _m[i];
    if (writes && r.hard) {
      --writes;
      save_hard(i, *r.hard);
    }
    if (writes && r.snap) {
      --writes;
      m.snap = *r.snap;
      m.log.clear();
      ++_installs;
    }
    if (writes && !r.entries.empty()) {
      trace("node %u writes entries %llu..%llu", i + 1, ull(r.entries.front().index.value),
            ull(r.entries.front().index.value + std::min(writes, r.entries.size()) - 1));
      uint64_t from = r.entries.front().index.value;
      m.log.erase(std::remove_if(m.log.begin(), m.log.end(), [from](const raft::entry& e) { return e.index.value >= from; }),
                  m.log.end());
      m.log.insert(m.log.end(), r.entries.begin(), r.entries.begin() + long(std::min(writes, r.entries.size())));
    }
  }

  // A hard state record is written: what it may say, given what came before
  // (restarts included: each one starts from the last record).
  void save_hard(unsigned i, const raft::hard_state& h) {
    member& m = _m[i];
    if (h.term < m.hard.term) fail(node_name(i) + " saved a lower term");
    if (h.term == m.hard.term && m.hard.vote != raft::node_id() && h.vote != m.hard.vote)
      fail(node_name(i) + " changed its saved vote in term " + std::to_string(h.term.value) + " from " +
           std::to_string(m.hard.vote.value) + " to " + std::to_string(h.vote.value));
    if (h.commit < m.hard.commit)
      fail(node_name(i) + " saved commit index " + std::to_string(h.commit.value) + " after " +
           std::to_string(m.hard.commit.value));
    // Written before the ready's snapshot and entries: it may cover only what
    // is on disk already, or a crash right after it would restore a commit
    // index over entries that are not (a stale suffix still stored there
    // included).
    if (h.commit.value > stored_last(m))
      fail(node_name(i) + " saved commit index " + std::to_string(h.commit.value) + " past its saved log (" +
           std::to_string(stored_last(m)) + ")");
    trace("node %u saves term %llu vote %llu commit %llu (log to %llu)", i + 1, ull(h.term.value), ull(h.vote.value),
          ull(h.commit.value), ull(stored_last(m)));
    m.hard = h;
  }

  void transmit(unsigned from, raft::message msg) {
    // One vote per node and term (§3.4), whatever crashes came in between.
    if (msg.type == raft::msg_type::vote_reply && msg.granted) {
      auto [it, fresh] = _votes.emplace(std::make_pair(from, msg.term.value), msg.to.value);
      if (!fresh && it->second != msg.to.value)
        fail(node_name(from) + " voted for " + std::to_string(it->second) + " and " + std::to_string(msg.to.value) +
             " in term " + std::to_string(msg.term.value));
    }
    unsigned to = unsigned(msg.to.value - 1);
    if (!reachable(from, to) || chance(_o.drop)) return;
    if (chance(_o.duplicate)) _net.push_back({_now + pick(_o.delay_max + 1), msg});
    _net.push_back({_now + pick(_o.delay_max + 1), std::move(msg)});
  }

  void maybe_compact(unsigned i) {
    member& m = _m[i];
    uint64_t base = m.snap ? m.snap->index.value : 0;
    if (!_o.compact_every || m.applied.size() < base + _o.compact_every || !chance(0.5)) return;
    size_t upto = m.applied.size() - 5;  // a few entries stay in the log
    m.n->compact(raft::index_t(upto), encode_state(m.applied, upto));
    m.snap = *m.n->last_snapshot();
    m.log.erase(std::remove_if(m.log.begin(), m.log.end(), [upto](const raft::entry& e) { return e.index.value <= upto; }),
                m.log.end());
  }

  void apply(unsigned i, const raft::entry& e) {
    member& m = _m[i];
    if (e.index.value != m.applied.size() + 1)
      return fail("node " + std::to_string(i + 1) + " applied index " + std::to_string(e.index.value) + " after " +
                  std::to_string(m.applied.size()));
    m.applied.push_back(e);
    // The dedup: a later copy changes nothing.
    for_each_request(e, [&](uint64_t r) { m.admitted.emplace(r, e.index.value); });
    auto [it, fresh] = _committed.emplace(e.index.value, e);
    if (!fresh && (it->second.term != e.term || it->second.data != e.data))
      fail("state machine safety: index " + std::to_string(e.index.value) + " applied as two different entries");
    if (fresh) check_admissions(e);
  }

  // The request ids an entry of admissions carries: "a" then ids, comma
  // separated (a batch, as replica.cc proposes them).
  template <class F>
  static void for_each_request(const raft::entry& e, F f) {
    if (e.kind != raft::entry_kind::data || e.data.size() < 2 || e.data[0] != 'a') return;
    for (const char* p = e.data.c_str() + 1; *p; p += *p == ',') {
      char* end;
      uint64_t r = std::strtoull(p, &end, 10);
      if (end == p) return f(0);  // not ours: a phantom
      f(r);
      p = end;
    }
  }
  static bool carries(const raft::entry& e, uint64_t r) {
    bool found = false;
    for_each_request(e, [&](uint64_t q) { found = found || q == r; });
    return found;
  }
  static std::string admission_name(uint64_t r) { return "admission " + std::to_string(r); }

  // Entry `e` joins the committed sequence (applied for the first time anywhere).
  void check_admissions(const raft::entry& e) {
    uint64_t k = e.index.value;
    std::string at = " index " + std::to_string(k);
    auto [from, to] = _acked_at.equal_range(k);
    for (auto a = from; a != to; ++a)
      if (!carries(e, a->second))
        fail("linearizability: " + admission_name(a->second) + " was acknowledged at" + at +
             ", which commits an entry without it");
    _acked_at.erase(from, to);
    for_each_request(e, [&](uint64_t r) {
      if (r == 0 || r > _admissions.size())
        return fail("linearizability:" + at + " commits " + admission_name(r) + ", which no client invoked");
      admission& a = _admissions[r - 1];
      if (a.refused)
        return fail("linearizability:" + at + " commits " + admission_name(r) + ", refused (never proposed)");
      if (a.pos) return;  // a resend's copy: the first one stands
      a.pos = k;
      if (a.acked && a.acked != k)
        fail("linearizability: " + admission_name(r) + " was acknowledged at index " + std::to_string(a.acked) +
             " but is first at" + at);
      if (k <= a.floor)
        fail("linearizability: " + admission_name(r) + ", invoked after " + admission_name(a.floor_id) +
             " was acknowledged at index " + std::to_string(a.floor) + ", is first at" + at);
    });
  }

  // The client of admission `r` hears it is at index `pos`.
  void acknowledge(uint64_t r, uint64_t pos) {
    admission& a = _admissions[r - 1];
    trace("admission %llu acknowledged by node %u at index %llu", ull(r), a.client + 1, ull(pos));
    if (a.acked) return fail("linearizability: " + admission_name(r) + " acknowledged twice");
    a.acked = pos;
    ++_acks;
    if (pos > _acked_max) {
      _acked_max = pos;
      _acked_max_id = r;
    }
    auto it = _committed.find(pos);
    if (it == _committed.end())
      _acked_at.emplace(pos, r);  // not committed yet (only a broken node acknowledges that): checked when it is
    else if (!carries(it->second, r))
      fail("linearizability: " + admission_name(r) + " was acknowledged at index " + std::to_string(pos) +
           ", which holds an entry without it");
    else if (a.pos != pos)
      fail("linearizability: " + admission_name(r) + " was acknowledged at index " + std::to_string(pos) +
           " but is first at index " + std::to_string(a.pos));
  }

  void check_leader(unsigned i) {
    member& m = _m[i];
    if (m.n->current_role() != raft::role::leader) {
      m.leader_seen = false;
      return;
    }
    if (m.leader_seen) return;
    m.leader_seen = true;
    uint64_t term = m.n->term().value;
    trace("node %u leads term %llu", i + 1, ull(term));
    auto [it, fresh] = _leaders.emplace(term, i);
    if (!fresh && it->second != i)
      return fail("election safety: nodes " + std::to_string(it->second + 1) + " and " + std::to_string(i + 1) +
                  " lead term " + std::to_string(term));
    // Leader completeness: every entry applied anywhere is in the new leader's log.
    const raft::raft_log& log = m.n->log();
    for (const auto& [index, e] : _committed) {
      if (index < log.snapshot_index().value) continue;  // in its snapshot (checked when it was restored)
      auto t = log.term_at(raft::index_t(index));
      if (index == log.snapshot_index().value) {
        if (t != e.term)
          return fail("leader completeness: leader " + std::to_string(i + 1) + "'s snapshot ends at index " +
                      std::to_string(index) + " of another term");
        continue;
      }
      if (!t || *t != e.term || log.at(raft::index_t(index)).data != e.data)
        return fail("leader completeness: leader " + std::to_string(i + 1) + " of term " + std::to_string(term) +
                    " lacks committed index " + std::to_string(index));
    }
  }

  void read() {
    int l = leader();
    if (l < 0) return;
    uint64_t applied = 0;
    for (const auto& m : _m) applied = std::max<uint64_t>(applied, m.applied.size());
    uint64_t id = ++_read_ids;
    if (!_m[l].n->read_index(id)) return;
    _pending_reads[id] = applied;
    handle_ready(unsigned(l));
  }

  void transfer() {
    int l = leader();
    if (l < 0 || _o.nodes < 2) return;
    unsigned to = (unsigned(l) + 1 + pick(_o.nodes - 1)) % _o.nodes;
    _transfers += transfer(unsigned(l), to);
  }

  void change_membership() {
    int l = leader();
    if (l < 0) return;
    raft::node& n = *_m[l].n;
    const raft::configuration& c = n.config();
    raft::node_id who = _ids[pick(_o.nodes)];
    using k = raft::node::change;
    k what = !c.is_member(who) ? k::add_learner : c.is_learner(who) && chance(0.7) ? k::promote : k::remove;
    _changes += n.change_membership(what, who) == raft::node::change_result::done;
    handle_ready(unsigned(l));
  }

  // The client model, after backends/raft/replica.cc: a client calls any up
  // node with an admission of a fresh request id. Knowing no leader, the
  // node refuses it (it is never proposed, so must never appear); else it
  // keeps it pending, forwards it to the leader it knows (forward()) and
  // resends it (clients()) until it applies an entry carrying it, when the
  // client is acknowledged with the index of the first such entry (its state
  // machine dedups by request id). Not acknowledged within the request
  // timeout (replica.cc's default: five election timeouts), or the node
  // crashes (what is pending is lost), the client stops waiting: its outcome
  // is unknown (the admission may appear or not).
  void invoke() {
    std::vector<unsigned> live;
    for (unsigned i = 0; i < _o.nodes; ++i)
      if (up(i)) live.push_back(i);
    if (live.empty()) return;
    unsigned c = live[pick(unsigned(live.size()))];
    _admissions.push_back(admission{c, _acked_max, _acked_max_id});
    uint64_t r = _admissions.size();
    if (_m[c].n->leader() == raft::node_id()) {
      trace("admission %llu refused by node %u: no leader known", ull(r), c + 1);
      _admissions.back().refused = true;
      ++_refused;
      return;
    }
    _m[c].pending.emplace(r, _now);
    forward(c, {r});
  }

  // Node `c` hands admissions to the leader it knows, which proposes them as
  // one entry; forwarded (from a follower) they are lost if that one is down
  // or out of reach, or the message drops. Proposed by a node that no longer
  // leads (or is handing over), or in a term that ends before it commits,
  // they may be lost too: resent.
  void forward(unsigned c, const std::vector<uint64_t>& batch) {
    raft::node_id known = _m[c].n->leader();
    if (known == raft::node_id()) return;
    unsigned l = unsigned(known.value - 1);
    if (l != c && (!up(l) || !reachable(c, l) || chance(_o.drop))) return;
    std::string data = "a";
    for (uint64_t r : batch) data += (data.size() > 1 ? "," : "") + std::to_string(r);
    auto at = _m[l].n->propose(data);
    if (!at) return;
    trace("admissions %s from node %u proposed on node %u at index %llu", data.c_str() + 1, c + 1, l + 1,
          ull(at->value));
    if (_o.unsafe_ack_on_append)
      for (uint64_t r : batch) {
        _m[c].pending.erase(r);
        acknowledge(r, at->value);
      }
    handle_ready(l);
  }

  // Each node gives up on what has waited past the request timeout, and
  // resends the rest in one batch, as replica.cc does: all of it when it
  // learns of a new leader, and every election timeout what has waited that
  // long.
  void clients() {
    for (unsigned c = 0; c < _o.nodes; ++c) {
      if (!up(c)) continue;
      member& m = _m[c];
      raft::node_id known = m.n->leader();
      bool all = known != m.leader_known && known != raft::node_id();
      m.leader_known = known;
      for (auto it = m.pending.begin(); it != m.pending.end();)
        it = _now - it->second > 5 * _o.election_ticks ? m.pending.erase(it) : std::next(it);
      if (!all && _now - m.last_resend <= _o.election_ticks) continue;
      m.last_resend = _now;
      std::vector<uint64_t> again;
      for (const auto& [r, since] : m.pending)
        if (all || _now - since >= _o.election_ticks) again.push_back(r);
      if (!again.empty()) forward(c, again);
    }
  }

  // After the quiet phase: every acknowledged admission is on every member,
  // at the index it was acknowledged with. (Some may have been acknowledged
  // past the final entry: time for them to get everywhere first.)
  void check_acknowledged() {
    raft::configuration members;
    for (unsigned until = _now + 20 * _o.election_ticks + 500; _now < until && _failure.empty(); ++_now) {
      int l = leader();
      if (l >= 0) members = _m[l].n->config();
      bool everywhere = l >= 0;
      for (unsigned i = 0; i < _o.nodes && everywhere; ++i)
        everywhere = !members.is_member(_ids[i]) || _m[i].applied.size() >= _acked_max;
      if (everywhere) break;
      step_all();
      clients();
    }
    for (uint64_t r = 1; r <= _admissions.size() && _failure.empty(); ++r) {
      const admission& a = _admissions[r - 1];
      if (!a.acked) continue;
      for (unsigned i = 0; i < _o.nodes; ++i) {
        if (!members.is_member(_ids[i])) continue;
        const member& m = _m[i];
        auto first = m.admitted.find(r);
        if (m.applied.size() < a.acked)
          return fail("linearizability: " + admission_name(r) + ", acknowledged at index " + std::to_string(a.acked) +
                      ", is not applied on " + node_name(i) + " (which applied " + std::to_string(m.applied.size()) +
                      " entries)");
        if (!carries(m.applied[a.acked - 1], r) || first == m.admitted.end() || first->second != a.acked)
          return fail("linearizability: " + admission_name(r) + ", acknowledged at index " + std::to_string(a.acked) +
                      ", is not there on " + node_name(i));
      }
    }
  }

  // The faults stop: everyone up, everyone reachable, nothing lost. A leader
  // must come, and a new entry must reach every state machine.
  void quiet_phase() {
    _group.clear();
    _o.drop = _o.duplicate = _o.crash_rate = _o.persist_crash_rate = _o.eio_rate = 0;
    for (unsigned i = 0; i < _o.nodes; ++i)
      if (!up(i)) start(i);
    // Time enough for a laggard to take a snapshot of a few KB in 16-byte
    // chunks, one per round trip, then entries one by one (batch_entries 1,
    // inflight_max 1): that is slow, not stuck.
    unsigned until = _now + 60 * _o.election_ticks + 3000;
    std::string final = "final";
    bool proposed = false;
    unsigned proposed_at = 0;
    for (; _now < until && _failure.empty(); ++_now) {
      step_all();
      clients();
      // A client retries: an entry its leader had not committed may be lost
      // with it. (Not once applied somewhere: more entries would make the
      // leader compact again, and a snapshot still in transfer start over.)
      if (proposed && _now > proposed_at + 5 * _o.election_ticks &&
          std::none_of(_m.begin(), _m.end(), [&](const member& m) {
            return std::any_of(m.applied.begin(), m.applied.end(),
                               [&](const raft::entry& e) { return e.data == final; });
          }))
        proposed = false;
      for (unsigned i = 0; i < _o.nodes && !proposed; ++i)
        if (_m[i].n->propose(final)) {
          proposed = true;
          proposed_at = _now;
          handle_ready(i);
        }
      // Everywhere: on every member of the leader's configuration.
      int l = leader();
      bool everywhere = proposed && l >= 0;
      for (unsigned i = 0; i < _o.nodes && everywhere; ++i)
        everywhere = !_m[l].n->config().is_member(_ids[i]) ||
                     std::any_of(_m[i].applied.begin(), _m[i].applied.end(),
                                 [&](const raft::entry& e) { return e.data == final; });
      if (everywhere) return;
    }
    std::string state;
    for (unsigned i = 0; i < _o.nodes; ++i)
      if (!up(i)) state += "; node " + std::to_string(i + 1) + " down";
      else state += "; node " + std::to_string(i + 1) + " " + raft::to_string(_m[i].n->current_role()) + " term " +
               std::to_string(_m[i].n->term().value) + " last " + std::to_string(_m[i].n->log().last_index().value) +
               " commit " + std::to_string(_m[i].n->commit_index().value) + " config " + _m[i].n->config().encode();
    fail((proposed ? "liveness: the final entry did not reach every node" : "liveness: no leader after the faults stopped") +
         state);
  }

  // Where two logs hold the same index with the same term, they hold the same
  // entries before it too (as far as both still hold entries).
  void check_log_matching() {
    for (unsigned a = 0; a < _o.nodes; ++a)
      for (unsigned b = a + 1; b < _o.nodes; ++b) {
        std::map<uint64_t, const raft::entry*> in_b;
        for (const auto& e : _m[b].log) in_b[e.index.value] = &e;
        const raft::entry* agree = nullptr;
        for (const auto& e : _m[a].log) {
          auto it = in_b.find(e.index.value);
          if (it != in_b.end() && it->second->term == e.term) agree = &e;
        }
        if (!agree) continue;
        for (const auto& e : _m[a].log) {
          if (e.index > agree->index) break;
          auto it = in_b.find(e.index.value);
          if (it != in_b.end() && (it->second->term != e.term || it->second->data != e.data))
            return fail("log matching: nodes " + std::to_string(a + 1) + " and " + std::to_string(b + 1) + " agree at " +
                        std::to_string(agree->index.value) + " but differ at " + std::to_string(e.index.value));
        }
      }
  }

  sim_options _o;
  std::mt19937_64 _rng;
  std::vector<raft::node_id> _voters;  // the first configuration
  std::vector<raft::node_id> _ids;     // every server
  std::vector<member> _m;
  std::vector<flight> _net;
  std::vector<int> _group;  // empty: no partition
  bool _one_way = false;
  unsigned _now = 0;
  std::vector<admission> _admissions;
  uint64_t _acked_max = 0, _acked_max_id = 0;  // the highest index acknowledged so far, and whose
  std::multimap<uint64_t, uint64_t> _acked_at;  // index -> an admission acknowledged there before it committed
  uint64_t _acks = 0, _refused = 0;
  std::map<uint64_t, raft::entry> _committed;  // index -> the entry applied there
  std::map<uint64_t, unsigned> _leaders;       // term -> its leader
  std::map<uint64_t, uint64_t> _pending_reads;  // read id -> the highest index applied anywhere when asked
  std::map<std::pair<unsigned, uint64_t>, uint64_t> _votes;  // (voter, term) -> the candidate it granted
  uint64_t _read_ids = 0, _reads_done = 0, _transfers = 0, _changes = 0, _installs = 0, _torn = 0, _eios = 0;
  std::string _failure;
  // XERV_SIM_TRACE=1: crashes, restarts, writes and leaders; 2: every message delivered too.
  int _trace = std::getenv("XERV_SIM_TRACE") ? std::atoi(std::getenv("XERV_SIM_TRACE")) : 0;
};

}  // namespace xerv::testing::sim
