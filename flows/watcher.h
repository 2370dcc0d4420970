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
// those events are lost; after an overflow every root is checked again (a
// deleted or replaced one re-armed) and recursive trees are walked for new
// subdirectories, whose files fire. Walks list directories with blocking
// getdents calls (no ring op exists), a few at a time between yields.

#include <sys/inotify.h>

#include <deque>
#include <functional>
#include <optional>
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
  struct walk {  // a directory to watch, found in a tree
    std::string dir;
    size_t root = 0;
    bool announce = false;
  };
  struct dir_move {  // a directory renamed away, until its other half (or none) comes
    uint32_t cookie = 0;
    std::string from;
    uint64_t at_ms = 0;
  };
  io::task<void> read_loop();
  io::task<void> settle_loop();
  void handle(const inotify_event& e, uint64_t now);
  // Watches one directory; with `recursive` its subdirectories go to _walks.
  // `announce`: if it was not watched yet, its files fire as created.
  io::result<int> watch_dir(const std::string& dir, size_t root, bool announce, uint64_t now);
  // Works through _walks, yielding every few directories (one walker at a time).
  io::task<void> drain_walks();
  void unwatch_tree(const std::string& dir);
  void rename_tree(const std::string& from, const std::string& to, size_t root);
  void finish_dir_move();
  void limit_reached(size_t root);
  void root_lost(size_t root, const char* how);
  void arm_missing(uint64_t now);
  // After an overflow: each root's watch may have died unseen, new
  // subdirectories may be unwatched. Re-adding tells (the same descriptor: alive).
  void resync(uint64_t now);
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
  std::vector<char> _tried;   // per path: armed (or tried) before, so arming it again announces its files
  std::deque<walk> _walks;
  bool _walking = false;
  bool _resync = false;
  std::string _limit_error;   // watches_max reached: part of the tree is not watched (until restarted)
  std::optional<dir_move> _dir_move;
  status _status;
  io::cancel_source _stop;
  io::cancel_source* _sleep = nullptr;
};

}  // namespace xerv::flows
