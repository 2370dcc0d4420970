#pragma once
// Filesystem triggers (SPEC §3), the part without I/O: the trigger's params and
// the debouncer that turns inotify's stream of changes into one event per file.
// flows/watcher.h drives it from a real inotify descriptor; the unit tests drive
// it with a fake clock.
//
// Debounce. Every change to a path restarts its quiet period of `debounce_ms`;
// the path fires once that passes. A file still open for writing (created or
// modified, no close-write yet) waits for its close-write too, for at most
// max(10 × debounce_ms, 1 s) of quiet: a slow writer fires once, after it
// closed, and a hard link (no close-write ever) still fires. Within one window
// the changes of a path coalesce into what a reader of the directory would see:
//   created + modified = created      created + deleted = nothing
//   modified + deleted = deleted      deleted + created = modified (replaced)
//   a rename inside the watched paths = moved (with `from`); moved in from
//   elsewhere = created; moved out = deleted; created, then renamed = created
//   at the new name (write-then-rename drops fire once, as created); renamed
//   and then deleted = deleted under the old name; renamed away and back = nothing.
// Patterns (globs on the file name, fnmatch) apply to both names of a rename:
// renamed from a non-matching name (x.tmp → x.csv) is created, to one is deleted.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace xerv::flows {

enum class fs_event : uint8_t { created = 1, modified = 2, deleted = 4, moved = 8 };
const char* to_string(fs_event e);
std::optional<fs_event> parse_fs_event(std::string_view s);
inline constexpr uint8_t fs_all_events = 15;

struct fs_trigger {
  std::vector<std::string> paths;     // absolute, no trailing slash
  uint8_t events = fs_all_events;     // fs_event bits
  std::vector<std::string> patterns;  // none: every file
  bool recursive = false;
  bool create = false;  // make missing directories when armed, instead of refusing the deploy
  uint32_t debounce_ms = 100;

  bool operator==(const fs_trigger&) const = default;
  // `name`: a file name (the part after the last slash).
  bool matches(std::string_view name) const;
};

// What inotify said about one path.
enum class fs_change : uint8_t {
  create,       // IN_CREATE
  modify,       // IN_MODIFY
  close_write,  // IN_CLOSE_WRITE
  remove,       // IN_DELETE
  moved_from,   // IN_MOVED_FROM (with its cookie)
  moved_to,     // IN_MOVED_TO (with its cookie)
  appeared,     // found in a directory that was just watched (created there, or moved in)
};

struct fs_fire {
  std::string path;
  std::string from;  // moved: the old path
  fs_event event = fs_event::created;
};

class fs_debounce {
 public:
  fs_debounce(const fs_trigger& params, size_t pending_max);

  // False when `pending_max` paths already wait: the change is dropped.
  bool add(const std::string& path, fs_change c, uint32_t cookie, uint64_t now_ms);
  // The paths whose quiet period is over, as the trigger's events and patterns
  // see them (filtered): renamed away for good first, then the others oldest
  // first.
  std::vector<fs_fire> due(uint64_t now_ms);
  // When the next path is due (nullopt: none waits).
  std::optional<uint64_t> next_ms() const;
  // A directory renamed inside the watched paths: what waits under `from/`
  // waits under `to/` now.
  void rename_dir(const std::string& from, const std::string& to);
  size_t size() const { return _pending.size() + _renames.size(); }

 private:
  struct entry {
    fs_event event = fs_event::created;
    std::string from;
    bool writing = false;
    bool written = false;  // its content changed in this window (renamed back: modified)
    uint64_t last_ms = 0;
  };
  struct rename {  // a moved_from waiting for its moved_to
    std::string path;
    std::optional<entry> before;  // what was pending for the old path
    uint64_t at_ms = 0;
  };
  uint64_t ready_ms(const entry& e) const;
  void emit(std::vector<fs_fire>& out, std::string path, const entry& e) const;

  const fs_trigger& _params;
  size_t _pending_max;
  uint64_t _write_quiet_ms;
  std::unordered_map<std::string, entry> _pending;
  std::unordered_map<uint32_t, rename> _renames;
};

}  // namespace xerv::flows
