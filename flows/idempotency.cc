#include "flows/idempotency.h"

#include "core/wal.h"
#include "flows/journal.h"

namespace xerv::flows {
namespace {

std::string joined(std::string_view pipeline, std::string_view key) {
  std::string k;
  k.reserve(pipeline.size() + 1 + key.size());
  k.append(pipeline).push_back('\0');
  k.append(key);
  return k;
}

std::pair<std::string_view, std::string_view> split(std::string_view k) {
  size_t nul = k.find('\0');
  return {k.substr(0, nul), k.substr(nul + 1)};
}

}  // namespace

unsigned idempotency_owner(std::string_view pipeline, std::string_view key, unsigned shards) {
  // FNV-1a: stable across builds and restarts, unlike std::hash.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  };
  mix(pipeline);
  mix(std::string_view("\0", 1));
  mix(key);
  return shards ? unsigned(h % shards) : 0;
}

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (unsigned char c : key)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

std::optional<core::trace_id> idempotency_table::find(std::string_view pipeline, std::string_view key,
                                                      uint64_t now_ms) {
  trim(now_ms);
  auto it = _keys.find(joined(pipeline, key));
  if (it == _keys.end() || it->second.expires_ms <= now_ms) return std::nullopt;
  return it->second.id;
}

void idempotency_table::insert(std::string_view pipeline, std::string_view key, const core::trace_id& id,
                               uint64_t now_ms, core::wal* wal) {
  std::string k = joined(pipeline, key);
  put(k, entry{id, now_ms + uint64_t(_opts.ttl.count()), 0, false});
  if (wal) append(*wal, k, _keys.at(k), false);
}

void idempotency_table::erase(std::string_view pipeline, std::string_view key) { _keys.erase(joined(pipeline, key)); }

bool idempotency_table::replay(const core::wal_record& r, uint64_t now_ms) {
  auto rec = decode_idempotency(r.payload);
  if (!rec) return false;
  // A later record of the same key (a relog) replaces the earlier one.
  if (rec->expires_ms > now_ms)
    put(joined(rec->pipeline, rec->key), entry{rec->id, rec->expires_ms, r.segment, !rec->relogged});
  return true;
}

bool idempotency_table::relog(uint64_t segment, core::wal& wal, uint64_t now_ms) {
  trim(now_ms);
  bool all = true;
  for (auto& [k, e] : _keys)
    if (e.segment == segment && e.expires_ms > now_ms) all = append(wal, k, e, true) && all;
  return all;
}

void idempotency_table::put(std::string k, const entry& e) {
  if (auto it = _keys.find(k); it != _keys.end()) {
    bool same_expiry = it->second.expires_ms == e.expires_ms;
    it->second = e;
    if (same_expiry) return;  // its place in _order stands
  } else {
    _keys.emplace(k, e);
  }
  _order.emplace_back(e.expires_ms, std::move(k));
  while (_keys.size() > _opts.max) {
    auto& [exp, oldest] = _order.front();
    if (auto o = _keys.find(oldest); o != _keys.end() && o->second.expires_ms == exp) _keys.erase(o);
    _order.pop_front();
  }
}

bool idempotency_table::append(core::wal& wal, std::string_view k, entry& e, bool relogged) {
  auto [pipeline, key] = split(k);
  encode(_scratch, idempotency_record{e.id, e.expires_ms, std::string(pipeline), std::string(key), relogged});
  // A refused append (the disk refuses writes) leaves the key in memory only;
  // the admission that follows it is refused the same way.
  if (!wal.append(uint32_t(journal_type::idempotency), _scratch)) return false;
  e.segment = wal.active_segment();
  return true;
}

// After recovery: records replay in log order, not expiry order (a relog keeps
// its key's expiry), and the front of _order must be the next to expire.
void idempotency_table::sort_order() {
  _order.clear();
  for (const auto& [k, e] : _keys) _order.emplace_back(e.expires_ms, k);
  std::sort(_order.begin(), _order.end());
}

void idempotency_table::trim(uint64_t now_ms) {
  while (!_order.empty() && _order.front().first <= now_ms) {
    auto& [exp, k] = _order.front();
    if (auto o = _keys.find(k); o != _keys.end() && o->second.expires_ms == exp) _keys.erase(o);
    _order.pop_front();
  }
}

}  // namespace xerv::flows
