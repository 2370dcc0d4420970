#include "flows/watcher.h"

#include <chrono>
#include <cstring>

#include "core/metrics.h"
#include "io/file.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/when_all.h"

namespace xerv::flows {

namespace {
core::counter g_dropped{"xerv_trigger_events_dropped_total",
                        "Filesystem trigger events lost: kernel queue overflow, pending cap, or admission refused",
                        {"trigger", "reason"}};

constexpr uint32_t dir_mask = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                              IN_MOVE_SELF | IN_DELETE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;
constexpr size_t walk_batch = 64;  // directories listed between yields

uint64_t steady_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

std::string join(const std::string& dir, std::string_view name) {
  std::string out = dir == "/" ? std::string() : dir;
  out += '/';
  out += name;
  return out;
}

// Logged at the first and then at every thousandth, so a flood does not flood the log.
bool worth_logging(uint64_t n) { return n == 1 || n % 1000 == 0; }
}  // namespace

fs_watch::fs_watch(std::string id, std::shared_ptr<const fs_trigger> params, fire_fn fire)
    : _id(std::move(id)),
      _params(std::move(params)),
      _fire(std::move(fire)),
      _debounce(*_params, pending_max),
      _root_wd(_params->paths.size(), -1),
      _root_error(_params->paths.size()),
      _tried(_params->paths.size(), 0) {}

void fs_watch::stop() {
  _stop.cancel();
  wake();
}

void fs_watch::wake() {
  if (_sleep) _sleep->cancel();
}

void fs_watch::set_error() {
  _status.error = _limit_error;
  for (const auto& e : _root_error)
    if (!e.empty()) _status.error += (_status.error.empty() ? "" : "; ") + e;
  _status.watches = _wds.size();
}

io::task<void> fs_watch::run() {
  for (;;) {
    auto fd = io::inotify::open();
    if (fd) {
      _fd = std::move(*fd);
      break;
    }
    _status.error = "inotify: " + fd.error().message() + " (see fs.inotify.max_user_instances)";
    XLOG(error, "filesystem trigger %s: %s; retrying in a second", _id.c_str(), _status.error.c_str());
    auto slept = co_await io::sleep_for(std::chrono::seconds(1), &_stop);
    if (!slept) co_return;
  }
  if (_params->create)
    for (size_t i = 0; i < _params->paths.size(); ++i) {
      auto made = co_await io::make_dirs(_params->paths[i]);
      if (!made) XLOG(warn, "filesystem trigger %s: cannot create %s: %s", _id.c_str(), _params->paths[i].c_str(),
                      made.error().message().c_str());
    }
  if (_stop.cancelled()) co_return;
  arm_missing(steady_ms());
  co_await drain_walks();
  auto both = io::when_all(read_loop(), settle_loop());
  co_await std::move(both);
}

io::result<int> fs_watch::watch_dir(const std::string& dir, size_t root, bool announce, uint64_t now) {
  auto wd = _fd.add(dir, dir_mask);
  if (!wd) return wd;
  auto known = _wds.find(*wd);
  if (known == _wds.end() && _wds.size() >= watches_max) {
    _fd.remove(*wd);
    limit_reached(root);
    return io::errc::queue_full;
  }
  bool fresh = known == _wds.end() || known->second.dir != dir;
  _wds[*wd] = {dir, root};
  if (dir == _params->paths[root]) _root_wd[root] = *wd;
  bool announce_files = announce && fresh;  // (its subdirectories decide for themselves)
  if (!_params->recursive && !announce_files) return wd;
  auto entries = io::list_dir(dir);
  if (!entries) return wd;  // gone again already: its IN_IGNORED follows
  for (const auto& e : *entries) {
    std::string path = join(dir, e.name);
    if (e.is_dir) {
      if (!_params->recursive) continue;
      if (_walks.size() >= watches_max) {
        limit_reached(root);
        continue;
      }
      _walks.push_back({std::move(path), root, announce});
    } else if (announce_files && _params->matches(e.name) && !_debounce.add(path, fs_change::appeared, 0, now)) {
      ++_status.dropped;
      g_dropped.inc({_id, "queue_full"});
    }
  }
  return wd;
}

void fs_watch::limit_reached(size_t root) {
  if (!_limit_error.empty()) return;
  _limit_error = _params->paths[root] + ": more than " + std::to_string(watches_max) +
                 " directories, the rest is not watched";
  XLOG(warn, "filesystem trigger %s: %s", _id.c_str(), _limit_error.c_str());
}

io::task<void> fs_watch::drain_walks() {
  if (_walking) co_return;  // the walker already running takes these too
  _walking = true;
  size_t done = 0;
  while (!_walks.empty() && !_stop.cancelled()) {
    walk w = std::move(_walks.front());
    _walks.pop_front();
    if (_root_wd[w.root] < 0) continue;  // its root went away meanwhile
    auto wd = watch_dir(w.dir, w.root, w.announce, steady_ms());
    // Gone again (a short-lived directory), or out of watches (fs.inotify.max_user_watches).
    if (!wd && wd.error() != std::errc::no_such_file_or_directory && wd.error() != std::errc::not_a_directory &&
        wd.error() != io::errc::queue_full)
      XLOG(warn, "filesystem trigger %s: cannot watch %s: %s", _id.c_str(), w.dir.c_str(), wd.error().message().c_str());
    if (++done % walk_batch == 0) {
      set_error();
      co_await io::yield();
    }
  }
  _walking = false;
  set_error();
  wake();  // files it announced may be due
}

void fs_watch::arm_missing(uint64_t now) {
  for (size_t i = 0; i < _root_wd.size(); ++i) {
    if (_root_wd[i] >= 0) continue;
    bool again = _tried[i];
    _tried[i] = 1;
    auto wd = watch_dir(_params->paths[i], i, again, now);
    if (!wd) {
      // Keep the first reason ("deleted" says more than the retry's ENOENT).
      if (_root_error[i].empty()) {
        _root_error[i] = _params->paths[i] + ": " + wd.error().message();
        XLOG(warn, "filesystem trigger %s: %s; looking for it every second", _id.c_str(), _root_error[i].c_str());
      }
      continue;
    }
    if (!_root_error[i].empty())
      XLOG(info, "filesystem trigger %s: %s is there, watching it", _id.c_str(), _params->paths[i].c_str());
    _root_error[i].clear();
  }
  set_error();
}

void fs_watch::unwatch_tree(const std::string& dir) {
  std::string prefix = dir + "/";
  for (auto it = _wds.begin(); it != _wds.end();) {
    bool inside = it->second.dir == dir || it->second.dir.starts_with(prefix);
    if (!inside || _root_wd[it->second.root] == it->first) {
      ++it;  // (a root's own watch goes in root_lost)
      continue;
    }
    _fd.remove(it->first);
    it = _wds.erase(it);
  }
}

void fs_watch::rename_tree(const std::string& from, const std::string& to, size_t root) {
  std::string prefix = from + "/";
  auto rename = [&](std::string& dir, size_t& r) {
    if (dir != from && !dir.starts_with(prefix)) return;
    dir = to + dir.substr(from.size());
    r = root;
  };
  for (auto& [wd, w] : _wds) rename(w.dir, w.root);
  for (auto& w : _walks) rename(w.dir, w.root);  // (made and renamed before it was watched)
  _debounce.rename_dir(from, to);
}

void fs_watch::finish_dir_move() {
  if (!_dir_move) return;
  unwatch_tree(_dir_move->from);  // renamed out of the watched tree
  _dir_move.reset();
  set_error();
}

void fs_watch::root_lost(size_t root, const char* how) {
  const std::string& path = _params->paths[root];
  int wd = _root_wd[root];
  unwatch_tree(path);
  _fd.remove(wd);  // (already gone when deleted; watching a moved one under its old name would be wrong)
  _wds.erase(wd);
  _root_wd[root] = -1;
  _root_error[root] = path + ": the directory was " + how;
  XLOG(warn, "filesystem trigger %s: %s; looking for it every second", _id.c_str(), _root_error[root].c_str());
  set_error();
}

void fs_watch::resync(uint64_t now) {
  _resync = false;
  for (size_t i = 0; i < _root_wd.size(); ++i) {
    if (_root_wd[i] < 0) continue;
    auto wd = _fd.add(_params->paths[i], dir_mask);
    if (!wd || *wd != _root_wd[i]) {
      root_lost(i, "replaced or deleted");
      continue;
    }
    if (_params->recursive) _walks.push_back({_params->paths[i], i, true});  // new subdirectories announce
  }
  arm_missing(now);  // a replaced one at once, announcing its files
}

void fs_watch::handle(const inotify_event& e, uint64_t now) {
  if (e.mask & IN_Q_OVERFLOW) {
    ++_status.overflows;
    _resync = true;
    g_dropped.inc({_id, "overflow"});
    if (worth_logging(_status.overflows))
      XLOG(warn, "filesystem trigger %s: the kernel's event queue overflowed, events were lost (%llu times; see "
                 "fs.inotify.max_queued_events)", _id.c_str(), static_cast<unsigned long long>(_status.overflows));
    return;
  }
  // The kernel queues a rename's two halves next to each other: anything else
  // after a directory's IN_MOVED_FROM means it left the tree.
  if (_dir_move && !(e.mask & IN_MOVED_TO && e.cookie == _dir_move->cookie)) finish_dir_move();
  auto w = _wds.find(e.wd);
  if (w == _wds.end()) return;  // a watch removed meanwhile
  size_t root = w->second.root;
  bool is_root = _root_wd[root] == e.wd;
  if (e.mask & IN_IGNORED) {
    if (is_root) return root_lost(root, "deleted");
    _wds.erase(w);
    set_error();
    return;
  }
  if (is_root && e.mask & IN_MOVE_SELF) return root_lost(root, "moved");
  if (!e.len) return;  // an event on the directory itself
  std::string name(e.name, strnlen(e.name, e.len));
  std::string path = join(w->second.dir, name);
  if (e.mask & IN_ISDIR) {
    if (!_params->recursive) return;
    if (e.mask & IN_MOVED_FROM) {
      _dir_move = dir_move{e.cookie, std::move(path), now};
    } else if (e.mask & IN_MOVED_TO && _dir_move && _dir_move->cookie == e.cookie) {
      rename_tree(_dir_move->from, path, root);  // renamed inside the tree: same watches, no new files
      _dir_move.reset();
    } else if (e.mask & (IN_CREATE | IN_MOVED_TO)) {
      if (_walks.size() >= watches_max) limit_reached(root);
      else _walks.push_back({std::move(path), root, true});  // made here or moved in: its files are new
    }
    return;
  }
  fs_change c;
  if (e.mask & IN_CREATE) c = fs_change::create;
  else if (e.mask & IN_MODIFY) c = fs_change::modify;
  else if (e.mask & IN_CLOSE_WRITE) c = fs_change::close_write;
  else if (e.mask & IN_DELETE) c = fs_change::remove;
  else if (e.mask & IN_MOVED_FROM) c = fs_change::moved_from;
  else if (e.mask & IN_MOVED_TO) c = fs_change::moved_to;
  else return;
  // A rename's other name may match: its patterns are decided when it settles.
  if (c != fs_change::moved_from && c != fs_change::moved_to && !_params->matches(name)) return;
  ++_status.events;
  if (_debounce.add(path, c, e.cookie, now)) return;
  g_dropped.inc({_id, "queue_full"});
  if (worth_logging(++_status.dropped))
    XLOG(warn, "filesystem trigger %s: %zu changes wait already, dropped one for %s (%llu dropped)", _id.c_str(),
         pending_max, path.c_str(), static_cast<unsigned long long>(_status.dropped));
}

io::task<void> fs_watch::read_loop() {
  // Room for many events per read: the kernel hands out whole events only.
  std::vector<char> buf(64 * 1024);
  while (!_stop.cancelled()) {
    auto reading = _fd.read(std::span<char>(buf.data(), buf.size()), &_stop);
    auto got = co_await std::move(reading);
    if (!got) {
      if (_stop.cancelled()) break;
      XLOG(error, "filesystem trigger %s: reading inotify: %s", _id.c_str(), got.error().message().c_str());
      auto slept = co_await io::sleep_for(std::chrono::seconds(1), &_stop);
      if (!slept) break;
      continue;
    }
    uint64_t now = steady_ms();
    auto before = _debounce.next_ms();
    // The kernel pads each name so that the next event is aligned.
    for (size_t at = 0; at + sizeof(inotify_event) <= *got;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf.data() + at);
      handle(*e, now);
      at += sizeof(inotify_event) + e->len;
    }
    if (_resync) resync(now);
    if (_debounce.next_ms() != before) wake();
    co_await drain_walks();
    // A steady stream of events completes every read at once: let the shard's
    // other work (and the settle loop) run between batches.
    co_await io::yield();
  }
}

io::task<void> fs_watch::settle_loop() {
  uint64_t armed_at = steady_ms();
  while (!_stop.cancelled()) {
    uint64_t now = steady_ms();
    if (now >= armed_at + 1000) {
      armed_at = now;
      // Its other half would have come by now (they are queued together, or
      // nearly: one may end a read and the other begin the next).
      if (_dir_move && now >= _dir_move->at_ms + 100) finish_dir_move();
      arm_missing(now);
      co_await drain_walks();
      if (_stop.cancelled()) break;
    }
    std::vector<fs_fire> fires = _debounce.due(steady_ms());
    for (size_t i = 0; i < fires.size(); ++i) {
      std::optional<io::path_info> info;
      if (fires[i].event != fs_event::deleted) {
        auto stat = io::stat_path(fires[i].path);
        auto st = co_await std::move(stat);
        if (st) info = *st;  // gone already: size and mtime are null
      }
      if (_stop.cancelled()) co_return;  // stopped (removed, disabled, updated) meanwhile: fire nothing more
      if (!_fire(fires[i], info ? &*info : nullptr)) {
        ++_status.refused;
        g_dropped.inc({_id, "refused"});
      }
    }
    if (_stop.cancelled()) break;
    auto next = _debounce.next_ms();
    now = steady_ms();
    uint64_t until = armed_at + 1000;  // missing directories are looked for every second
    if (next) until = std::min(until, *next);
    io::cancel_source wake_up;
    _sleep = &wake_up;
    auto slept = co_await io::sleep_for(std::chrono::milliseconds(until > now ? until - now : 0), &wake_up);
    _sleep = nullptr;
    (void)slept;  // woken early: new changes, or stop()
  }
}

}  // namespace xerv::flows
