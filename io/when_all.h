#pragma once
// when_all: runs tasks concurrently on this shard and completes when all have. Void
// results become std::monostate. If any task throws, the first exception is
// rethrown after all of them finished (none is left running).

#include <coroutine>
#include <exception>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "io/runtime.h"
#include "io/task.h"

namespace xerv::io {
namespace detail {

struct join_counter {
  size_t remaining = 0;
  std::coroutine_handle<> parent;
  std::exception_ptr error;
};

struct join_child {
  struct promise_type {
    join_counter* counter = nullptr;
    join_child get_return_object() noexcept {
      return join_child{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct last {
        bool await_ready() noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
          join_counter* c = h.promise().counter;
          return --c->remaining == 0 ? c->parent : std::noop_coroutine();
        }
        void await_resume() noexcept {}
      };
      return last{};
    }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  explicit join_child(std::coroutine_handle<promise_type> h) : handle(h) {}
  join_child(join_child&& o) noexcept : handle(std::exchange(o.handle, {})) {}
  join_child(const join_child&) = delete;
  ~join_child() {
    if (handle) handle.destroy();
  }
  std::coroutine_handle<promise_type> handle;
};

template <class T>
join_child run_joined(task<T> t, std::optional<stored_t<T>>* out, join_counter* counter) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      out->emplace();
    } else {
      out->emplace(co_await std::move(t));
    }
  } catch (...) {
    if (!counter->error) counter->error = std::current_exception();
  }
}

// Starts every child, then suspends until the last one finishes. The counter
// starts at n+1 so children finishing synchronously cannot resume us early.
struct join_all {
  std::vector<join_child>& children;
  join_counter& counter;
  bool await_ready() const noexcept { return children.empty(); }
  bool await_suspend(std::coroutine_handle<> h) {
    counter.parent = h;
    counter.remaining = children.size() + 1;
    for (auto& c : children) {
      c.handle.promise().counter = &counter;
      c.handle.resume();
    }
    return --counter.remaining != 0;
  }
  void await_resume() const noexcept {}
};

template <class... Ts, size_t... I>
task<std::tuple<stored_t<Ts>...>> when_all_impl(std::index_sequence<I...>, task<Ts>... ts) {
  std::tuple<std::optional<stored_t<Ts>>...> slots;
  join_counter counter;
  std::vector<join_child> children;
  children.reserve(sizeof...(Ts));
  (children.push_back(run_joined(std::move(ts), &std::get<I>(slots), &counter)), ...);
  co_await join_all{children, counter};
  if (counter.error) std::rethrow_exception(counter.error);
  co_return std::tuple<stored_t<Ts>...>{std::move(*std::get<I>(slots))...};
}

}  // namespace detail

template <class... Ts>
task<std::tuple<detail::stored_t<Ts>...>> when_all(task<Ts>... ts) {
  return detail::when_all_impl(std::index_sequence_for<Ts...>{}, std::move(ts)...);
}

template <class T>
task<std::vector<detail::stored_t<T>>> when_all(std::vector<task<T>> tasks) {
  std::vector<std::optional<detail::stored_t<T>>> slots(tasks.size());
  detail::join_counter counter;
  std::vector<detail::join_child> children;
  children.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) children.push_back(detail::run_joined(std::move(tasks[i]), &slots[i], &counter));
  co_await detail::join_all{children, counter};
  if (counter.error) std::rethrow_exception(counter.error);
  std::vector<detail::stored_t<T>> out;
  out.reserve(slots.size());
  for (auto& s : slots) out.push_back(std::move(*s));
  co_return out;
}

// Runs fn on every shard (a copy each) and gathers the results in shard order.
template <class F>
auto invoke_on_all(F fn) {
  using R = typename detail::task_value<detail::call_result_t<F>>::type;
  std::vector<task<R>> calls;
  calls.reserve(shard_count());
  for (unsigned s = 0; s < shard_count(); ++s) calls.push_back(submit_to(s, fn));
  return when_all(std::move(calls));
}

}  // namespace xerv::io
