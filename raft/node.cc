#include "raft/node.h"

#include <algorithm>
#include <iterator>

#include "io/assert.h"

namespace xerv::raft {

const char* to_string(msg_type t) {
  switch (t) {
    case msg_type::pre_vote: return "pre_vote";
    case msg_type::pre_vote_reply: return "pre_vote_reply";
    case msg_type::vote: return "vote";
    case msg_type::vote_reply: return "vote_reply";
    case msg_type::append: return "append";
    case msg_type::append_reply: return "append_reply";
    case msg_type::timeout_now: return "timeout_now";
    case msg_type::snapshot: return "snapshot";
    case msg_type::snapshot_reply: return "snapshot_reply";
  }
  return "unknown";
}

const char* to_string(role r) {
  switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre_candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
  }
  return "unknown";
}

node::node(options opts, restored from)
    : _opts(std::move(opts)), _hard(from.hard), _rng(_opts.seed ^ (_opts.id.value * 0x9e3779b97f4a7c15ull)) {
  if (from.snap) {
    _log.restore(from.snap->index, from.snap->term);
    _applied = from.snap->index;
    // A snapshot holds committed entries only, whatever the saved commit says.
    _hard.commit = std::max(_hard.commit, from.snap->index);
    _snapshot = std::move(from.snap);
  }
  for (auto& e : from.log) {
    ASSERT(e.index == _log.last_index().next(), "restored log not contiguous at %llu",
           static_cast<unsigned long long>(e.index.value));
    ASSERT(e.term >= _log.last_term(), "restored log's terms decrease at %llu",
           static_cast<unsigned long long>(e.index.value));
    _log.append(e.term, std::move(e.data), e.kind);
  }
  reload_config();
  ASSERT(_hard.commit <= _log.last_index(), "restored commit index past the log");
  _saved = _hard;
  _unstable = _log.last_index().next();
  _persisted = _log.last_index();
  reset_election_timer();
}

configuration node::base_config() const {
  if (_snapshot) return *configuration::decode(_snapshot->config);
  configuration first;
  first.voters = _opts.voters;
  std::sort(first.voters.begin(), first.voters.end());
  return first;
}

void node::reload_config() {
  for (uint64_t i = _log.last_index().value; i > _log.snapshot_index().value; --i) {
    const entry& e = _log.at(index_t(i));
    if (e.kind != entry_kind::config) continue;
    auto c = configuration::decode(e.data);
    ASSERT(c, "config entry %llu does not decode: %s", static_cast<unsigned long long>(i), e.data.c_str());
    return apply_config(std::move(*c), index_t(i));
  }
  apply_config(base_config(), _log.snapshot_index());
}

void node::apply_config(configuration c, index_t at) {
  _config = std::move(c);
  _config_index = at;
  if (_role != role::leader) return;
  // A leader follows every member but itself; new ones are probed from its end.
  std::vector<std::pair<node_id, progress>> peers;
  auto follow = [&](node_id n) {
    if (n == _opts.id) return;
    if (progress* pr = peer(n)) peers.emplace_back(n, *pr);
    else peers.emplace_back(n, progress{index_t(), _log.last_index().next()});
  };
  for (node_id n : _config.voters) follow(n);
  for (node_id n : _config.learners) follow(n);
  _peers = std::move(peers);
}

bool node::may_campaign() const {
  if (_config.is_voter(_opts.id)) return true;
  // Removed by an entry not committed yet: its log may be the only one that
  // holds that entry, so it must still be able to lead long enough to commit
  // it (then it steps down), or nobody could win.
  for (uint64_t i = std::min(_hard.commit, _config_index).value; i > _log.snapshot_index().value; --i) {
    const entry& e = _log.at(index_t(i));
    if (e.kind == entry_kind::config) return configuration::decode(e.data)->is_voter(_opts.id);
  }
  return base_config().is_voter(_opts.id);
}

progress* node::peer(node_id n) {
  auto it = std::find_if(_peers.begin(), _peers.end(), [n](const auto& p) { return p.first == n; });
  return it == _peers.end() ? nullptr : &it->second;
}

node::change_result node::change_membership(change c, node_id n) {
  if (_role != role::leader || _transfer_to != node_id()) return change_result::not_leader;
  if (_config_index > _hard.commit) return change_result::busy;  // §4.1: one at a time
  // Nor before an entry of this term is committed: else a leader of an older
  // configuration's majority could still commit in parallel (the bug in the
  // original single-server scheme, Ongaro's raft-dev post of 2015).
  if (_log.term_at(_hard.commit) != _hard.term) return change_result::busy;
  configuration next = _config;
  auto erase = [n](std::vector<node_id>& v) { v.erase(std::remove(v.begin(), v.end(), n), v.end()); };
  switch (c) {
    case change::add_learner:
      if (_config.is_member(n)) return change_result::no_change;
      next.learners.push_back(n);
      break;
    case change::promote: {
      if (!_config.is_learner(n)) return _config.is_voter(n) ? change_result::no_change : change_result::unknown_node;
      progress* pr = peer(n);
      if (!pr || pr->match < _hard.commit) return change_result::not_caught_up;
      erase(next.learners);
      next.voters.push_back(n);
      break;
    }
    case change::remove:
      if (!_config.is_member(n)) return change_result::unknown_node;
      if (_config.is_voter(n) && _config.voters.size() == 1) return change_result::no_change;  // the last voter stays
      erase(next.voters);
      erase(next.learners);
      break;
  }
  std::sort(next.voters.begin(), next.voters.end());
  std::sort(next.learners.begin(), next.learners.end());
  index_t i = _log.append(_hard.term, next.encode(), entry_kind::config);
  apply_config(std::move(next), i);
  broadcast_append(false);
  maybe_commit();
  return change_result::done;
}

void node::reset_election_timer() {
  _election_elapsed = 0;
  _timeout = _opts.election_ticks + unsigned(_rng() % _opts.election_ticks);
}

void node::send(message m) {
  m.from = _opts.id;
  // What a leader (or pre-candidate) sends depends on nothing this node has
  // yet to persist: its commit index counts only entries handed out before.
  bool early = m.type == msg_type::append || m.type == msg_type::snapshot || m.type == msg_type::timeout_now ||
               m.type == msg_type::pre_vote;
  (early ? _outbox_now : _outbox).push_back(std::move(m));
}

void node::tick() {
  if (_role != role::leader) {
    // Learners and removed servers never campaign (§4.2.3: they cannot
    // disrupt), but their clock runs on: silence from the leader still ends
    // its lease for their votes.
    if (_election_elapsed < _timeout) ++_election_elapsed;
    if (_election_elapsed >= _timeout && may_campaign()) campaign(_opts.pre_vote);
    return;
  }
  if (_transfer_to != node_id() && ++_transfer_elapsed >= _opts.election_ticks) _transfer_to = node_id();  // gave up
  if (++_heartbeat_elapsed >= _opts.heartbeat_ticks) {
    _heartbeat_elapsed = 0;
    broadcast_append(true);
  }
  // §6.2: a leader cut off from a majority steps down instead of serving on.
  if (_opts.check_quorum && ++_election_elapsed >= _opts.election_ticks) {
    _election_elapsed = 0;
    size_t heard = _config.is_voter(_opts.id);
    for (auto& [id, pr] : _peers) {
      heard += pr.active && _config.is_voter(id);
      pr.active = false;
    }
    if (heard < quorum()) become_follower(_hard.term, node_id());
  }
}

void node::become_follower(term_t term, node_id leader) {
  if (term > _hard.term) {
    _hard.term = term;
    _hard.vote = node_id();
  }
  if (_role == role::leader) drop_reads();
  _role = role::follower;
  _leader = leader;
  _votes.reset();
  _peers.clear();
  _transfer_to = node_id();
  reset_election_timer();
}

void node::campaign(bool pre, bool transfer) {
  _leader = node_id();
  _votes.emplace(_config.voters, _opts.id);
  reset_election_timer();
  term_t term = _hard.term.next();
  if (pre) {
    _role = role::pre_candidate;  // asks at the next term without taking it (§9.6)
  } else {
    _role = role::candidate;
    _hard.term = term;
    _hard.vote = _opts.id;
  }
  if (_votes->record(_opts.id, true) == vote_round::outcome::won) {
    if (pre) campaign(false);
    else become_leader();
    return;
  }
  for (node_id v : _config.voters) {
    if (v == _opts.id) continue;
    message m;
    m.type = pre ? msg_type::pre_vote : msg_type::vote;
    m.to = v;
    m.term = term;
    m.index = _log.last_index();
    m.log_term = _log.last_term();
    m.transfer = transfer;
    send(std::move(m));
  }
}

void node::become_leader() {
  _role = role::leader;
  _leader = _opts.id;
  _votes.reset();
  _peers.clear();
  apply_config(_config, _config_index);  // every member a peer
  // §3.6.2: entries of earlier terms commit only under one of this term.
  _log.append(_hard.term, {});
  _transfer_to = node_id();
  _heartbeat_elapsed = 0;
  _election_elapsed = 0;
  broadcast_append(false);
}

std::optional<index_t> node::propose(std::string data) {
  if (_role != role::leader || _transfer_to != node_id()) return std::nullopt;
  index_t i = _log.append(_hard.term, std::move(data));
  broadcast_append(false);
  return i;
}

bool node::transfer_leadership(node_id to) {
  if (_role != role::leader || !_config.is_voter(to)) return false;
  progress* pr = peer(to);
  if (!pr) return false;
  _transfer_to = to;
  _transfer_elapsed = 0;
  if (pr->match == _log.last_index()) {
    message m;
    m.type = msg_type::timeout_now;
    m.to = to;
    m.term = _hard.term;
    send(std::move(m));
  } else {
    send_append(to, false);  // the reply that shows it caught up sends timeout_now
  }
  return true;
}

bool node::read_index(uint64_t id) {
  if (_role != role::leader || _log.term_at(_hard.commit) != _hard.term) return false;
  _reads.push_back({id, _hard.commit, ++_read_round, {}});
  confirm_reads(_opts.id, 0);  // a single voter is its own quorum
  broadcast_append(true);
  return true;
}

void node::confirm_reads(node_id from, uint64_t round) {
  if (from != _opts.id && _config.is_voter(from))
    for (auto& r : _reads)
      if (r.round <= round && std::find(r.acks.begin(), r.acks.end(), from) == r.acks.end()) r.acks.push_back(from);
  size_t self = _config.is_voter(_opts.id);
  size_t done = 0;
  while (done < _reads.size() && (_reads[done].acks.size() + self >= quorum() || _opts.unsafe_read_without_quorum)) {
    _reads_ready.push_back({_reads[done].id, _reads[done].index});
    ++done;
  }
  _reads.erase(_reads.begin(), _reads.begin() + long(done));
}

void node::drop_reads() {
  for (const auto& r : _reads) _reads_lost.push_back(r.id);
  _reads.clear();
}

void node::broadcast_append(bool heartbeat) {
  for (auto& [id, pr] : _peers) send_append(id, heartbeat);
}

void node::send_append(node_id to, bool heartbeat) {
  progress* p = peer(to);
  if (!p) return;
  progress& pr = *p;
  // What it needs next is compacted away: it gets the snapshot (§5.3); a
  // heartbeat sends the chunk in flight again, in case it was lost.
  if (pr.snapshotting || pr.next <= _log.snapshot_index()) {
    // (Again only after an election timeout without an answer: sooner, the
    // answer of the chunk in flight would lose to its resend.)
    if (!pr.snapshotting || (heartbeat && ++pr.snapshot_quiet >= _opts.election_ticks)) send_snapshot(to, pr);
    return;
  }
  bool room = pr.can_send(_opts.inflight_max) && pr.next <= _log.last_index();
  if (!heartbeat && !room) return;
  message m;
  m.type = msg_type::append;
  m.to = to;
  m.term = _hard.term;
  m.index = index_t(pr.next.value - 1);
  m.log_term = *_log.term_at(m.index);
  m.commit = _hard.commit;
  pr.commit_sent = m.commit;
  if (room) {
    m.entries = _log.slice(pr.next, _log.last_index(), _opts.batch_entries, _opts.batch_bytes);
    pr.sent(m.entries.back().index);
  } else {
    m.heartbeat = true;
    m.context = _read_round;
  }
  send(std::move(m));
}

void node::send_snapshot(node_id to, progress& pr) {
  ASSERT(_snapshot, "a compacted log without its snapshot");
  if (!pr.snapshotting || pr.snapshot_index != _snapshot->index) {
    pr.snapshotting = true;
    pr.snapshot_index = _snapshot->index;
    pr.snapshot_offset = 0;
  }
  pr.snapshot_quiet = 0;
  message m;
  m.type = msg_type::snapshot;
  m.to = to;
  m.term = _hard.term;
  m.context = ++pr.snapshot_seq;
  m.index = _snapshot->index;
  m.log_term = _snapshot->term;
  m.offset = pr.snapshot_offset;
  m.chunk = _snapshot->data.substr(std::min<size_t>(m.offset, _snapshot->data.size()), _opts.snapshot_chunk_bytes);
  m.last = m.offset + m.chunk.size() >= _snapshot->data.size();
  m.config = _snapshot->config;
  send(std::move(m));
}

message node::heard_leader(const message& m, msg_type reply) {
  if (_role != role::follower) become_follower(m.term, m.from);
  _leader = m.from;
  _election_elapsed = 0;
  message r;
  r.type = reply;
  r.to = m.from;
  r.term = _hard.term;
  return r;
}

void node::on_snapshot(const message& m) {
  message r = heard_leader(m, msg_type::snapshot_reply);
  r.context = m.context;
  // It has all of that already: committed, or the log holds the snapshot's
  // last entry, so (log matching) everything before it. Then it commits that
  // instead of installing: an install replaces the stored log and writes the
  // entries it kept after the snapshot again, and a crash in between would
  // lose entries it had acknowledged (found by the simulation's torn writes:
  // the leader's match then stays above the follower's log for good).
  if (m.index <= _hard.commit || _log.term_at(m.index) == m.log_term) {
    _hard.commit = std::max(_hard.commit, m.index);
    _incoming.reset();
    r.granted = true;
    r.match = m.index;
    return send(std::move(r));
  }
  if (m.offset == 0) _incoming = snapshot{m.index, m.log_term, m.config, {}};
  if (!_incoming || _incoming->index != m.index || m.offset != _incoming->data.size()) {
    // Not the chunk it needs: where to go on from.
    r.offset = _incoming && _incoming->index == m.index ? _incoming->data.size() : 0;
    return send(std::move(r));
  }
  _incoming->data += m.chunk;
  r.offset = _incoming->data.size();
  if (m.last) {
    _log.restore(m.index, m.log_term);
    // The stored log is replaced: what stays after the snapshot is handed out again.
    _persisted = m.index;
    _unstable = m.index.next();
    _snapshot = std::move(*_incoming);
    _incoming.reset();
    _snapshot_ready = *_snapshot;
    _hard.commit = m.index;
    _applied = m.index;  // the state machine restarts from the snapshot
    reload_config();
    r.granted = true;
    r.match = m.index;
  }
  send(std::move(r));
}

void node::on_snapshot_reply(const message& m) {
  progress* p = peer(m.from);
  if (!p || !p->snapshotting) return;
  progress& pr = *p;
  pr.active = true;
  if (m.context != pr.snapshot_seq) return;  // an answer to a chunk sent before the one in flight
  if (!m.granted) {
    pr.snapshot_offset = m.offset;
    return send_snapshot(m.from, pr);
  }
  pr.snapshotting = false;
  pr.inflight = 0;
  pr.probing = true;
  if (m.match > pr.match) pr.match = m.match;
  pr.next = pr.match.next();
  maybe_commit();
  if (_role == role::leader) send_append(m.from, false);
}

void node::compact(index_t upto, std::string data) {
  ASSERT(upto <= _applied && upto > _log.snapshot_index(), "compact to %llu (applied %llu, snapshot %llu)",
         static_cast<unsigned long long>(upto.value), static_cast<unsigned long long>(_applied.value),
         static_cast<unsigned long long>(_log.snapshot_index().value));
  std::string config;
  for (uint64_t i = upto.value; i > _log.snapshot_index().value && config.empty(); --i)
    if (_log.at(index_t(i)).kind == entry_kind::config) config = _log.at(index_t(i)).data;
  if (config.empty()) config = base_config().encode();
  _snapshot = snapshot{upto, *_log.term_at(upto), std::move(config), std::move(data)};
  _log.compact(upto);
}

void node::step(const message& m) {
  if (m.term > _hard.term) {
    bool future_round = m.type == msg_type::pre_vote || (m.type == msg_type::pre_vote_reply && m.granted);
    // §4.2.3: while a leader is heard from, a vote request is a disruption, not an election.
    bool leased = _opts.check_quorum && _leader != node_id() && _election_elapsed < _opts.election_ticks;
    if (m.type == msg_type::vote && leased && !m.transfer) return;
    bool from_leader = m.type == msg_type::append || m.type == msg_type::snapshot;
    if (!future_round) become_follower(m.term, from_leader ? m.from : node_id());
  } else if (m.term < _hard.term) {
    // A stale leader or pre-candidate hears the current term (and steps down or gives up).
    if (m.type == msg_type::append || m.type == msg_type::snapshot || m.type == msg_type::pre_vote) {
      message r;
      r.type = m.type == msg_type::append     ? msg_type::append_reply
               : m.type == msg_type::snapshot ? msg_type::snapshot_reply
                                              : msg_type::pre_vote_reply;
      r.to = m.from;
      r.term = _hard.term;
      r.match = _log.last_index();
      r.heartbeat = m.heartbeat;
      send(std::move(r));
    }
    return;
  }
  switch (m.type) {
    case msg_type::pre_vote:
    case msg_type::vote: on_vote_request(m); break;
    case msg_type::pre_vote_reply:
    case msg_type::vote_reply: on_vote_reply(m); break;
    case msg_type::append: on_append(m); break;
    case msg_type::append_reply:
      if (_role == role::leader) on_append_reply(m);
      break;
    case msg_type::snapshot: on_snapshot(m); break;
    case msg_type::snapshot_reply:
      if (_role == role::leader) on_snapshot_reply(m);
      break;
    case msg_type::timeout_now:
      // No pre-vote: the leader asked for it (unless this node may not lead).
      if (_role != role::leader && may_campaign()) campaign(false, true);
      break;
  }
}

void node::on_vote_request(const message& m) {
  message r;
  r.to = m.from;
  bool fresh_log = _log.up_to_date(m.index, m.log_term);
  if (m.type == msg_type::pre_vote) {
    bool leader_heard = _role == role::leader || (_leader != node_id() && _election_elapsed < _opts.election_ticks);
    r.type = msg_type::pre_vote_reply;
    r.granted = m.term > _hard.term && fresh_log && !leader_heard;
    r.term = r.granted ? m.term : _hard.term;
  } else {
    r.type = msg_type::vote_reply;
    r.granted = (_hard.vote == node_id() || _hard.vote == m.from) && fresh_log && _role == role::follower;
    r.term = _hard.term;
    if (r.granted) {
      _hard.vote = m.from;
      reset_election_timer();
    }
  }
  send(std::move(r));
}

void node::on_vote_reply(const message& m) {
  bool pre = m.type == msg_type::pre_vote_reply;
  if (!_votes || _role != (pre ? role::pre_candidate : role::candidate)) return;
  if (pre ? m.term != _hard.term.next() && m.granted : m.term != _hard.term) return;
  switch (_votes->record(m.from, m.granted)) {
    case vote_round::outcome::won:
      if (pre) campaign(false);
      else become_leader();
      break;
    case vote_round::outcome::lost: become_follower(_hard.term, node_id()); break;
    case vote_round::outcome::pending: break;
  }
}

void node::unstable_from(index_t i) {
  if (i < _unstable) _unstable = i;
  if (i <= _persisted) _persisted = index_t(i.value - 1);
}

void node::on_append(const message& m) {
  message r = heard_leader(m, msg_type::append_reply);
  r.heartbeat = m.heartbeat;
  r.context = m.context;
  // Entries before this node's snapshot are committed, so they match: what
  // follows them is compared as usual.
  if (m.index < _log.snapshot_index()) {
    message trimmed = m;
    trimmed.entries.clear();
    for (const entry& e : m.entries)
      if (e.index > _log.snapshot_index()) trimmed.entries.push_back(e);
    trimmed.index = _log.snapshot_index();
    trimmed.log_term = _log.snapshot_term();
    if (trimmed.entries.empty() || trimmed.entries.front().index == trimmed.index.next()) return on_append(trimmed);
    r.match = _log.last_index();
    return send(std::move(r));
  }
  auto have = _log.term_at(m.index);
  if (!have || *have != m.log_term) {
    // Not matching before these entries: where to probe next (§3.5).
    r.match = have ? index_t(m.index.value - 1) : _log.last_index();
    send(std::move(r));
    return;
  }
  if (auto changed = _log.merge(m.entries)) {
    ASSERT(*changed > _hard.commit || _opts.unsafe_commit_without_quorum,
           "node %llu: an append from %llu rewrites committed index %llu",
           static_cast<unsigned long long>(_opts.id.value), static_cast<unsigned long long>(m.from.value),
           static_cast<unsigned long long>(changed->value));
    unstable_from(*changed);
    // A config entry came or went: the latest one rules from now on.
    if (*changed <= _config_index ||
        std::any_of(m.entries.begin(), m.entries.end(), [](const entry& e) { return e.kind == entry_kind::config; }))
      reload_config();
  }
  index_t last_new(m.index.value + m.entries.size());
  // (A late append may end before what is already committed here.)
  _hard.commit = std::max(_hard.commit, std::min(m.commit, last_new));
  r.granted = true;
  r.match = last_new;
  send(std::move(r));
}

void node::on_append_reply(const message& m) {
  progress* p = peer(m.from);
  if (!p) return;
  progress& pr = *p;
  if (!m.granted) {
    pr.refused(m.match);
  } else if (m.heartbeat) {
    pr.active = true;
    if (m.match > pr.match) pr.match = m.match;
    // The probe, or the answers of appends it already holds, may be lost: in
    // flight is then nothing, or the count would leak until it stalls.
    if (pr.probing || pr.match.next() >= pr.next) pr.inflight = 0;
  } else {
    pr.succeeded(m.match);
  }
  // Any answer at this term shows it still follows this leader.
  if (m.context) confirm_reads(m.from, m.context);
  maybe_commit();
  if (_role != role::leader) return;  // it removed itself (and `pr` is gone)
  send_append(m.from, false);
  if (m.from == _transfer_to && pr.match == _log.last_index()) {
    message t;
    t.type = msg_type::timeout_now;
    t.to = m.from;
    t.term = _hard.term;
    send(std::move(t));
  }
}

void node::maybe_commit() {
  // A majority of the voters (the leader among them only while it is one, §4.2.2).
  std::vector<index_t> matches;
  if (_config.is_voter(_opts.id)) matches.push_back(_persisted);
  for (const auto& [id, pr] : _peers)
    if (_config.is_voter(id)) matches.push_back(pr.match);
  std::sort(matches.begin(), matches.end(), std::greater<>());
  if (matches.size() < quorum()) return;
  index_t n = matches[quorum() - 1];
  if (_opts.unsafe_commit_without_quorum && matches.size() > 1) n = matches[1];
  if (n > _hard.commit && _log.term_at(n) == _hard.term) _hard.commit = n;
  // A leader the committed configuration removed hands over by stepping down.
  if (_hard.commit >= _config_index && !_config.is_voter(_opts.id)) become_follower(_hard.term, node_id());
}

ready node::take_ready() {
  ready r;
  r.snap = std::move(_snapshot_ready);
  _snapshot_ready.reset();
  for (uint64_t i = std::max(_unstable.value, _log.snapshot_index().value + 1); i <= _log.last_index().value; ++i)
    r.entries.push_back(_log.at(index_t(i)));
  _persisted = _log.last_index();
  _unstable = _persisted.next();
  if (_role == role::leader) maybe_commit();  // its own copy counts once handed out
  term_t durable_term = _saved.term;  // as of the readies before this one
  // raft/storage writes the hard state before the snapshot and the entries:
  // its commit index must not cover what this ready writes, or a crash in
  // between restores it over the stale suffix they were to replace, and
  // applies that (found by the simulation's torn writes). So it stays at what
  // is on disk already (a snapshot's index counts once the snapshot is); the
  // rest goes out with the next ready.
  hard_state save = _hard;
  if (r.snap) save.commit = std::min(save.commit, _saved.commit);
  if (!r.entries.empty()) save.commit = std::min(save.commit, index_t(r.entries.front().index.value - 1));
  if (save != _saved) {
    r.hard = save;
    _saved = save;
  }
  // A leader's appends claim its term: they wait for it to be durable if it
  // is new in this ready (a sole voter wins its election within one step;
  // the simulation checks that nothing is sent at a term not on disk).
  if (_saved.term != durable_term) {
    _outbox.insert(_outbox.begin(), std::make_move_iterator(_outbox_now.begin()),
                   std::make_move_iterator(_outbox_now.end()));
    _outbox_now.clear();
  }
  r.messages_now = std::move(_outbox_now);
  _outbox_now.clear();
  r.messages = std::move(_outbox);
  _outbox.clear();
  // Followers hear of a new commit index with this ready, not at the next
  // heartbeat (a client of a follower waits for the follower to apply its
  // command) -- but only once the ready is durable: the index may count this
  // leader's own copy of entries the ready writes, and a leader that crashed
  // before writing them could otherwise win again without them while a
  // follower applied them (the simulation found exactly that).
  if (_role == role::leader) {
    for (auto& [id, pr] : _peers)
      if (pr.commit_sent < _hard.commit && !pr.snapshotting && pr.next > _log.snapshot_index()) send_append(id, true);
    for (auto* q : {&_outbox_now, &_outbox}) {
      for (auto& m : *q) r.messages.push_back(std::move(m));
      q->clear();
    }
  }
  for (uint64_t i = _applied.value + 1; i <= _hard.commit.value; ++i) r.committed.push_back(_log.at(index_t(i)));
  _applied = std::max(_applied, _hard.commit);
  r.reads = std::move(_reads_ready);
  _reads_ready.clear();
  r.reads_lost = std::move(_reads_lost);
  _reads_lost.clear();
  return r;
}

}  // namespace xerv::raft
