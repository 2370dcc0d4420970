#pragma once
// The vocabulary of the protocol: strong types for terms, log indexes and node
// ids (a term passed as an index does not compile), log entries and the
// messages nodes exchange. Plain values: the transport encodes them, the
// simulation passes them as they are.

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

namespace xerv::raft {

template <class Tag>
struct strong {
  uint64_t value = 0;
  constexpr strong() = default;
  constexpr explicit strong(uint64_t v) : value(v) {}
  constexpr auto operator<=>(const strong&) const = default;
  constexpr strong next() const { return strong(value + 1); }
};
using term_t = strong<struct term_tag>;
using index_t = strong<struct index_tag>;
using node_id = strong<struct node_tag>;  // 0: none

enum class entry_kind : uint8_t {
  data,    // the state machine's (empty: the no-op a new leader appends, dissertation §3.6.2)
  config,  // a membership change: raft/membership.h's encoding
};

struct entry {
  term_t term;
  index_t index;
  std::string data;
  entry_kind kind = entry_kind::data;
};

enum class msg_type : uint8_t {
  pre_vote,        // §9.6: would you vote for me at `term`? (nobody's term changes)
  pre_vote_reply,
  vote,            // §3.4 RequestVote
  vote_reply,
  append,          // §3.5 AppendEntries (no entries: a heartbeat)
  append_reply,
  timeout_now,     // §3.10: a leader handing over tells its successor to campaign now
  snapshot,        // §5.3 InstallSnapshot, one chunk
  snapshot_reply,
};
const char* to_string(msg_type t);

struct message {
  msg_type type = msg_type::append;
  node_id from, to;
  term_t term;
  // pre_vote, vote: the candidate's last entry. append: the entry before `entries`.
  index_t index;
  term_t log_term;
  std::vector<entry> entries;
  index_t commit;       // append: the leader's commit index
  bool granted = false; // vote replies; append_reply: success
  bool heartbeat = false;  // append without entries, and its reply (not counted in flight)
  bool transfer = false;   // vote: the election of a leadership transfer (taken despite a live leader)
  uint64_t context = 0;    // heartbeat and its reply: the ReadIndex round it confirms (§6.4)
  // snapshot: `index`/`log_term` are its last entry; the chunk at `offset`
  // (`last`: the final one) and the configuration it holds. snapshot_reply:
  // `offset` is what the follower has received (where to go on), `granted`
  // with `match` once it installed it.
  uint64_t offset = 0;
  std::string chunk;
  bool last = false;
  std::string config;
  // append_reply: success: the follower's last index matching the leader's;
  // refused: its last index (where the leader probes next).
  index_t match;
};

// The state machine as of `index` (§5.1), with the configuration then.
struct snapshot {
  index_t index;
  term_t term;
  std::string config;  // raft/membership.h's encoding
  std::string data;
};

struct hard_state {
  term_t term;
  node_id vote;
  index_t commit;
  bool operator==(const hard_state&) const = default;
};

}  // namespace xerv::raft
