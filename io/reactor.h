#pragma once
// reactor: one shard's event loop. It owns an io_uring (created on the shard's own
// thread so SINGLE_ISSUER holds), a queue of ready coroutines, a timer heap whose
// earliest deadline bounds the ring wait, a provided-buffer ring for socket
// receives, and its ends of the cross-shard message queues. Everything here is
// touched only by the owning thread, except the `_sleeping` flag and the ring and
// event fds other shards use to wake it.

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/cancel.h"
#include "io/result.h"

namespace xerv::io {

class runtime;
struct message;
template <class T>
class spsc_queue;

// What the kernel offers, probed once at start and logged.
struct ring_features {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool msg_ring = false;
  bool buf_ring = false;
  bool multishot_accept = false;
  bool send_zc = false;
};

struct runtime_options {
  unsigned shards = 0;  // 0: one per online CPU
  bool pin_threads = true;
  unsigned ring_entries = 1024;
  unsigned recv_buffers = 1024;       // provided buffers per shard (power of two)
  unsigned recv_buffer_bytes = 16384;  // size of each
  unsigned message_queue_slots = 4096; // per ordered shard pair (power of two)
  bool force_eventfd_wakeup = false;   // tests: exercise the MSG_RING fallback
};

// Anything whose address is an SQE's user_data. user_data 0 means "ignore".
struct completion {
  void (*on_complete)(completion* self, int res, uint32_t flags) = nullptr;
};

// Work deferred to the end of the current loop turn: it runs after the turn's
// ready coroutines, timers and completions, before the loop decides whether to
// sleep. For wake-ups that only matter if their condition still holds then.
struct turn_hook {
  void (*run)(turn_hook*) = nullptr;
  bool queued = false;
};

struct timer_entry {
  uint64_t deadline_ns = 0;
  uint64_t seq = 0;
  size_t heap_index = npos;
  void (*fire)(timer_entry*) = nullptr;
  static constexpr size_t npos = ~size_t{0};
  bool armed() const { return heap_index != npos; }
};

uint64_t monotonic_ns();

class reactor {
 public:
  reactor(runtime& rt, unsigned id, const runtime_options& opts, const ring_features& features);
  ~reactor();
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  unsigned id() const { return _id; }
  runtime& owner() { return _rt; }
  const ring_features& features() const { return _features; }

  // Never null: a full submission queue is flushed first.
  io_uring_sqe* get_sqe();
  void schedule(std::coroutine_handle<> h) { _ready.push_back(h); }

  // Runs `h` once at the end of this turn; a no-op when it is already queued.
  void at_turn_end(turn_hook* h) {
    if (h->queued) return;
    h->queued = true;
    _turn_end.push_back(h);
  }
  // Unqueues `h` (its owner is going away).
  void cancel_turn_end(turn_hook* h);

  void add_timer(timer_entry* t, uint64_t deadline_ns);
  void remove_timer(timer_entry* t);

  // Provided buffers: group 0 of this ring. Null when the kernel lacks buffer rings.
  bool has_buffer_ring() const { return _buf_ring != nullptr; }
  unsigned recv_buffer_bytes() const { return _buf_bytes; }
  char* buffer_data(uint16_t bid) { return _buf_base + size_t{bid} * _buf_bytes; }
  void recycle_buffer(uint16_t bid);

  // Registers fd with this ring, so the kernel keeps its file open until the
  // ring is torn down, which happens only after the ring's last operation has
  // completed, even after kill -9. A lock held through that file (the data
  // directory's flock) thus outlives every write still in flight.
  result<void> hold_until_teardown(int fd);

  // Cross-shard messaging (see runtime.h): stage a message for `to`; it is published
  // and the target woken at the end of this loop iteration.
  void send(unsigned to, message* m);

  // Logging (see log.h): lines are buffered here and written by the loop.
  void append_log(std::string_view line);
  // Writes everything buffered with plain write(2): for assertion failures and exit.
  void flush_log_now();

  // The loop: returns once stop() was called (from any thread).
  void run();
  void stop();
  bool stopping() const { return _stop.load(std::memory_order_relaxed); }

  // Counters a benchmark or test may read on the owning shard.
  struct stats {
    uint64_t loop_iterations = 0;
    uint64_t sleeps = 0;
    uint64_t wakeups_sent = 0;
    uint64_t messages_received = 0;
  };
  const stats& counters() const { return _stats; }

 private:
  friend class runtime;
  void setup_buffer_ring(const runtime_options& opts);
  void arm_eventfd();
  void run_ready();
  void fire_timers();
  void run_turn_end();
  bool poll_messages();
  void flush_messages();
  void wake(unsigned target);
  void wake_if_sleeping(unsigned target);
  bool incoming_pending() const;
  void wait_for_events();
  void reap();
  static void on_eventfd(completion* c, int res, uint32_t flags);
  void flush_log();
  void submit_log_write();
  static void on_log_written(completion* c, int res, uint32_t flags);

  runtime& _rt;
  const unsigned _id;
  const ring_features _features;
  io_uring _ring{};
  std::vector<std::coroutine_handle<>> _ready, _running;
  std::vector<turn_hook*> _turn_end, _turn_end_running;
  std::vector<timer_entry*> _timers;  // binary min-heap on (deadline, seq)
  uint64_t _timer_seq = 0;

  io_uring_buf_ring* _buf_ring = nullptr;
  size_t _buf_ring_bytes = 0;
  char* _buf_base = nullptr;
  unsigned _buf_count = 0, _buf_bytes = 0;

  struct outbox {
    spsc_queue<message*>* queue = nullptr;
    message* overflow_head = nullptr;
    message* overflow_tail = nullptr;
    bool dirty = false;
  };
  void move_overflow(outbox& box);
  std::vector<outbox> _out;                    // indexed by target shard
  std::vector<spsc_queue<message*>*> _in;       // indexed by source shard
  std::vector<unsigned> _dirty_targets;

  std::string _log_pending, _log_writing;
  size_t _log_written = 0;
  bool _log_in_flight = false;
  uint64_t _log_dropped = 0;
  completion _log_op{};
  static constexpr size_t k_log_buffer_max = 1 << 20;

  completion _eventfd_op{};
  uint64_t _eventfd_value = 0;
  stats _stats;

 public:
  // Read by other shards deciding whether to wake this one.
  alignas(64) std::atomic<bool> _sleeping{false};
  std::atomic<bool> _stop{false};
  int _ring_fd = -1;
  int _event_fd = -1;
};

// The reactor of the calling shard thread. Asserts when called off a shard.
reactor& this_reactor();
bool on_shard();

}  // namespace xerv::io
