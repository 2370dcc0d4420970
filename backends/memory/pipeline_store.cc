#include "backends/memory/pipeline_store.h"

#include <algorithm>
#include <charconv>

#include <dirent.h>

#include "io/file.h"
#include "io/log.h"

namespace xerv::backends::memory {
namespace {

using stored_state = pipeline_store::stored_state;

// "STATE REVISION[ disabled=TRIGGER,TRIGGER]"
std::string state_text(core::pipeline_state s, uint64_t revision, const std::vector<std::string>& disabled) {
  std::string out = std::string(core::to_string(s)) + " " + std::to_string(revision);
  for (size_t i = 0; i < disabled.size(); ++i) out += (i ? "," : " disabled=") + disabled[i];
  return out + "\n";
}

// "STATE [REVISION [disabled=...]]"; nullopt when malformed.
std::optional<stored_state> parse_state_file(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::vector<std::string_view> words;
  for (size_t at = 0; at <= text.size();) {
    size_t sp = std::min(text.find(' ', at), text.size());
    words.push_back(text.substr(at, sp - at));
    at = sp + 1;
  }
  stored_state out;
  auto state = core::parse_pipeline_state(words[0]);
  if (!state || words.size() > 3) return std::nullopt;
  out.state = *state;
  if (words.size() > 1) {
    std::string_view r = words[1];
    auto [p, ec] = std::from_chars(r.data(), r.data() + r.size(), out.revision);
    if (ec != std::errc() || p != r.data() + r.size() || out.revision == 0) return std::nullopt;
  }
  if (words.size() > 2) {
    std::string_view d = words[2];
    if (!d.starts_with("disabled=")) return std::nullopt;
    d.remove_prefix(9);
    for (size_t at = 0; at <= d.size();) {
      size_t comma = std::min(d.find(',', at), d.size());
      if (comma == at) return std::nullopt;
      out.disabled.emplace_back(d.substr(at, comma - at));
      at = comma + 1;
    }
  }
  return out;
}

}  // namespace


pipeline_store::stored pipeline_store::read_dir(const std::string& dir) {
  stored out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;  // nothing stored yet
  std::vector<std::string> names, states;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.ends_with(".yaml")) names.push_back(n.substr(0, n.size() - 5));
    if (n.size() > 6 && n.ends_with(".state")) states.push_back(n.substr(0, n.size() - 6));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    core::pipeline_change c;
    c.name = name;
    if (!io::read_file_blocking(dir + "/" + name + ".yaml", c.source)) {
      out.problems.push_back(dir + "/" + name + ".yaml: cannot be read");
      continue;
    }
    c.revision = 1;
    std::string state;
    if (io::read_file_blocking(dir + "/" + name + ".state", state)) {
      if (auto s = parse_state_file(state)) {
        c.state = s->state;
        c.revision = s->revision;
        c.disabled = std::move(s->disabled);
      } else {
        out.warnings.push_back(dir + "/" + name + ".state: expected \"STATE REVISION\"; the pipeline starts running");
      }
    }
    out.pipelines.push_back(std::move(c));
  }
  // States of pipelines whose flow comes from XERV_PIPELINES_DIR.
  for (const auto& name : states) {
    if (std::binary_search(names.begin(), names.end(), name)) continue;
    std::string text;
    if (!io::read_file_blocking(dir + "/" + name + ".state", text)) continue;
    if (auto s = parse_state_file(text)) out.states[name] = *s;
    else out.warnings.push_back(dir + "/" + name + ".state: expected \"STATE REVISION\"; the pipeline starts running");
  }
  return out;
}

pipeline_store::pipeline_store(std::string dir, std::vector<core::pipeline_change> initial,
                               const std::map<std::string, stored_state>& states)
    : _dir(std::move(dir)), _initial(std::move(initial)) {
  for (const auto& [name, st] : states) _current[name] = current{st.revision, st.state, false, st.disabled};
  for (auto& c : _initial) {
    c.seq = ++_seq;
    _current[c.name] = current{c.revision, c.state, true, c.disabled};
  }
}

pipeline_store::~pipeline_store() = default;

io::task<io::result<std::vector<core::pipeline_change>>> pipeline_store::load() { co_return _initial; }

std::unique_ptr<core::pipeline_watch> pipeline_store::watch() { return _feed.watch(); }

io::task<io::result<void>> pipeline_store::store(const core::pipeline_change& c) {
  // A state change is stored even for a pipeline loaded from XERV_PIPELINES_DIR:
  // the state an operator set survives restarts.
  if (_dir.empty() || (!c.persist && c.what == core::pipeline_change::kind::deploy)) co_return io::result<void>{};
  // (Operands bound to names first: GCC 12 and temporaries in co_await, docs/runtime.md.)
  auto making = io::make_dirs(_dir);
  if (auto d = co_await std::move(making); !d) co_return d;
  if (c.what == core::pipeline_change::kind::deploy) {
    auto writing = io::write_file_atomic(_dir + "/" + c.name + ".yaml", c.source);
    if (auto w = co_await std::move(writing); !w) co_return w;
  }
  auto writing = io::write_file_atomic(_dir + "/" + c.name + ".state", state_text(c.state, c.revision, c.disabled));
  co_return co_await std::move(writing);
}

io::task<io::result<void>> pipeline_store::unstore(std::string name) {
  if (_dir.empty()) co_return io::result<void>{};
  auto removing_yaml = io::remove_file(_dir + "/" + name + ".yaml");
  if (auto a = co_await std::move(removing_yaml); !a) co_return a;
  auto removing_state = io::remove_file(_dir + "/" + name + ".state");
  co_return co_await std::move(removing_state);
}

io::task<io::result<core::pipeline_change>> pipeline_store::publish(core::pipeline_change c, uint64_t expected) {
  using kind = core::pipeline_change::kind;
  auto it = _current.find(c.name);
  uint64_t now = it == _current.end() ? 0 : it->second.revision;
  // (The definition lives in its file: a state or trigger change carries none.)
  std::optional<core::pipeline_change> was;
  if (it != _current.end()) {
    was.emplace();
    was->revision = now;
    was->state = it->second.state;
    was->persist = it->second.persist;
    was->disabled = it->second.disabled;
  }
  auto ruled = core::apply_publish(std::move(c), was ? &*was : nullptr, expected);
  if (!ruled) co_return ruled.error();
  c = std::move(*ruled);
  if (c.what == kind::remove) {
    auto unstoring = unstore(c.name);
    auto gone = co_await std::move(unstoring);
    if (!gone) co_return gone.error();
  } else {
    auto storing = store(c);
    auto kept = co_await std::move(storing);
    if (!kept) co_return kept.error();
  }
  // Rechecked after the writes: the caller (one control plane) serializes
  // changes, so nothing else may have moved this pipeline meanwhile.
  ASSERT(_current.count(c.name) ? _current[c.name].revision == now : now == 0, "pipeline %s changed during publish",
         c.name.c_str());
  if (c.what == kind::remove) _current.erase(c.name);
  else _current[c.name] = current{c.revision, c.state, c.persist, c.disabled};
  c.seq = ++_seq;
  _feed.push(c);
  co_return c;
}

}  // namespace xerv::backends::memory
