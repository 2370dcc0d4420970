#pragma once
// cancel_source: shard-local cancellation. Operations awaiting the ring or a timer
// attach a hook; cancel() fires every hook once (ring ops submit an async cancel,
// timers resume at once) and the operations complete with the cancel reason
// (errc::cancelled, or errc::timed_out when a deadline fired it). Code that does no
// I/O checks cancelled() at its own yield points.

#include "io/assert.h"
#include "io/result.h"

namespace xerv::io {

class cancel_source {
 public:
  struct hook {
    hook* prev = nullptr;
    hook* next = nullptr;
    cancel_source* owner = nullptr;
    void (*fire)(hook*) = nullptr;
  };

  cancel_source() = default;
  cancel_source(const cancel_source&) = delete;
  cancel_source& operator=(const cancel_source&) = delete;
  ~cancel_source() { ASSERT(_hooks == nullptr, "cancel_source destroyed while operations still use it"); }

  bool cancelled() const { return _reason != errc::ok; }
  errc reason() const { return _reason; }

  void cancel(errc why = errc::cancelled) {
    ASSERT(why != errc::ok);
    if (cancelled()) return;
    _reason = why;
    while (_hooks) {
      hook* h = _hooks;
      detach(h);
      h->fire(h);
    }
  }

  void attach(hook* h) {
    ASSERT(h->owner == nullptr, "hook attached twice");
    h->owner = this;
    h->prev = nullptr;
    h->next = _hooks;
    if (_hooks) _hooks->prev = h;
    _hooks = h;
  }
  // Idempotent: a hook already fired or never attached is left alone.
  static void detach(hook* h) {
    cancel_source* cs = h->owner;
    if (!cs) return;
    if (h->prev) h->prev->next = h->next;
    else cs->_hooks = h->next;
    if (h->next) h->next->prev = h->prev;
    h->prev = h->next = nullptr;
    h->owner = nullptr;
  }

 private:
  hook* _hooks = nullptr;
  errc _reason = errc::ok;
};

}  // namespace xerv::io
