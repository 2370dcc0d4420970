#include "raft/log.h"

namespace xerv::raft {

std::optional<term_t> raft_log::term_at(index_t i) const {
  if (i == _base) return _base_term;
  if (i < _base || i > last_index()) return std::nullopt;
  return at(i).term;
}

index_t raft_log::append(term_t term, std::string data, entry_kind kind) {
  index_t i = last_index().next();
  _entries.push_back({term, i, std::move(data), kind});
  return i;
}

std::optional<index_t> raft_log::merge(const std::vector<entry>& es) {
  for (size_t k = 0; k < es.size(); ++k) {
    const entry& e = es[k];
    if (e.index <= _base) continue;  // committed, in the snapshot
    auto have = term_at(e.index);
    if (have && *have == e.term) continue;  // already there
    // A conflict (or the end): drop everything from here and take the rest.
    _entries.resize(e.index.value - _base.value - 1);
    _entries.insert(_entries.end(), es.begin() + k, es.end());
    return e.index;
  }
  return std::nullopt;
}

std::vector<entry> raft_log::slice(index_t from, index_t to, size_t max_entries, size_t max_bytes) const {
  std::vector<entry> out;
  size_t bytes = 0;
  for (uint64_t i = from.value; i <= to.value && out.size() < max_entries; ++i) {
    const entry& e = at(index_t(i));
    if (!out.empty() && bytes + e.data.size() > max_bytes) break;
    bytes += e.data.size();
    out.push_back(e);
  }
  return out;
}

}  // namespace xerv::raft

namespace xerv::raft {

void raft_log::compact(index_t i) {
  if (i <= _base) return;
  term_t t = *term_at(i);
  _entries.erase(_entries.begin(), _entries.begin() + long(i.value - _base.value));
  _base = i;
  _base_term = t;
}

void raft_log::restore(index_t i, term_t t) {
  if (term_at(i) == t && i <= last_index()) return compact(i);
  _entries.clear();
  _base = i;
  _base_term = t;
}

}  // namespace xerv::raft
