#pragma once
// A coroutine lock of one shard: holders run one at a time, in the order they
// asked, across their suspensions. For control operations that must not
// interleave (pipeline deploys, deletes, state changes), never for hot paths.
// Lives on one shard; only coroutines of that shard may take it.

#include <coroutine>
#include <deque>
#include <utility>

#include "io/reactor.h"

namespace xerv::io {

class fifo_lock {
 public:
  fifo_lock() = default;
  fifo_lock(const fifo_lock&) = delete;
  fifo_lock& operator=(const fifo_lock&) = delete;

  // Releases the lock when destroyed: ownership passes straight to the next
  // waiter, so a late arrival can never overtake it.
  class guard {
   public:
    explicit guard(fifo_lock* l) : _lock(l) {}
    guard(guard&& o) noexcept : _lock(std::exchange(o._lock, nullptr)) {}
    guard& operator=(guard&&) = delete;
    ~guard() {
      if (_lock) _lock->unlock();
    }

   private:
    fifo_lock* _lock;
  };

  struct acquire {
    fifo_lock& l;
    bool await_ready() noexcept { return !std::exchange(l._held, true); }
    void await_suspend(std::coroutine_handle<> h) { l._waiters.push_back(h); }
    guard await_resume() noexcept { return guard(&l); }
  };
  // `auto held = co_await lock.lock();`
  acquire lock() { return acquire{*this}; }

  bool held() const { return _held; }
  size_t waiting() const { return _waiters.size(); }

 private:
  void unlock() {
    if (_waiters.empty()) {
      _held = false;
      return;
    }
    auto next = _waiters.front();
    _waiters.pop_front();
    this_reactor().schedule(next);  // still held: it belongs to `next` now
  }

  bool _held = false;
  std::deque<std::coroutine_handle<>> _waiters;
};

}  // namespace xerv::io
