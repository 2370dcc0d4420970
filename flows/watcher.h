#pragma once
// One filesystem trigger's watch, on the shard that owns the trigger
// (trigger_owner): an inotify descriptor read through the ring, a watch per
// directory (the whole tree with `recursive`, new subdirectories included), and
// the debouncer of flows/watch.h. Each event it settles goes to `fire`, which
// admits the trace.
//
// A watched directory that goes away puts the trigger in state `error` (shown by
// GET /triggers) and is looked for again every second; once back, it is watched
// again and the files already in it fire as created. Files present when the
// trigger is first armed do not fire. The kernel's queue overflowing
// (IN_Q_OVERFLOW) and changes beyond the pending cap are counted and logged:
// those events are lost, nothing else is.

#include <sys/inotify.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "flows/watch.h"
#include "io/cancel.h"
#include "io/inotify.h"
#include "io/task.h"

namespace xerv::flows {

class fs_watch {
 public:
  // Returns false when the trace was not admitted (counted as refused).
  using fire_fn = std::function<bool(const fs_fire&, const io::path_info*)>;
  static constexpr size_t pending_max = 10'000;  // paths waiting for their quiet period
  static constexpr size_t watches_max = 100'000; // directories of one trigger

  fs_watch(std::string id, std::shared_ptr<const fs_trigger> params, fire_fn fire);
  fs_watch(const fs_watch&) = delete;
  fs_watch& operator=(const fs_watch&) = delete;

  // Watches until stop().
  io::task<void> run();
  void stop();

  struct status {
    std::string error;  // empty: every path is watched
    size_t watches = 0;
    uint64_t events = 0;     // changes taken from the kernel
    uint64_t overflows = 0;  // IN_Q_OVERFLOW: the kernel dropped events
    uint64_t dropped = 0;    // changes beyond pending_max
    uint64_t refused = 0;    // settled events whose trace was not admitted
  };
  const status& state() const { return _status; }
  const fs_trigger& params() const { return *_params; }

 private:
  struct watched {
    std::string dir;
    size_t root = 0;
  };
  io::task<void> read_loop();
  io::task<void> settle_loop();
  void handle(const inotify_event& e, uint64_t now);
  // Watches `dir` (and with `recursive` its subdirectories); `announce`: the
  // files found fire as created.
  bool watch_tree(const std::string& dir, size_t root, bool announce, uint64_t now);
  void unwatch_tree(const std::string& dir);
  void arm_missing(uint64_t now);
  void set_error();
  void wake();

  std::string _id;
  std::shared_ptr<const fs_trigger> _params;
  fire_fn _fire;
  fs_debounce _debounce;
  io::inotify _fd;
  std::unordered_map<int, watched> _wds;
  std::vector<int> _root_wd;  // per path: its watch, or -1 while missing
  std::vector<std::string> _root_error;
  uint32_t _dir_moved = 0;  // the cookie of the last directory renamed away (the kernel pairs them adjacently)
  std::vector<char> _armed_before;  // per path: a re-arm announces the files it finds
  status _status;
  io::cancel_source _stop;
  io::cancel_source* _sleep = nullptr;
};

}  // namespace xerv::flows
