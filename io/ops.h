#pragma once
// Awaitables over the shard's ring and timers: one SQE per await, optional
// cancellation, results as values. Every awaitable here must be awaited on the shard
// that created it.

#include <chrono>
#include <coroutine>
#include <cerrno>

#include "io/cancel.h"
#include "io/reactor.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::io {

struct cqe_result {
  int res = 0;
  uint32_t flags = 0;
};

// Maps a failed CQE result to an error, naming the cancel reason when we cancelled it.
std::error_code cqe_error(int res, const cancel_source* cs);

// Submits one SQE filled by prep(sqe) and resumes the awaiting coroutine with its
// CQE. On cancel the op is asked to stop with IORING_OP_ASYNC_CANCEL; it still
// completes through the ring (usually with -ECANCELED), so its memory stays valid.
template <class Prep>
class ring_op : completion, cancel_source::hook {
 public:
  ring_op(Prep prep, cancel_source* cs = nullptr) : _prep(prep), _cs(cs) {}

  bool await_ready() noexcept {
    if (_cs && _cs->cancelled()) {
      _out.res = -ECANCELED;
      return true;
    }
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    _h = h;
    io_uring_sqe* sqe = this_reactor().get_sqe();
    _prep(sqe);
    on_complete = &done;
    io_uring_sqe_set_data(sqe, static_cast<completion*>(this));
    if (_cs) {
      fire = &cancel_now;
      _cs->attach(this);
    }
  }
  cqe_result await_resume() noexcept { return _out; }

 private:
  static void done(completion* c, int res, uint32_t flags) {
    auto* self = static_cast<ring_op*>(c);
    cancel_source::detach(self);
    self->_out = {res, flags};
    self->_h.resume();
  }
  static void cancel_now(cancel_source::hook* h) {
    auto* self = static_cast<ring_op*>(h);
    io_uring_sqe* sqe = this_reactor().get_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(static_cast<completion*>(self)), 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
  }

  Prep _prep;
  cancel_source* _cs;
  std::coroutine_handle<> _h;
  cqe_result _out;
};

// Suspends for at least `d` on the shard's timer heap; completes early with the
// cancel reason if `cs` fires.
class sleep_for : timer_entry, cancel_source::hook {
 public:
  explicit sleep_for(std::chrono::nanoseconds d, cancel_source* cs = nullptr) : _d(d), _cs(cs) {}
  bool await_ready() noexcept {
    if (_cs && _cs->cancelled()) {
      _err = _cs->reason();
      return true;
    }
    return false;
  }
  void await_suspend(std::coroutine_handle<> h);
  result<void> await_resume() noexcept {
    if (_err != errc::ok) return _err;
    return {};
  }

 private:
  static void on_timer(timer_entry* t);
  static void on_cancel(cancel_source::hook* h);
  std::chrono::nanoseconds _d;
  cancel_source* _cs;
  std::coroutine_handle<> _h;
  errc _err = errc::ok;
};

// Lets the other ready coroutines of this shard run before continuing.
struct yield {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { this_reactor().schedule(h); }
  void await_resume() const noexcept {}
};

// Fires cs.cancel(errc::timed_out) when `d` elapses, unless destroyed first. Keep it
// alive across the awaits it bounds.
class deadline : timer_entry {
 public:
  deadline(std::chrono::nanoseconds d, cancel_source& cs);
  ~deadline();
  deadline(const deadline&) = delete;
  deadline& operator=(const deadline&) = delete;

 private:
  static void on_timer(timer_entry* t);
  cancel_source& _cs;
};

// Awaits t, cancelling `cs` with errc::timed_out after `d`. The task must pass `cs`
// to the operations it awaits (or poll it) for the timeout to take effect.
template <class T>
task<T> with_timeout(std::chrono::nanoseconds d, cancel_source& cs, task<T> t) {
  deadline guard(d, cs);
  co_return co_await std::move(t);
}

}  // namespace xerv::io
