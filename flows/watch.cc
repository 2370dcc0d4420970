#include "flows/watch.h"

#include <fnmatch.h>

#include <algorithm>

namespace xerv::flows {

namespace {
constexpr const char* event_names[] = {"created", "modified", "deleted", "moved"};

std::string_view file_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}
}  // namespace

const char* to_string(fs_event e) {
  switch (e) {
    case fs_event::created: return event_names[0];
    case fs_event::modified: return event_names[1];
    case fs_event::deleted: return event_names[2];
    case fs_event::moved: return event_names[3];
  }
  return "unknown";
}

std::optional<fs_event> parse_fs_event(std::string_view s) {
  for (unsigned i = 0; i < 4; ++i)
    if (s == event_names[i]) return fs_event(1u << i);
  return std::nullopt;
}

bool fs_trigger::matches(std::string_view name) const {
  if (patterns.empty()) return true;
  std::string n(name);
  for (const auto& p : patterns)
    if (::fnmatch(p.c_str(), n.c_str(), FNM_PERIOD) == 0) return true;
  return false;
}

fs_debounce::fs_debounce(const fs_trigger& params, size_t pending_max)
    : _params(params),
      _pending_max(pending_max),
      _write_quiet_ms(std::max<uint64_t>(10ull * params.debounce_ms, 1000)) {}

uint64_t fs_debounce::ready_ms(const entry& e) const {
  return e.last_ms + (e.writing ? _write_quiet_ms : _params.debounce_ms);
}

bool fs_debounce::add(const std::string& path, fs_change c, uint32_t cookie, uint64_t now_ms) {
  auto it = _pending.find(path);
  bool known = it != _pending.end();
  if (c == fs_change::moved_from) {
    if (!known && size() >= _pending_max) return false;
    rename r{path, std::nullopt, now_ms};
    if (known) {
      r.before = std::move(it->second);
      _pending.erase(it);
    }
    _renames[cookie] = std::move(r);
    return true;
  }
  std::optional<entry> carried;  // moved_to: what the old name had pending
  std::string from;
  if (c == fs_change::moved_to) {
    auto r = _renames.find(cookie);
    if (r == _renames.end()) {
      c = fs_change::appeared;
    } else {
      carried = std::move(r->second.before);
      from = std::move(r->second.path);
      _renames.erase(r);
    }
  }
  if (!known) {
    if (size() >= _pending_max) return false;
    it = _pending.emplace(path, entry{}).first;
  }
  entry& e = it->second;
  if (c == fs_change::create || c == fs_change::modify || c == fs_change::close_write || c == fs_change::appeared)
    e.written = true;
  switch (c) {
    case fs_change::create:
      e.event = known && e.event == fs_event::deleted ? fs_event::modified : known ? e.event : fs_event::created;
      e.writing = true;
      break;
    case fs_change::modify:
      if (!known) e.event = fs_event::modified;
      e.writing = true;
      break;
    case fs_change::close_write:
      if (!known) e.event = fs_event::modified;
      e.writing = false;
      break;
    case fs_change::remove:
      if (known && e.event == fs_event::created) {
        _pending.erase(it);  // it came and went within one window
        return true;
      }
      // Renamed here and deleted: the name a reader knew (`from`) is gone.
      if (!known || e.event != fs_event::moved) e.from.clear();
      e.event = fs_event::deleted;
      e.writing = false;
      break;
    case fs_change::appeared:
      e.event = known && e.event == fs_event::deleted ? fs_event::modified : fs_event::created;
      e.from.clear();
      e.writing = false;
      break;
    case fs_change::moved_to:
      if (carried && carried->event == fs_event::created) {
        // Never seen under its old name: new here (or a replacement of a deleted one).
        fs_event ev = known && e.event == fs_event::deleted ? fs_event::modified : fs_event::created;
        e = *carried;
        e.event = ev;
      } else {
        e.event = fs_event::moved;
        e.from = carried && carried->event == fs_event::moved ? std::move(carried->from) : std::move(from);
        e.writing = carried && carried->writing;
        e.written = carried && carried->written;
        if (e.from == path) {  // renamed away and back: only what happened to its content counts
          if (!e.written) {
            _pending.erase(it);
            return true;
          }
          e.event = fs_event::modified;
          e.from.clear();
        }
      }
      break;
    case fs_change::moved_from: break;  // handled above
  }
  e.last_ms = now_ms;
  return true;
}

void fs_debounce::emit(std::vector<fs_fire>& out, std::string path, const entry& e) const {
  fs_fire f{std::move(path), {}, e.event};
  if (e.event == fs_event::deleted && !e.from.empty()) f.path = e.from;
  if (e.event == fs_event::moved) {
    bool to = _params.matches(file_name(f.path)), was = _params.matches(file_name(e.from));
    if (to && was) f.from = e.from;
    else if (to) f.event = fs_event::created;
    else if (was) f = {e.from, {}, fs_event::deleted};
    else return;
  } else if (!_params.matches(file_name(f.path))) {
    return;
  }
  if (_params.events & uint8_t(f.event)) out.push_back(std::move(f));
}

std::vector<fs_fire> fs_debounce::due(uint64_t now_ms) {
  std::vector<std::pair<uint64_t, std::string>> ready;
  for (const auto& [path, e] : _pending)
    if (ready_ms(e) <= now_ms) ready.emplace_back(e.last_ms, path);
  std::vector<fs_fire> out;
  // Renamed away and not back into the watched paths within a window: gone.
  for (auto it = _renames.begin(); it != _renames.end();) {
    rename& r = it->second;
    if (r.at_ms + _params.debounce_ms > now_ms) {
      ++it;
      continue;
    }
    if (!r.before || r.before->event != fs_event::created) {
      bool was_moved = r.before && r.before->event == fs_event::moved;
      emit(out, was_moved ? r.before->from : r.path, entry{fs_event::deleted, {}, false, false, r.at_ms});
    }
    it = _renames.erase(it);
  }
  std::sort(ready.begin(), ready.end());
  for (auto& [at, path] : ready) {
    auto it = _pending.find(path);
    entry e = std::move(it->second);
    _pending.erase(it);
    emit(out, std::move(path), e);
  }
  return out;
}

void fs_debounce::rename_dir(const std::string& from, const std::string& to) {
  std::string prefix = from + "/";
  auto moved = [&](const std::string& p) { return p.starts_with(prefix) ? to + p.substr(from.size()) : p; };
  std::vector<std::pair<std::string, entry>> under;
  for (auto it = _pending.begin(); it != _pending.end();) {
    if (!it->first.starts_with(prefix)) {
      ++it;
      continue;
    }
    under.emplace_back(moved(it->first), std::move(it->second));
    it = _pending.erase(it);
  }
  for (auto& [path, e] : under) {
    e.from = moved(e.from);
    _pending.insert_or_assign(std::move(path), std::move(e));
  }
  for (auto& [cookie, r] : _renames) r.path = moved(r.path);
}

std::optional<uint64_t> fs_debounce::next_ms() const {
  std::optional<uint64_t> next;
  for (const auto& [path, e] : _pending) next = std::min(next.value_or(~0ull), ready_ms(e));
  for (const auto& [cookie, r] : _renames) next = std::min(next.value_or(~0ull), r.at_ms + _params.debounce_ms);
  return next;
}

}  // namespace xerv::flows
