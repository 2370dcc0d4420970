#include "flows/watcher.h"

#include <unistd.h>

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

uint64_t steady_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
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
      _armed_before(_params->paths.size(), 0) {}

void fs_watch::stop() {
  _stop.cancel();
  wake();
}

void fs_watch::wake() {
  if (_sleep) _sleep->cancel();
}

void fs_watch::set_error() {
  _status.error.clear();
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
    for (const auto& p : _params->paths) {
      auto made = co_await io::make_dirs(p);
      if (!made) XLOG(warn, "filesystem trigger %s: cannot create %s: %s", _id.c_str(), p.c_str(),
                      made.error().message().c_str());
    }
  arm_missing(steady_ms());
  auto both = io::when_all(read_loop(), settle_loop());
  co_await std::move(both);
}

void fs_watch::arm_missing(uint64_t now) {
  bool changed = false;
  for (size_t i = 0; i < _root_wd.size(); ++i) {
    if (_root_wd[i] >= 0) continue;
    bool announce = _armed_before[i];
    if (!watch_tree(_params->paths[i], i, announce, now)) continue;
    changed = true;
    if (announce) XLOG(info, "filesystem trigger %s: %s is back, watching it again", _id.c_str(), _params->paths[i].c_str());
    _armed_before[i] = 1;
    _root_error[i].clear();
  }
  if (changed) wake();
  set_error();
}

bool fs_watch::watch_tree(const std::string& top, size_t root, bool announce, uint64_t now) {
  std::vector<std::string> dirs{top};
  bool top_ok = false;
  while (!dirs.empty()) {
    std::string dir = std::move(dirs.back());
    dirs.pop_back();
    if (_wds.size() >= watches_max) {
      _root_error[root] = _params->paths[root] + ": more than " + std::to_string(watches_max) + " directories";
      XLOG(warn, "filesystem trigger %s: %s; the rest is not watched", _id.c_str(), _root_error[root].c_str());
      break;
    }
    auto wd = _fd.add(dir, dir_mask);
    if (!wd) {
      if (dir == top) {
        _root_error[root] = top + ": " + wd.error().message();
        return false;
      }
      // A subdirectory gone again, or out of watches (fs.inotify.max_user_watches).
      if (wd.error() != std::errc::no_such_file_or_directory)
        XLOG(warn, "filesystem trigger %s: cannot watch %s: %s", _id.c_str(), dir.c_str(), wd.error().message().c_str());
      continue;
    }
    _wds[*wd] = {dir, root};
    if (dir == top) {
      _root_wd[root] = *wd;
      top_ok = true;
    }
    if (!_params->recursive && !announce) continue;
    auto entries = io::list_dir(dir);
    if (!entries) continue;
    for (const auto& e : *entries) {
      std::string path = dir + "/" + e.name;
      if (e.is_dir) {
        if (_params->recursive) dirs.push_back(std::move(path));
      } else if (announce && _params->matches(e.name) && !_debounce.add(path, fs_change::appeared, 0, now)) {
        ++_status.dropped;
        g_dropped.inc({_id, "queue_full"});
      }
    }
  }
  return top_ok;
}

void fs_watch::unwatch_tree(const std::string& dir) {
  std::string prefix = dir + "/";
  for (auto it = _wds.begin(); it != _wds.end();) {
    if (it->second.dir == dir || it->second.dir.starts_with(prefix)) {
      if (_root_wd[it->second.root] == it->first) ++it;  // a root: its own IN_MOVE_SELF handles it
      else {
        _fd.remove(it->first);
        it = _wds.erase(it);
      }
    } else {
      ++it;
    }
  }
}

void fs_watch::handle(const inotify_event& e, uint64_t now) {
  if (e.mask & IN_Q_OVERFLOW) {
    ++_status.overflows;
    g_dropped.inc({_id, "overflow"});
    if (worth_logging(_status.overflows))
      XLOG(warn, "filesystem trigger %s: the kernel's event queue overflowed, events were lost (%llu times; see "
                 "fs.inotify.max_queued_events)", _id.c_str(), static_cast<unsigned long long>(_status.overflows));
    return;
  }
  auto w = _wds.find(e.wd);
  if (w == _wds.end()) return;  // a watch removed meanwhile
  size_t root = w->second.root;
  bool is_root = _root_wd[root] == e.wd;
  if (e.mask & IN_IGNORED || (is_root && e.mask & IN_MOVE_SELF)) {
    if (!is_root) {
      _wds.erase(w);
      set_error();
      return;
    }
    if (e.mask & IN_MOVE_SELF) _fd.remove(e.wd);  // watching it under its new name would be wrong
    unwatch_tree(_params->paths[root]);
    _wds.erase(e.wd);
    _root_wd[root] = -1;
    _root_error[root] = _params->paths[root] + ": the directory was " + (e.mask & IN_MOVE_SELF ? "moved" : "deleted");
    XLOG(warn, "filesystem trigger %s: %s; watching for it to come back", _id.c_str(), _root_error[root].c_str());
    set_error();
    return;
  }
  if (!e.len) return;  // an event on the directory itself
  std::string name(e.name, strnlen(e.name, e.len));
  std::string path = w->second.dir + "/" + name;
  if (e.mask & IN_ISDIR) {
    if (!_params->recursive) return;
    // A directory renamed inside the tree brings no new files; one made or moved in does.
    if (e.mask & (IN_CREATE | IN_MOVED_TO)) watch_tree(path, root, !(e.mask & IN_MOVED_TO && e.cookie == _dir_moved), now);
    if (e.mask & IN_MOVED_FROM) {
      unwatch_tree(path);
      _dir_moved = e.cookie;
    }
    set_error();
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
    auto got = co_await _fd.read(std::span<char>(buf.data(), buf.size()), &_stop);
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
    if (_debounce.next_ms() != before) wake();
  }
}

io::task<void> fs_watch::settle_loop() {
  uint64_t armed_at = steady_ms();
  while (!_stop.cancelled()) {
    uint64_t now = steady_ms();
    if (now >= armed_at + 1000) {
      armed_at = now;
      arm_missing(now);
    }
    std::vector<fs_fire> fires = _debounce.due(now);
    for (size_t i = 0; i < fires.size(); ++i) {
      std::optional<io::path_info> info;
      if (fires[i].event != fs_event::deleted) {
        auto stat = io::stat_path(fires[i].path);
        auto st = co_await std::move(stat);
        if (st) info = *st;  // gone already: size and mtime are null
      }
      if (!_fire(fires[i], info ? &*info : nullptr)) {
        ++_status.refused;
        g_dropped.inc({_id, "refused"});
      }
    }
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
