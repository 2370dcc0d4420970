#pragma once
// The replicated log as one node holds it, in memory: entries from index 1
// (snapshots, which move the first index, come later). Which part of it is
// durable is the node's business (node::ready).

#include <optional>
#include <vector>

#include "raft/types.h"

namespace xerv::raft {

class raft_log {
 public:
  index_t last_index() const { return index_t(_entries.size()); }
  term_t last_term() const { return _entries.empty() ? term_t() : _entries.back().term; }
  // The term of the entry at `i` (index 0: term 0); nullopt past the end.
  std::optional<term_t> term_at(index_t i) const;
  const entry& at(index_t i) const { return _entries[i.value - 1]; }
  // §3.6.1: a log with last entry (term, index) is at least as up to date as this one.
  bool up_to_date(index_t index, term_t term) const {
    return term > last_term() || (term == last_term() && index >= last_index());
  }
  index_t append(term_t term, std::string data, entry_kind kind = entry_kind::data);
  // Appends `es` (which follow entry `prev`), dropping a conflicting suffix
  // first (§3.5). Returns the first index that changed (none: nullopt).
  std::optional<index_t> merge(const std::vector<entry>& es);
  // Entries [from, to], at most `max_bytes` of data (at least one).
  std::vector<entry> slice(index_t from, index_t to, size_t max_entries, size_t max_bytes) const;

 private:
  std::vector<entry> _entries;
};

}  // namespace xerv::raft
