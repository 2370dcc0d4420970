#pragma once
// runtime: N shards, one pinned thread each (shard 0 runs on the thread that calls
// run()). Shards share nothing but the message queues: one bounded SPSC queue per
// ordered pair, drained every loop iteration, published in batches, with sleeping
// targets woken by IORING_OP_MSG_RING (eventfd when the kernel lacks it).

#include <latch>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "io/reactor.h"
#include "io/spsc_queue.h"
#include "io/task.h"

namespace xerv::io {

// A cross-shard request. It lives in the caller's coroutine frame, travels to the
// target through its queue, runs there, and comes back on the reverse queue.
struct message {
  void (*execute)(message*) = nullptr;   // on the target shard
  void (*complete)(message*) = nullptr;  // back on the origin shard
  message* next = nullptr;               // overflow chaining while a queue is full
  unsigned origin = 0;
  unsigned target = 0;
  bool replying = false;
};

class runtime {
 public:
  explicit runtime(runtime_options opts = {});
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // Starts every shard, runs `main` on shard 0 and stops all shards when it
  // returns; gives main's value back. SIGINT and SIGTERM are blocked in every
  // shard thread and delivered through wait_for_signal().
  int run(task<int> main);

  // Asks every shard to leave its loop. Callable from any thread.
  void stop();

  unsigned shard_count() const { return _count; }
  const ring_features& features() const { return _features; }
  const runtime_options& options() const { return _opts; }
  reactor& shard(unsigned id) { return *_reactors[id]; }

  spsc_queue<message*>& queue(unsigned from, unsigned to) { return *_queues[from * _count + to]; }

 private:
  void shard_main(unsigned id, task<int>* main);
  void start_signalfd();

  runtime_options _opts;
  unsigned _count;
  std::vector<int> _cpus;  // allowed CPUs when the runtime was made; shard i runs on _cpus[i % size]
  ring_features _features;
  std::vector<std::unique_ptr<spsc_queue<message*>>> _queues;
  std::vector<reactor*> _reactors;
  std::vector<std::thread> _threads;
  int _exit_code = 0;
  std::latch* _start_latch = nullptr;
  std::latch* _stop_latch = nullptr;
  int _signal_fd = -1;
  friend task<int> wait_for_signal();
};

// Probes the kernel once (setup flags and opcodes).
ring_features probe_ring_features();

unsigned this_shard_id();
unsigned shard_count();

// Completes with the number of the first SIGINT/SIGTERM received. Shard 0 only.
task<int> wait_for_signal();

namespace detail {

template <class F>
using call_result_t = std::invoke_result_t<F&>;

template <class T>
struct task_value {
  using type = T;
};
template <class T>
struct task_value<task<T>> {
  using type = T;
};

template <class R>
using stored_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

void reply(message* m);

template <class F>
struct cross_call final : message {
  using raw = call_result_t<F>;
  using R = typename task_value<raw>::type;

  F fn;
  std::coroutine_handle<> caller;
  std::variant<std::monostate, stored_t<R>, std::exception_ptr> out;

  explicit cross_call(F f, unsigned to) : fn(std::move(f)) {
    target = to;
    execute = &run_here;
    complete = &resume_caller;
  }

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    caller = h;
    origin = this_shard_id();
    this_reactor().send(target, this);
  }
  R await_resume() {
    if (out.index() == 2) std::rethrow_exception(std::get<2>(out));
    if constexpr (!std::is_void_v<R>) return std::get<1>(std::move(out));
  }

  static void run_here(message* m) {
    auto* self = static_cast<cross_call*>(m);
    if constexpr (is_task<raw>::value) {
      run_task(self);
    } else {
      try {
        if constexpr (std::is_void_v<R>) {
          self->fn();
          self->out.template emplace<1>();
        } else {
          self->out.template emplace<1>(self->fn());
        }
      } catch (...) {
        self->out.template emplace<2>(std::current_exception());
      }
      reply(self);
    }
  }
  static void resume_caller(message* m) { static_cast<cross_call*>(m)->caller.resume(); }

  static detached run_task(cross_call* self) {
    try {
      if constexpr (std::is_void_v<R>) {
        co_await self->fn();
        self->out.template emplace<1>();
      } else {
        self->out.template emplace<1>(co_await self->fn());
      }
    } catch (...) {
      self->out.template emplace<2>(std::current_exception());
    }
    reply(self);
  }
};

}  // namespace detail

// Runs fn on shard `target` and completes, back on the calling shard, with its
// result (fn may return a plain value or a task). fn is moved to the target; it
// must not hold pointers into the caller's shard-owned state. Messages from one
// shard to another are executed in the order they were sent.
template <class F>
auto submit_to(unsigned target, F fn) -> task<typename detail::task_value<detail::call_result_t<F>>::type> {
  using raw = detail::call_result_t<F>;
  if (target == this_shard_id()) {
    if constexpr (is_task<raw>::value) {
      co_return co_await fn();
    } else {
      co_return fn();
    }
  }
  co_return co_await detail::cross_call<F>(std::move(fn), target);
}

}  // namespace xerv::io
