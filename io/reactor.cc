#include "io/reactor.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "io/log.h"
#include "io/runtime.h"
#include "io/spsc_queue.h"

namespace xerv::io {
namespace {
thread_local reactor* t_reactor = nullptr;
[[maybe_unused]] constexpr uint64_t k_stall_ms = 20;

bool timer_less(const timer_entry* a, const timer_entry* b) {
  return a->deadline_ns != b->deadline_ns ? a->deadline_ns < b->deadline_ns : a->seq < b->seq;
}
}  // namespace

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

reactor& this_reactor() {
  ASSERT(t_reactor != nullptr, "not on a shard thread");
  return *t_reactor;
}
bool on_shard() { return t_reactor != nullptr; }
int current_shard_or_minus_one() { return t_reactor ? static_cast<int>(t_reactor->id()) : -1; }

reactor::reactor(runtime& rt, unsigned id, const runtime_options& opts, const ring_features& features)
    : _rt(rt), _id(id), _features(features) {
  ASSERT(t_reactor == nullptr, "one reactor per thread");
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  p.cq_entries = opts.ring_entries * 4;
  if (features.single_issuer) p.flags |= IORING_SETUP_SINGLE_ISSUER;
  if (features.defer_taskrun) p.flags |= IORING_SETUP_DEFER_TASKRUN;
  else if (features.coop_taskrun) p.flags |= IORING_SETUP_COOP_TASKRUN;
  int rc = io_uring_queue_init_params(opts.ring_entries, &_ring, &p);
  ASSERT(rc == 0, "io_uring_queue_init_params on shard %u: %s", id, strerror(-rc));
  _ring_fd = _ring.ring_fd;

  _event_fd = eventfd(0, EFD_CLOEXEC);
  ASSERT(_event_fd >= 0, "eventfd: %s", strerror(errno));
  _eventfd_op.on_complete = &on_eventfd;
  _log_op.on_complete = &on_log_written;
  t_reactor = this;
  arm_eventfd();
  setup_buffer_ring(opts);

  unsigned n = rt.shard_count();
  _out.resize(n);
  _in.resize(n);
  for (unsigned s = 0; s < n; ++s) {
    if (s == id) continue;
    _out[s].queue = &rt.queue(id, s);
    _in[s] = &rt.queue(s, id);
  }
  _ready.reserve(256);
  _running.reserve(256);
  _timers.reserve(256);
  _turn_end.reserve(16);
  _turn_end_running.reserve(16);
}

reactor::~reactor() {
  flush_log_now();
  io_uring_queue_exit(&_ring);
  if (_buf_ring) munmap(_buf_ring, _buf_ring_bytes);
  free(_buf_base);
  close(_event_fd);
  t_reactor = nullptr;
}

void reactor::setup_buffer_ring(const runtime_options& opts) {
  if (!_features.buf_ring || opts.recv_buffers == 0) return;
  ASSERT((opts.recv_buffers & (opts.recv_buffers - 1)) == 0 && opts.recv_buffers <= 32768,
         "recv_buffers must be a power of two <= 32768");
  _buf_count = opts.recv_buffers;
  _buf_bytes = opts.recv_buffer_bytes;
  _buf_ring_bytes = _buf_count * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, _buf_ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  ASSERT(mem != MAP_FAILED, "mmap buffer ring: %s", strerror(errno));
  _buf_ring = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(_buf_ring);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(_buf_ring);
  reg.ring_entries = _buf_count;
  reg.bgid = 0;
  int rc = io_uring_register_buf_ring(&_ring, &reg, 0);
  if (rc != 0) {
    XLOG(warn, "provided buffer ring unavailable (%s); receives use per-call buffers", strerror(-rc));
    munmap(_buf_ring, _buf_ring_bytes);
    _buf_ring = nullptr;
    return;
  }
  _buf_base = static_cast<char*>(aligned_alloc(4096, size_t{_buf_count} * _buf_bytes));
  ASSERT(_buf_base != nullptr);
  int mask = io_uring_buf_ring_mask(_buf_count);
  for (unsigned i = 0; i < _buf_count; ++i)
    io_uring_buf_ring_add(_buf_ring, buffer_data(uint16_t(i)), _buf_bytes, uint16_t(i), mask, int(i));
  io_uring_buf_ring_advance(_buf_ring, int(_buf_count));
}

result<void> reactor::hold_until_teardown(int fd) {
  int rc = io_uring_register_files(&_ring, &fd, 1);
  if (rc < 0) return from_errno(-rc);
  return {};
}

void reactor::recycle_buffer(uint16_t bid) {
  ASSERT(bid < _buf_count, "buffer id %u out of range", unsigned(bid));
  io_uring_buf_ring_add(_buf_ring, buffer_data(bid), _buf_bytes, bid, io_uring_buf_ring_mask(_buf_count), 0);
  io_uring_buf_ring_advance(_buf_ring, 1);
}

io_uring_sqe* reactor::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&_ring);
  if (!sqe) {
    io_uring_submit(&_ring);
    sqe = io_uring_get_sqe(&_ring);
  }
  ASSERT(sqe != nullptr, "submission queue still full after submit");
  return sqe;
}

void reactor::arm_eventfd() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, _event_fd, &_eventfd_value, sizeof _eventfd_value, 0);
  io_uring_sqe_set_data(sqe, &_eventfd_op);
}

void reactor::on_eventfd(completion* c, int, uint32_t) {
  // Woken by another thread (fallback wake-up or stop): the loop rechecks its
  // queues and flags right after reaping, so only re-arm here.
  (void)c;
  this_reactor().arm_eventfd();
}

void reactor::add_timer(timer_entry* t, uint64_t deadline_ns) {
  ASSERT(!t->armed(), "timer armed twice");
  t->deadline_ns = deadline_ns;
  t->seq = _timer_seq++;
  size_t i = _timers.size();
  _timers.push_back(t);
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!timer_less(_timers[i], _timers[parent])) break;
    std::swap(_timers[i], _timers[parent]);
    _timers[i]->heap_index = i;
    i = parent;
  }
  _timers[i]->heap_index = i;
}

void reactor::remove_timer(timer_entry* t) {
  if (!t->armed()) return;
  size_t i = t->heap_index;
  ASSERT(i < _timers.size() && _timers[i] == t, "timer heap corrupt");
  t->heap_index = timer_entry::npos;
  timer_entry* last = _timers.back();
  _timers.pop_back();
  if (i == _timers.size()) return;
  _timers[i] = last;
  last->heap_index = i;
  // Sift the moved entry up, then down; only one of them moves it.
  while (i > 0 && timer_less(_timers[i], _timers[(i - 1) / 2])) {
    size_t parent = (i - 1) / 2;
    std::swap(_timers[i], _timers[parent]);
    _timers[i]->heap_index = i;
    _timers[parent]->heap_index = parent;
    i = parent;
  }
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < _timers.size() && timer_less(_timers[l], _timers[m])) m = l;
    if (r < _timers.size() && timer_less(_timers[r], _timers[m])) m = r;
    if (m == i) break;
    std::swap(_timers[i], _timers[m]);
    _timers[i]->heap_index = i;
    _timers[m]->heap_index = m;
    i = m;
  }
}

void reactor::fire_timers() {
  if (_timers.empty()) return;
  uint64_t now = monotonic_ns();
  while (!_timers.empty() && _timers.front()->deadline_ns <= now) {
    timer_entry* t = _timers.front();
    remove_timer(t);
    t->fire(t);
  }
}

void reactor::cancel_turn_end(turn_hook* h) {
  if (!h->queued) return;
  h->queued = false;
  std::erase(_turn_end, h);
  std::replace(_turn_end_running.begin(), _turn_end_running.end(), h, static_cast<turn_hook*>(nullptr));
}

void reactor::run_turn_end() {
  // A hook queued by a hook runs in the next turn.
  std::swap(_turn_end, _turn_end_running);
  for (size_t i = 0; i < _turn_end_running.size(); ++i) {
    turn_hook* h = _turn_end_running[i];
    if (!h) continue;  // cancelled by an earlier hook
    h->queued = false;
    h->run(h);
  }
  _turn_end_running.clear();
}

void reactor::run_ready() {
  // Only what was ready when we started: work scheduled meanwhile waits one turn,
  // so I/O and messages are polled between batches.
  std::swap(_ready, _running);
  for (auto h : _running) {
#ifdef NDEBUG
    h.resume();
#else
    // Debug builds report tasks that hold the shard too long without yielding.
    uint64_t start = monotonic_ns();
    h.resume();
    if (uint64_t ms = (monotonic_ns() - start) / 1'000'000; ms >= k_stall_ms)
      XLOG(warn, "stall: a task ran %llu ms on shard %u without yielding", static_cast<unsigned long long>(ms), _id);
#endif
  }
  _running.clear();
}

void reactor::send(unsigned to, message* m) {
  ASSERT(to < _out.size() && to != _id, "bad target shard %u", to);
  outbox& box = _out[to];
  if (box.overflow_head || !box.queue->push(m)) {
    m->next = nullptr;
    if (box.overflow_tail) box.overflow_tail->next = m;
    else box.overflow_head = m;
    box.overflow_tail = m;
  }
  if (!box.dirty) {
    box.dirty = true;
    _dirty_targets.push_back(to);
  }
}

void reactor::move_overflow(outbox& box) {
  while (box.overflow_head && box.queue->push(box.overflow_head)) {
    box.overflow_head = box.overflow_head->next;
    if (!box.overflow_head) box.overflow_tail = nullptr;
  }
}

void reactor::flush_messages() {
  size_t keep = 0;
  for (size_t i = 0; i < _dirty_targets.size(); ++i) {
    unsigned to = _dirty_targets[i];
    outbox& box = _out[to];
    move_overflow(box);
    if (box.queue->publish()) wake_if_sleeping(to);
    if (box.overflow_head) {
      // Ask the target to wake us when it frees slots, then retry once in case it
      // already did between our push and the request.
      box.queue->request_space_notice();
      std::atomic_thread_fence(std::memory_order_seq_cst);
      move_overflow(box);
      if (box.queue->publish()) wake_if_sleeping(to);
    }
    if (box.overflow_head) _dirty_targets[keep++] = to;  // retried after the notice
    else box.dirty = false;
  }
  _dirty_targets.resize(keep);
}

void reactor::wake_if_sleeping(unsigned to) {
  // Pairs with the fence in wait_for_events(): either the target sees our entries
  // before sleeping, or we see it asleep and wake it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  reactor& target = _rt.shard(to);
  if (target._sleeping.load(std::memory_order_relaxed) && target._sleeping.exchange(false, std::memory_order_acq_rel))
    wake(to);
}

void reactor::wake(unsigned target) {
  ++_stats.wakeups_sent;
  reactor& t = _rt.shard(target);
  if (_features.msg_ring) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_msg_ring(sqe, t._ring_fd, 0, 0, 0);  // user_data 0 on the target: ignored
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
  } else {
    uint64_t one = 1;
    ssize_t w = ::write(t._event_fd, &one, sizeof one);
    (void)w;  // EAGAIN means the counter is already non-zero: the target wakes anyway.
  }
}

bool reactor::poll_messages() {
  bool any = false;
  for (unsigned s = 0; s < _in.size(); ++s) {
    if (!_in[s]) continue;
    size_t n = _in[s]->pop_batch([](message* m) {
      if (m->replying) m->complete(m);
      else m->execute(m);
    });
    _stats.messages_received += n;
    any |= n != 0;
    // The sender may be asleep with messages it could not fit: tell it there is room.
    if (n != 0 && _in[s]->take_space_notice()) wake(s);
  }
  return any;
}

bool reactor::incoming_pending() const {
  for (auto* q : _in)
    if (q && !q->empty_for_consumer()) return true;
  return false;
}

void reactor::wait_for_events() {
  _sleeping.store(true, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (incoming_pending() || stopping()) {
    _sleeping.store(false, std::memory_order_relaxed);
    io_uring_submit_and_get_events(&_ring);
    return;
  }
  ++_stats.sleeps;
  io_uring_cqe* cqe = nullptr;
  if (_timers.empty()) {
    io_uring_submit_and_wait_timeout(&_ring, &cqe, 1, nullptr, nullptr);
  } else {
    uint64_t now = monotonic_ns(), due = _timers.front()->deadline_ns;
    uint64_t wait_ns = due > now ? due - now : 0;
    __kernel_timespec ts{static_cast<long long>(wait_ns / 1'000'000'000u), static_cast<long long>(wait_ns % 1'000'000'000u)};
    io_uring_submit_and_wait_timeout(&_ring, &cqe, 1, &ts, nullptr);
  }
  _sleeping.store(false, std::memory_order_relaxed);
}

void reactor::reap() {
  struct done {
    uint64_t user_data;
    int res;
    uint32_t flags;
  };
  io_uring_cqe* cqes[128];
  done batch[128];
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(&_ring, cqes, 128);
    if (n == 0) return;
    for (unsigned i = 0; i < n; ++i) batch[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&_ring, n);  // free the slots before handlers submit more
    for (unsigned i = 0; i < n; ++i) {
      if (batch[i].user_data == 0) continue;
      auto* c = reinterpret_cast<completion*>(batch[i].user_data);
      c->on_complete(c, batch[i].res, batch[i].flags);
    }
  }
}

void reactor::run() {
  ASSERT(t_reactor == this);
  while (!stopping()) {
    ++_stats.loop_iterations;
    poll_messages();
    run_ready();
    fire_timers();
    run_turn_end();
    flush_messages();
    flush_log();
    if (_ready.empty() && _turn_end.empty()) wait_for_events();
    else io_uring_submit_and_get_events(&_ring);
    reap();
  }
}

void reactor::append_log(std::string_view line) {
  if (_log_pending.size() + line.size() > k_log_buffer_max) {
    ++_log_dropped;  // stderr is not keeping up; never block the shard for it
    return;
  }
  _log_pending.append(line);
}

void reactor::flush_log() {
  if (_log_in_flight || (_log_pending.empty() && _log_dropped == 0)) return;
  if (_log_dropped) {
    _log_pending += "log: " + std::to_string(_log_dropped) + " lines dropped on shard " + std::to_string(_id) +
                    " (stderr too slow)\n";
    _log_dropped = 0;
  }
  std::swap(_log_pending, _log_writing);
  _log_written = 0;
  _log_in_flight = true;
  submit_log_write();
}

void reactor::submit_log_write() {
  io_uring_sqe* sqe = get_sqe();
  // Offset -1: write at the file position, as write(2) does (stderr may be a pipe).
  io_uring_prep_write(sqe, STDERR_FILENO, _log_writing.data() + _log_written,
                      static_cast<unsigned>(_log_writing.size() - _log_written), uint64_t(-1));
  io_uring_sqe_set_data(sqe, &_log_op);
}

void reactor::on_log_written(completion* c, int res, uint32_t) {
  reactor& r = this_reactor();
  (void)c;
  if (res == -EAGAIN || res == -EINTR) {
    r.submit_log_write();
    return;
  }
  if (res > 0 && r._log_written + size_t(res) < r._log_writing.size()) {
    r._log_written += size_t(res);
    r.submit_log_write();
    return;
  }
  // Done, or stderr is gone (then there is nobody to tell).
  r._log_writing.clear();
  r._log_in_flight = false;
}

void reactor::flush_log_now() {
  // Let an in-flight ring write finish first so lines stay in order.
  while (_log_in_flight) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(&_ring, 1) < 0 || io_uring_peek_cqe(&_ring, &cqe) != 0 || !cqe) break;
    uint64_t ud = cqe->user_data;
    int res = cqe->res;
    io_uring_cqe_seen(&_ring, cqe);
    if (ud == reinterpret_cast<uint64_t>(&_log_op)) on_log_written(&_log_op, res, 0);
  }
  _log_in_flight = false;
  std::string_view rest = _log_pending;
  while (!rest.empty()) {
    ssize_t w = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (w <= 0) break;
    rest.remove_prefix(size_t(w));
  }
  _log_pending.clear();
}

void reactor::stop() {
  _stop.store(true, std::memory_order_relaxed);
  if (t_reactor == this) return;
  uint64_t one = 1;
  ssize_t w = ::write(_event_fd, &one, sizeof one);
  (void)w;  // EAGAIN: a wake-up is already pending.
}

}  // namespace xerv::io
