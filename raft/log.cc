#include "raft/log.h"

namespace xerv::raft {

std::optional<term_t> raft_log::term_at(index_t i) const {
  if (i.value == 0) return term_t();
  if (i > last_index()) return std::nullopt;
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
    auto have = term_at(e.index);
    if (have && *have == e.term) continue;  // already there
    // A conflict (or the end): drop everything from here and take the rest.
    _entries.resize(e.index.value - 1);
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
