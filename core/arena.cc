#include "core/arena.h"

#include <sys/mman.h>

#include <bit>
#include <cstring>

#include "core/metrics.h"
#include "io/file.h"
#include "io/log.h"

namespace xerv::core {
namespace {
gauge g_size{"xerv_arena_size_bytes", "Arena bytes held by running traces"};
gauge g_capacity{"xerv_arena_capacity_bytes", "Arena bytes mapped (XERV_ARENA_BYTES per shard)"};
counter g_overflow{"xerv_arena_overflow_total", "Values kept on the heap because the arena was full"};
}  // namespace

io::result<std::unique_ptr<arena>> arena::create(uint64_t capacity) {
  uint32_t chunks = uint32_t(capacity / chunk_bytes);
  ASSERT(chunks > 0, "arena capacity %llu below one chunk", static_cast<unsigned long long>(capacity));
  capacity = uint64_t(chunks) * chunk_bytes;
  // Once at start-up, before the shard serves anything.
  void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return io::from_errno(errno);
  g_capacity.add(int64_t(capacity));
  return std::unique_ptr<arena>(new arena(static_cast<char*>(p), chunks));
}

arena::arena(char* base, uint32_t chunks) : _base(base), _chunks(chunks), _bits((chunks + 63) / 64, 0) {
  // Bits past the end read as used, so searches never run off the map.
  for (uint32_t i = chunks; i < _bits.size() * 64; ++i) _bits[i / 64] |= uint64_t(1) << (i % 64);
}

arena::~arena() {
  ASSERT(_used == 0, "arena destroyed with %u chunks in use", _used);
  munmap(_base, capacity());
  g_capacity.add(-int64_t(capacity()));
}

void arena::mark(uint32_t first, uint32_t n, bool used) {
  for (uint32_t i = first; i < first + n; ++i) {
    ASSERT(is_free(i) == used, "arena chunk %u marked twice", i);
    _bits[i / 64] ^= uint64_t(1) << (i % 64);
  }
  _used += used ? n : -n;
  g_size.add(used ? int64_t(n) * chunk_bytes : -int64_t(n) * chunk_bytes);
}

uint64_t arena::allocate(uint32_t n) {
  if (n == 0 || n > _chunks - _used) return ~uint64_t(0);
  // First fit from the hint, wrapping once; whole used words are skipped.
  for (uint32_t pass = 0, i = _hint; pass < 2; ++pass, i = 0) {
    uint32_t end = pass == 0 ? _chunks : std::min(_hint + n, _chunks);
    while (i + n <= end) {
      if (_bits[i / 64] == ~uint64_t(0)) {
        i = (i / 64 + 1) * 64;
        continue;
      }
      uint32_t run = 0;
      while (run < n && is_free(i + run)) ++run;
      if (run == n) {
        mark(i, n, true);
        _hint = i + n < _chunks ? i + n : 0;
        return uint64_t(i) * chunk_bytes;
      }
      i += run + 1;
    }
  }
  return ~uint64_t(0);
}

void arena::release(uint64_t offset, uint32_t n) {
  ASSERT(offset % chunk_bytes == 0);
  mark(uint32_t(offset / chunk_bytes), n, false);
}

arena_region::~arena_region() {
  for (const run& r : _runs) _a->release(r.offset, r.chunks);
}

arena_ref arena_region::store(std::string_view bytes) {
  ASSERT(!bytes.empty(), "an encoded value is never empty");
  if (_a && _end - _next < bytes.size()) {
    uint32_t n = uint32_t((bytes.size() + arena::chunk_bytes - 1) / arena::chunk_bytes);
    uint64_t off = _a->allocate(n);
    if (off != ~uint64_t(0)) {
      _runs.push_back({off, n});
      _next = off;
      _end = off + uint64_t(n) * arena::chunk_bytes;
    }
  }
  if (_a && _end - _next >= bytes.size()) {
    arena_ref r = _next;
    std::memcpy(_a->at(_next), bytes.data(), bytes.size());
    _next += bytes.size();
    return r;
  }
  if (_a) g_overflow.inc();
  _heap.emplace_back(bytes);
  return heap_bit | (_heap.size() - 1);
}

}  // namespace xerv::core
