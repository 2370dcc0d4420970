#pragma once
// inotify through the ring: the shard waits for events with a ring poll and then
// drains the descriptor with non-blocking reads, so no thread ever blocks on it.
// Plus the two metadata calls a directory watcher needs: statx by path (a ring
// op) and a directory listing.

#include <sys/inotify.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/cancel.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::io {

class inotify {
 public:
  inotify() = default;
  inotify(inotify&& o) noexcept : _fd(std::exchange(o._fd, -1)) {}
  inotify& operator=(inotify&& o) noexcept;
  ~inotify();

  static result<inotify> open();
  // inotify_add_watch: a path lookup, no waiting. Returns the watch descriptor.
  result<int> add(const std::string& dir, uint32_t mask);
  void remove(int wd);
  // Completes once events are queued, having filled `buf` with whole events
  // (the bytes read), or with the cancel reason once `cs` fires.
  task<result<size_t>> read(std::span<char> buf, cancel_source* cs);

 private:
  explicit inotify(int fd) : _fd(fd) {}
  int _fd = -1;
};

struct path_info {
  uint64_t size = 0;
  uint64_t mtime_ms = 0;
  bool is_dir = false;
};
// statx through the ring (symlinks are not followed).
task<result<path_info>> stat_path(std::string path);

struct dir_entry {
  std::string name;
  bool is_dir = false;
};
// The entries of a directory but . and .. (getdents has no ring op: a blocking
// call, for arming watches on local directories only, never per event).
result<std::vector<dir_entry>> list_dir(const std::string& path);

}  // namespace xerv::io
