#pragma once
// One object per shard, reached by shard id. The table itself is created before
// the runtime runs and outlives it; slot i is set, read and cleared only on
// shard i. Code on one shard reaches another shard's object only by sending it
// a message that reads the slot there:
//
//   io::submit_to(s, [&engines] { return engines.local().find(...); });
//
// so nothing holds a pointer into another shard's memory, and modules get their
// per-shard collaborators passed in instead of through thread-local globals.

#include <vector>

#include "io/assert.h"
#include "io/runtime.h"

namespace xerv::io {

template <class T>
class sharded {
 public:
  explicit sharded(unsigned shards) : _slots(shards, nullptr) {}
  sharded(const sharded&) = delete;
  sharded& operator=(const sharded&) = delete;

  // On the owning shard, at its start and its end (nullptr).
  void set_local(T* v) { _slots.at(this_shard_id()) = v; }
  // This shard's object; null before set_local or after it was cleared.
  T* local_or_null() const { return _slots.at(this_shard_id()); }
  T& local() const {
    T* v = local_or_null();
    ASSERT(v, "shard %u has no object in this table", this_shard_id());
    return *v;
  }
  unsigned size() const { return unsigned(_slots.size()); }

 private:
  std::vector<T*> _slots;
};

}  // namespace xerv::io
