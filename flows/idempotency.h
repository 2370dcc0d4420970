#pragma once
// Idempotency keys of one shard (SPEC §5): the trace an `Idempotency-Key` of a
// pipeline first started, for `ttl` after that admission. Keys hash to an owner
// shard (owner_shard), so every request with the same key meets the same table.
//
// Durable through the WAL: the key's record (journal_type::idempotency) is
// appended before the admission it names, so a durable admission implies a
// durable key. When the WAL is about to delete a segment, the keys whose record
// is in it and that have not expired are written again into the active segment
// (relog): keys outlive the retention of the traces they started, without
// pinning old segments.
//
// Bounded: at most `max` keys; beyond, the oldest is forgotten (a replay of a
// forgotten key starts a new trace). Memory per key: the pipeline name and the
// key, plus about 100 bytes.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/trace_id.h"

namespace xerv::core {
class wal;
struct wal_record;
}  // namespace xerv::core

namespace xerv::flows {

struct idempotency_options {
  std::chrono::milliseconds ttl{24 * 3'600'000};
  size_t max = 100'000;  // keys per shard
};

// The shard that owns `key` of `pipeline`, of `shards`.
unsigned idempotency_owner(std::string_view pipeline, std::string_view key, unsigned shards);

// A usable key: 1 to 255 visible ASCII characters.
bool valid_idempotency_key(std::string_view key);

class idempotency_table {
 public:
  explicit idempotency_table(idempotency_options opts) : _opts(opts) {}

  // The trace `key` of `pipeline` started, unless it has expired by `now_ms`.
  std::optional<core::trace_id> find(std::string_view pipeline, std::string_view key, uint64_t now_ms);
  // Records a new key (journaled into `wal` when there is one); the caller then
  // appends the admission.
  void insert(std::string_view pipeline, std::string_view key, const core::trace_id& id, uint64_t now_ms,
              core::wal* wal);
  // The admission failed: the key names no trace.
  void erase(std::string_view pipeline, std::string_view key);
  // Recovery: a journal_type::idempotency record (false: it does not decode)...
  bool replay(const core::wal_record& r, uint64_t now_ms);
  // ...then, after the log: a key whose first record is not followed by its
  // trace's admission (a torn tail cut between them, or a refused admission)
  // is dropped; `admitted` says whether the log holds a trace's start.
  template <class Admitted>
  void end_replay(Admitted admitted) {
    std::erase_if(_keys, [&](const auto& kv) { return kv.second.unconfirmed && !admitted(kv.second.id); });
    sort_order();
  }
  // The WAL is about to delete `segment`: live keys recorded there move to the
  // active segment. False when the WAL refused one (the segment must stay).
  bool relog(uint64_t segment, core::wal& wal, uint64_t now_ms);

  size_t size() const { return _keys.size(); }
  const idempotency_options& options() const { return _opts; }

 private:
  struct entry {
    core::trace_id id;
    uint64_t expires_ms = 0;
    uint64_t segment = 0;      // where its newest record is (0: not journaled)
    bool unconfirmed = false;  // recovery: only its first record seen so far
  };
  void put(std::string k, const entry& e);
  bool append(core::wal& wal, std::string_view k, entry& e, bool relogged);
  void trim(uint64_t now_ms);
  void sort_order();

  idempotency_options _opts;
  std::unordered_map<std::string, entry> _keys;  // pipeline '\0' key
  // Keys in the order they expire (the ttl is one for all); an element whose
  // expiry no longer matches its key's is stale and skipped.
  std::deque<std::pair<uint64_t, std::string>> _order;
  std::string _scratch;
};

}  // namespace xerv::flows
