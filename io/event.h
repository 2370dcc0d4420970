#pragma once
// A shard-local wake-up: coroutines wait() until notify() or until the given
// cancel_source fires. Waiters recheck their condition after waking (a notify
// wakes every waiter; one of them may have taken what the notify was for).
// Lives on one shard; only coroutines of that shard may wait on it.

#include <coroutine>

#include "io/cancel.h"
#include "io/reactor.h"

namespace xerv::io {

class event {
 public:
  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  ~event() { ASSERT(_waiters == nullptr, "event destroyed with coroutines waiting on it"); }

  struct waiter : cancel_source::hook {
    event* ev = nullptr;
    std::coroutine_handle<> handle;
    waiter* next_waiter = nullptr;
    waiter* prev_waiter = nullptr;
    cancel_source* cs = nullptr;

    bool await_ready() const noexcept { return cs && cs->cancelled(); }
    void await_suspend(std::coroutine_handle<> h) {
      handle = h;
      ev->link(this);
      if (cs) {
        fire = [](cancel_source::hook* self) {
          auto* w = static_cast<waiter*>(self);
          w->ev->unlink(w);
          this_reactor().schedule(w->handle);
        };
        cs->attach(this);
      }
    }
    void await_resume() const noexcept {}
  };

  // Completes at the next notify(), or at once / when `cs` is cancelled.
  waiter wait(cancel_source& cs) {
    waiter w;
    w.ev = this;
    w.cs = &cs;
    return w;
  }

  void notify() {
    while (waiter* w = _waiters) {
      unlink(w);
      cancel_source::detach(w);
      this_reactor().schedule(w->handle);
    }
  }

  bool has_waiters() const { return _waiters != nullptr; }

 private:
  void link(waiter* w) {
    w->prev_waiter = nullptr;
    w->next_waiter = _waiters;
    if (_waiters) _waiters->prev_waiter = w;
    _waiters = w;
  }
  void unlink(waiter* w) {
    if (w->prev_waiter) w->prev_waiter->next_waiter = w->next_waiter;
    else _waiters = w->next_waiter;
    if (w->next_waiter) w->next_waiter->prev_waiter = w->prev_waiter;
    w->prev_waiter = w->next_waiter = nullptr;
  }

  waiter* _waiters = nullptr;
};

}  // namespace xerv::io
