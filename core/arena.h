#pragma once
// The per-shard memory-mapped arena that holds the input and node outputs of the
// traces running on a shard (SPEC §6). Its content is a cache of what the WAL
// makes durable, so it starts empty on every run and needs no file: it is an
// anonymous private mapping, populated at start. (A file-backed shared mapping
// made the first write to each page a page_mkwrite fault into ext4, which waits
// for the journal the WAL's fdatasyncs commit: the shard stalled for tens of
// milliseconds at a time until every page had been touched, and again after
// each writeback of pages nothing needed on disk.) Memory is handed out in
// 4 KiB chunks tracked by a bitmap.
//
// arena_region is one trace's append-only view: values are copied in once and
// addressed by offset (an arena_ref), never by a stored pointer; all its chunks go
// back when the region is destroyed, i.e. when the trace ends. When the arena is
// full a region keeps further values on the heap (counted in
// xerv_arena_overflow_total) rather than failing the trace.
//
// Lives on its shard; no locks.

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::core {

class arena {
 public:
  static constexpr uint32_t chunk_bytes = 4096;

  // Maps `capacity` bytes (rounded down to whole chunks) and faults them in, so
  // that a shard short of memory fails at start, not under load.
  static io::result<std::unique_ptr<arena>> create(uint64_t capacity);
  ~arena();
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;

  uint64_t capacity() const { return uint64_t(_chunks) * chunk_bytes; }
  uint64_t used_bytes() const { return uint64_t(_used) * chunk_bytes; }
  char* at(uint64_t offset) const { return _base + offset; }

  // A run of `n` contiguous free chunks: the offset of the first, or ~0 when none.
  uint64_t allocate(uint32_t n);
  void release(uint64_t offset, uint32_t n);

 private:
  arena(char* base, uint32_t chunks);
  bool is_free(uint32_t i) const { return !(_bits[i / 64] >> (i % 64) & 1); }
  void mark(uint32_t first, uint32_t n, bool used);

  char* _base;
  uint32_t _chunks;
  uint32_t _used = 0;
  uint32_t _hint = 0;  // where the next search starts
  std::vector<uint64_t> _bits;
};

using arena_ref = uint64_t;

class arena_region {
 public:
  explicit arena_region(arena* a) : _a(a) {}  // null: everything on the heap
  ~arena_region();
  arena_region(const arena_region&) = delete;
  arena_region& operator=(const arena_region&) = delete;

  // Copies an encoded value in.
  arena_ref store(std::string_view bytes);
  value_ref get(arena_ref r) const {
    if (r & heap_bit) return value_ref(_heap[r & ~heap_bit].data());
    return value_ref(_a->at(r));
  }

 private:
  static constexpr arena_ref heap_bit = arena_ref(1) << 63;
  struct run {
    uint64_t offset;
    uint32_t chunks;
  };
  arena* _a;
  std::vector<run> _runs;
  uint64_t _next = 0, _end = 0;  // free space in the newest run
  std::deque<std::string> _heap;  // a deque: elements never move
};

}  // namespace xerv::core
