#pragma once
// gate + spawn: the only way to start work nobody awaits. A service owns a gate,
// spawns its background tasks into it, and on stop closes it and awaits the drain,
// so no task outlives the state it uses. A failed spawned task is logged, never lost.

#include <coroutine>
#include <exception>
#include <type_traits>

#include "io/log.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::io {

class gate {
 public:
  gate() = default;
  gate(const gate&) = delete;
  gate& operator=(const gate&) = delete;
  ~gate() { ASSERT(_count == 0, "gate destroyed with %zu tasks inside", _count); }

  bool closed() const { return _closed; }
  size_t count() const { return _count; }

  // Returns false once the gate is closed.
  [[nodiscard]] bool try_enter() {
    if (_closed) return false;
    ++_count;
    return true;
  }
  void leave() {
    ASSERT(_count > 0);
    if (--_count == 0 && _closer) std::exchange(_closer, {}).resume();
  }

  // Refuses new entries and completes when every task inside has left.
  task<void> close();

 private:
  size_t _count = 0;
  bool _closed = false;
  std::coroutine_handle<> _closer;
};

namespace detail {
template <class T>
struct is_result : std::false_type {};
template <class T>
struct is_result<result<T>> : std::true_type {};

void log_spawn_failure(const char* what);

template <class T>
detached run_spawned(gate* g, task<T> t) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
    } else {
      auto r = co_await std::move(t);
      if constexpr (is_result<T>::value) {
        if (!r) log_spawn_failure(r.error().message().c_str());
      }
    }
  } catch (const std::exception& e) {
    log_spawn_failure(e.what());
  } catch (...) {
    log_spawn_failure("non-standard exception");
  }
  g->leave();
}
}  // namespace detail

// Starts t at once on this shard (it runs until its first suspension before spawn
// returns). Returns errc::closed, dropping t unstarted, when the gate is closed.
template <class T>
result<void> spawn(gate& g, task<T> t) {
  if (!g.try_enter()) return errc::closed;
  detail::run_spawned(&g, std::move(t));
  return {};
}

}  // namespace xerv::io
