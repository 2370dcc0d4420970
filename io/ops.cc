#include "io/ops.h"

#include "io/gate.h"
#include "io/log.h"

namespace xerv::io {

std::error_code cqe_error(int res, const cancel_source* cs) {
  ASSERT(res < 0, "cqe_error on success %d", res);
  if (res == -ECANCELED && cs && cs->cancelled()) return make_error_code(cs->reason());
  if (res == -ECANCELED) return make_error_code(errc::cancelled);
  if (res == -ETIME) return make_error_code(errc::timed_out);
  return from_errno(-res);
}

void sleep_for::await_suspend(std::coroutine_handle<> h) {
  _h = h;
  timer_entry::fire = &on_timer;
  auto ns = _d.count() > 0 ? static_cast<uint64_t>(_d.count()) : 0;
  this_reactor().add_timer(this, monotonic_ns() + ns);
  if (_cs) {
    cancel_source::hook::fire = &on_cancel;
    _cs->attach(this);
  }
}

void sleep_for::on_timer(timer_entry* t) {
  auto* self = static_cast<sleep_for*>(t);
  cancel_source::detach(self);
  self->_h.resume();
}

void sleep_for::on_cancel(cancel_source::hook* h) {
  auto* self = static_cast<sleep_for*>(h);
  this_reactor().remove_timer(self);
  self->_err = self->_cs->reason();
  // Resume from the ready queue, not inside whoever called cancel().
  this_reactor().schedule(self->_h);
}

deadline::deadline(std::chrono::nanoseconds d, cancel_source& cs) : _cs(cs) {
  fire = &on_timer;
  auto ns = d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0;
  this_reactor().add_timer(this, monotonic_ns() + ns);
}

deadline::~deadline() { this_reactor().remove_timer(this); }

void deadline::on_timer(timer_entry* t) { static_cast<deadline*>(t)->_cs.cancel(errc::timed_out); }

task<void> gate::close() {
  _closed = true;
  if (_count == 0) co_return;
  struct wait_empty {
    gate* g;
    bool await_ready() const noexcept { return g->_count == 0; }
    void await_suspend(std::coroutine_handle<> h) {
      ASSERT(!g->_closer, "gate closed twice concurrently");
      g->_closer = h;
    }
    void await_resume() const noexcept {}
  };
  co_await wait_empty{this};
}

namespace detail {
void log_spawn_failure(const char* what) { XLOG(error, "spawned task failed: %s", what); }
}  // namespace detail

namespace {
struct io_category_impl : std::error_category {
  const char* name() const noexcept override { return "xerv.io"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::ok: return "ok";
      case errc::cancelled: return "operation cancelled";
      case errc::timed_out: return "operation timed out";
      case errc::closed: return "closed";
      case errc::queue_full: return "queue full";
      case errc::not_supported: return "not supported";
    }
    return "unknown io error";
  }
};
}  // namespace

const std::error_category& io_category() {
  static io_category_impl cat;
  return cat;
}

}  // namespace xerv::io
