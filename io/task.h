#pragma once
// task<T>: a lazy, move-only coroutine result, awaited exactly once. Starting and
// finishing use symmetric transfer, so chains of co_await never grow the stack.
// A task runs on the shard that awaits it; it never migrates.

#include <coroutine>
#include <exception>
#include <utility>
#include <variant>

#include "io/assert.h"

namespace xerv::io {

template <class T = void>
class task;

namespace detail {

struct final_awaiter {
  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    auto next = h.promise().continuation;
    return next ? next : std::noop_coroutine();
  }
  void await_resume() const noexcept {}
};

struct promise_base {
  std::coroutine_handle<> continuation;
  std::suspend_always initial_suspend() const noexcept { return {}; }
  final_awaiter final_suspend() const noexcept { return {}; }
};

template <class T>
struct promise : promise_base {
  std::variant<std::monostate, T, std::exception_ptr> value;
  task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value.template emplace<1>(std::forward<U>(v));
  }
  void unhandled_exception() noexcept { value.template emplace<2>(std::current_exception()); }
  T take() {
    if (value.index() == 2) std::rethrow_exception(std::get<2>(value));
    ASSERT(value.index() == 1, "task finished without a value");
    return std::get<1>(std::move(value));
  }
};

template <>
struct promise<void> : promise_base {
  std::exception_ptr error;
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { error = std::current_exception(); }
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using value_type = T;

  task() = default;
  explicit task(std::coroutine_handle<promise_type> h) : _h(h) {}
  task(task&& o) noexcept : _h(std::exchange(o._h, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      destroy();
      _h = std::exchange(o._h, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { destroy(); }

  bool valid() const { return static_cast<bool>(_h); }

  auto operator co_await() && noexcept {
    struct awaiter {
      std::coroutine_handle<promise_type> h;
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
        h.promise().continuation = caller;
        return h;
      }
      T await_resume() { return h.promise().take(); }
    };
    ASSERT(_h, "awaiting an empty task");
    return awaiter{_h};
  }

  // For the runtime's own drivers (spawn, when_all): the raw handle.
  std::coroutine_handle<promise_type> handle() const { return _h; }

 private:
  void destroy() {
    if (_h) _h.destroy();
    _h = {};
  }
  std::coroutine_handle<promise_type> _h;
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<promise<T>>::from_promise(*this)};
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<promise<void>>::from_promise(*this)};
}
}  // namespace detail

// Wraps a plain value into an already-computable task (useful for uniform APIs).
template <class T>
task<T> make_ready_task(T v) {
  co_return v;
}

namespace detail {
// A coroutine nobody awaits: starts at once and frees itself when it ends. Only the
// runtime's own drivers use it (spawn, submit_to's remote side, the main task);
// their bodies catch everything, so an escaping exception is a bug.
struct detached {
  struct promise_type {
    detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};
}  // namespace detail

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

}  // namespace xerv::io
