#pragma once
// The answers a command's sender awaits, by ticket, for the replica and for
// each shard_queue. A ticket is answered once and may be awaited any number of
// times, or never (an acknowledgement nobody waits for): then it leaves at
// once, so it holds no memory, and only a failure is kept, a bounded number of
// them, for a waiter that comes late.

#include <cstdint>
#include <map>
#include <system_error>

#include "io/event.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::backends::raft {

struct ticket {
  bool done = false;
  std::error_code error;
  unsigned waiters = 0;
  bool kept = false;  // answered to a waiter that comes later (a pipeline change's)
  io::event resolved;
};

// `T`: a ticket, or a struct derived from one with what else its owner keeps.
template <class T = ticket>
class ticket_table {
 public:
  using map = std::map<uint64_t, T>;
  using iterator = typename map::iterator;

  T& open(uint64_t id) { return _open[id]; }
  iterator find(uint64_t id) { return _open.find(id); }
  iterator end() { return _open.end(); }
  iterator erase(iterator it) { return _open.erase(it); }
  map& all() { return _open; }
  size_t size() const { return _open.size(); }

  // Its waiters hear the answer; with none (and not kept) it leaves.
  void settle(iterator it, std::error_code e) {
    T& t = it->second;
    if (t.waiters > 0 || t.kept) {
      t.done = true;
      t.error = e;
      t.resolved.notify();
      return;
    }
    if (e) {
      _failed.emplace(it->first, e);
      if (_failed.size() > failed_kept_max) _failed.erase(_failed.begin());
    }
    _open.erase(it);
  }

  // Until `id` is answered (at once when it was, with nobody waiting).
  io::task<io::result<void>> wait(uint64_t id) {
    auto it = _open.find(id);
    if (it == _open.end()) {
      auto f = _failed.find(id);
      if (f == _failed.end()) co_return io::result<void>{};
      std::error_code e = f->second;
      _failed.erase(f);
      co_return e;
    }
    T& t = it->second;
    ++t.waiters;
    co_await until_done(t);
    std::error_code e = t.error;
    if (--t.waiters == 0) _open.erase(id);  // the last one to hear it
    if (e) co_return e;
    co_return io::result<void>{};
  }

  io::task<void> until_done(T& t) {
    while (!t.done) {
      auto resolved = t.resolved.wait(_never);
      co_await resolved;
    }
  }

 private:
  static constexpr size_t failed_kept_max = 4096;
  map _open;
  std::map<uint64_t, std::error_code> _failed;
  io::cancel_source _never;  // only an answer ends a wait (the owner's stop answers every one)
};

}  // namespace xerv::backends::raft
