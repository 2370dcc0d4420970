#pragma once
// Bounded single-producer/single-consumer ring of pointers between two shards.
// The producer stages entries with push() and makes them visible in one batch with
// publish(); the consumer takes a batch with pop_batch() and frees the slots with one
// release store. Head and tail live on separate cache lines, each side caches the
// other's index, so an uncontended batch costs two atomic operations.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "io/assert.h"

namespace xerv::io {

template <class T>
class spsc_queue {
  static_assert(std::is_pointer_v<T>, "spsc_queue carries pointers");

 public:
  explicit spsc_queue(size_t capacity) : _mask(capacity - 1), _slots(new T[capacity]) {
    ASSERT(capacity >= 2 && (capacity & (capacity - 1)) == 0, "capacity %zu must be a power of two", capacity);
  }

  // Producer side.
  bool push(T item) {
    if (_staged_tail - _cached_head > _mask) {
      _cached_head = _head.load(std::memory_order_acquire);
      if (_staged_tail - _cached_head > _mask) return false;
    }
    _slots[_staged_tail & _mask] = item;
    ++_staged_tail;
    return true;
  }
  // Returns true when something new became visible.
  bool publish() {
    if (_staged_tail == _published_tail) return false;
    _published_tail = _staged_tail;
    _tail.store(_staged_tail, std::memory_order_release);
    return true;
  }

  // Consumer side: calls fn(item) for every visible entry, returns how many.
  template <class F>
  size_t pop_batch(F&& fn) {
    uint64_t tail = _tail.load(std::memory_order_acquire);
    uint64_t head = _consumer_head;
    if (head == tail) return 0;
    for (uint64_t i = head; i != tail; ++i) fn(_slots[i & _mask]);
    _consumer_head = tail;
    _head.store(tail, std::memory_order_release);
    return static_cast<size_t>(tail - head);
  }
  bool empty_for_consumer() const { return _tail.load(std::memory_order_acquire) == _consumer_head; }

  // Back-pressure hand-shake: a producer with entries it could not push asks to be
  // told when the consumer frees slots, so it can sleep instead of polling.
  void request_space_notice() { _space_wanted.store(true, std::memory_order_seq_cst); }
  // Consumer, after pop_batch() freed slots: true once per request.
  bool take_space_notice() {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // our head store before their flag
    return _space_wanted.load(std::memory_order_relaxed) && _space_wanted.exchange(false, std::memory_order_acq_rel);
  }

 private:
  const uint64_t _mask;
  std::unique_ptr<T[]> _slots;
  alignas(64) std::atomic<uint64_t> _head{0};  // written by the consumer
  uint64_t _consumer_head = 0;
  alignas(64) std::atomic<uint64_t> _tail{0};  // written by the producer
  uint64_t _staged_tail = 0;
  uint64_t _published_tail = 0;
  uint64_t _cached_head = 0;
  alignas(64) std::atomic<bool> _space_wanted{false};
};

}  // namespace xerv::io
