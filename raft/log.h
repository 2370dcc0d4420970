#pragma once
// The replicated log as one node holds it, in memory: the entries after its
// latest snapshot (§5). Which part of it is durable is the node's business
// (node::ready).

#include <optional>
#include <vector>

#include "raft/types.h"

namespace xerv::raft {

class raft_log {
 public:
  // Entries up to here are compacted into a snapshot (0: none).
  index_t snapshot_index() const { return _base; }
  term_t snapshot_term() const { return _base_term; }
  index_t last_index() const { return index_t(_base.value + _entries.size()); }
  term_t last_term() const { return _entries.empty() ? _base_term : _entries.back().term; }
  // The term of the entry at `i` (the snapshot's last entry included; index 0:
  // term 0); nullopt past the end or before the snapshot.
  std::optional<term_t> term_at(index_t i) const;
  // An entry held (snapshot_index() < i <= last_index()).
  const entry& at(index_t i) const { return _entries[i.value - _base.value - 1]; }
  // §3.6.1: a log with last entry (term, index) is at least as up to date as this one.
  bool up_to_date(index_t index, term_t term) const {
    return term > last_term() || (term == last_term() && index >= last_index());
  }
  index_t append(term_t term, std::string data, entry_kind kind = entry_kind::data);
  // Appends `es` (which follow entry `prev`), dropping a conflicting suffix
  // first (§3.5); entries the snapshot covers are skipped. Returns the first
  // index that changed (none: nullopt).
  std::optional<index_t> merge(const std::vector<entry>& es);
  // Entries [from, to], at most `max_bytes` of data (at least one).
  std::vector<entry> slice(index_t from, index_t to, size_t max_entries, size_t max_bytes) const;
  // A snapshot now covers the entries up to `i` (held): they go.
  void compact(index_t i);
  // A snapshot ending at (i, t) replaces the log; the entries after it stay
  // when the log holds that entry (§5.3), else everything goes.
  void restore(index_t i, term_t t);

 private:
  index_t _base;
  term_t _base_term;
  std::vector<entry> _entries;
};

}  // namespace xerv::raft
