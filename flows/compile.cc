#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/trace_id.h"
#include "flows/flow.h"

namespace xerv::flows {
namespace {

// Looks at the event stream before building the tree: aliases and anchors (alias
// bombs), custom tags, nesting depth, more than one document and map keys that are
// not scalars (keys become names and JSON object keys) are refused here.
class guard_handler : public YAML::EventHandler {
 public:
  guard_handler(std::vector<flow_error>& errors, size_t depth_max) : _errors(errors), _depth_max(depth_max) {}
  void OnDocumentStart(const YAML::Mark& m) override {
    if (++_documents == 2) add(m, "invalid YAML: content after the end of the document (a flow is one YAML document)");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t anchor) override {
    node_starts(m, false);
    check_anchor(m, anchor);
  }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override {
    node_starts(m, false);
    add(m, "YAML aliases are not allowed");
  }
  void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor, const std::string&) override {
    node_starts(m, false);
    check_anchor(m, anchor);
    check_tag(m, tag);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    open(m, tag, anchor, frame::sequence);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    open(m, tag, anchor, frame::key);
  }
  void OnMapEnd() override { close(); }

 private:
  // An open collection; a map alternates between expecting a key and a value.
  enum class frame : uint8_t { sequence, key, value };

  void node_starts(const YAML::Mark& m, bool collection) {
    if (_open.empty() || _open.back() == frame::sequence) return;
    if (_open.back() == frame::key && collection) add(m, "a map key must be a scalar, not a sequence or map");
    _open.back() = _open.back() == frame::key ? frame::value : frame::key;
  }
  void open(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor, frame kind) {
    node_starts(m, true);
    check_anchor(m, anchor);
    check_tag(m, tag);
    _open.push_back(kind);
    if (_open.size() > _depth_max && !_depth_reported) {
      _depth_reported = true;
      add(m, "nesting deeper than " + std::to_string(_depth_max) + " levels");
    }
  }
  void close() {
    if (!_open.empty()) _open.pop_back();  // (yaml-cpp balances them; an error must not be UB)
  }
  void check_anchor(const YAML::Mark& m, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) add(m, "YAML anchors are not allowed");
  }
  void check_tag(const YAML::Mark& m, const std::string& tag) {
    if (tag.empty() || tag == "?" || tag == "!" || tag.rfind("tag:yaml.org,2002:", 0) == 0) return;
    add(m, "custom YAML tag '" + tag + "' is not allowed");
  }
  void add(const YAML::Mark& m, std::string msg) { _errors.push_back({m.line + 1, m.column + 1, std::move(msg)}); }
  std::vector<flow_error>& _errors;
  size_t _depth_max;
  std::vector<frame> _open;  // as deep as yaml-cpp lets documents nest
  bool _depth_reported = false;
  int _documents = 0;
};

bool valid_pipeline_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool valid_vertex_name(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

class compiler {
 public:
  compiler(const YAML::Node& root, std::string_view source, const flow_limits& limits)
      : _root(root), _limits(limits), _flow(std::make_unique<compiled_flow>()) {
    _flow->source = std::string(source);
  }

  compile_result run() {
    if (!_root.IsMap()) {
      error(_root, "a flow is a YAML map with name, triggers, nodes and edges");
      return std::move(_errors);
    }
    check_top_level_keys();
    read_header();
    read_settings();
    // Structure (vertices, types, edges) must be sound for the graph checks; config
    // problems don't change the graph, so every node's config is checked regardless.
    size_t before = _errors.size();
    read_triggers();
    read_nodes();
    read_edges();
    bool structure_ok = _errors.size() == before;
    compile_nodes();
    if (structure_ok) analyse_graph();
    if (!_errors.empty()) {
      std::stable_sort(_errors.begin(), _errors.end(), [](const flow_error& a, const flow_error& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
      });
      return std::move(_errors);
    }
    return std::move(_flow);
  }

 private:
  void error(const YAML::Node& at, std::string msg) {
    YAML::Mark m = at.IsDefined() ? at.Mark() : _root.Mark();
    if (m.is_null()) m = YAML::Mark();
    _errors.push_back({m.line + 1, m.column + 1, std::move(msg)});
  }

  void check_top_level_keys() {
    static const char* known[] = {"name", "version", "description", "triggers", "nodes", "edges", "settings", "config"};
    for (const auto& kv : _root) {
      std::string k = kv.first.Scalar();
      if (std::find(std::begin(known), std::end(known), k) == std::end(known))
        error(kv.first, "unknown top-level key '" + k + "'");
    }
  }

  void read_header() {
    YAML::Node name = _root["name"];
    if (!name || !name.IsScalar()) {
      error(_root, "name is required");
    } else if (!valid_pipeline_name(name.Scalar())) {
      error(name, "pipeline name '" + name.Scalar() + "' must match [a-z0-9_-]{1,64}");
    } else {
      _flow->name = name.Scalar();
    }
    if (YAML::Node v = _root["version"]; v && v.IsScalar()) _flow->version = v.Scalar();
    else if (v) error(v, "version must be a string");
    else _flow->version = "1";
    if (YAML::Node d = _root["description"]; d && d.IsScalar()) _flow->description = d.Scalar();
    // Selectors read it as ${pipeline.config.key}: a map, or empty when absent or null.
    YAML::Node c = _root["config"];
    if (c && !c.IsMap() && !c.IsNull()) error(c, "config must be a map");
    if (c && c.IsMap()) {
      node_compiler conv(c, c, "config", {}, _errors);
      _flow->config = conv.to_value(c);
    } else {
      core::value_builder b;
      b.begin_object();
      b.end();
      _flow->config = b.finish();
    }
  }

  template <class T>
  void setting(const YAML::Node& s, const char* key, T& out, double min, double max) {
    YAML::Node n = s[key];
    if (!n) return;
    double v = 0;
    const std::string& text = n.IsScalar() ? n.Scalar() : std::string();
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (!n.IsScalar() || ec != std::errc() || p != text.data() + text.size() || v < min || v > max ||
        (std::is_integral_v<T> && v != std::floor(v))) {
      std::ostringstream msg;
      msg << "settings." << key << " must be " << (std::is_integral_v<T> ? "an integer" : "a number") << " between "
          << min << " and " << max;
      error(n, msg.str());
      return;
    }
    out = static_cast<T>(v);
  }

  void read_settings() {
    YAML::Node s = _root["settings"];
    if (!s) return;
    if (!s.IsMap()) {
      error(s, "settings must be a map");
      return;
    }
    static const char* known[] = {"max_concurrent_executions", "execution_timeout_ms", "node_timeout_ms",
                                  "max_concurrent_nodes", "circuit_breaker_threshold", "debug"};
    for (const auto& kv : s)
      if (std::find(std::begin(known), std::end(known), kv.first.Scalar()) == std::end(known))
        error(kv.first, "unknown setting '" + kv.first.Scalar() + "'");
    flow_settings& st = _flow->settings;
    setting(s, "max_concurrent_executions", st.max_concurrent_executions, 1, 1'000'000);
    setting(s, "execution_timeout_ms", st.execution_timeout_ms, 1, 86'400'000);
    setting(s, "node_timeout_ms", st.node_timeout_ms, 1, 86'400'000);
    setting(s, "max_concurrent_nodes", st.max_concurrent_nodes, 1, 10'000);
    setting(s, "circuit_breaker_threshold", st.circuit_breaker_threshold, 0, 1);
    if (YAML::Node d = s["debug"]; d) {
      if (d.IsScalar() && (d.Scalar() == "true" || d.Scalar() == "false")) st.debug = d.Scalar() == "true";
      else error(d, "settings.debug must be true or false");
    }
  }

  uint32_t add_vertex(const YAML::Node& key, std::string name, bool trigger) {
    if (!valid_vertex_name(name)) {
      error(key, "name '" + name + "' must be letters, digits, _ or - (at most 128)");
      return no_index;
    }
    if (_names.count(name)) {
      error(key, "duplicate name '" + name + "' (triggers and nodes share one namespace)");
      return no_index;
    }
    auto idx = uint32_t(_flow->vertices.size());
    _names[name] = idx;
    vertex v;
    v.name = std::move(name);
    v.is_trigger = trigger;
    v.line = key.Mark().line + 1;
    _flow->vertices.push_back(std::move(v));
    _defs.push_back(key);
    return idx;
  }

  void read_trigger(const YAML::Node& at, std::string id, const YAML::Node& def) {
    uint32_t idx = add_vertex(at, id, true);
    trigger_def t;
    t.id = std::move(id);
    t.vertex = idx;
    // yaml-cpp throws on a subscript of a scalar or of a missing node: look at the
    // shape of each node before reading into it.
    YAML::Node type = def.IsMap() ? def["type"] : YAML::Node();
    if (!type || !type.IsScalar()) {
      error(def, "trigger '" + t.id + "': type is required");
      return;
    }
    t.type = type.Scalar();
    YAML::Node given = def["params"];
    if (given && !given.IsMap() && !given.IsNull()) error(given, "trigger '" + t.id + "': params must be a map");
    YAML::Node params = given && given.IsMap() ? given : YAML::Node(YAML::NodeType::Map);
    if (t.type == "webhook") {
      YAML::Node path = params["path"];
      if (!path || !path.IsScalar() || path.Scalar().empty() || path.Scalar()[0] != '/') {
        error(given ? given : def, "trigger '" + t.id + "': webhook params.path must start with /");
      } else {
        t.path = path.Scalar();
      }
      if (YAML::Node m = params["method"]; m) {
        std::string method = m.Scalar();
        std::transform(method.begin(), method.end(), method.begin(), ::toupper);
        if (method != "POST" && method != "PUT" && method != "GET" && method != "PATCH" && method != "DELETE")
          error(m, "trigger '" + t.id + "': webhook method must be GET, POST, PUT, PATCH or DELETE");
        t.method = method;
      }
      if (YAML::Node r = params["respond"]; r) {
        if (r.Scalar() == "sync") t.respond = respond_mode::sync;
        else if (r.Scalar() == "async") t.respond = respond_mode::async;
        else error(r, "trigger '" + t.id + "': respond must be sync or async");
      }
    } else if (t.type == "manual" || t.type == "memory") {
      // No parameters.
    } else if (t.type == "cron") {
      read_cron(t, given ? given : def, params);
    } else if (t.type == "queue") {
      read_queue(t, given ? given : def, params);
    } else if (t.type == "filesystem") {
      read_filesystem(t, given ? given : def, params);
    } else {
      error(type, "trigger '" + t.id + "': unknown trigger type '" + t.type +
                      "' (webhook, manual, memory, cron, filesystem, queue)");
    }
    if (idx != no_index) {
      _flow->vertices[idx].ports = {"out"};
      _flow->triggers.push_back(std::move(t));
    }
  }

  // A param that names one of `all` (by to_string); absent: `out` stays.
  template <class E, size_t N>
  void pick(const YAML::Node& n, E& out, const E (&all)[N], const std::string& what) {
    if (!n) return;
    for (E v : all)
      if (n.IsScalar() && n.Scalar() == to_string(v)) {
        out = v;
        return;
      }
    std::string names;
    for (E v : all) names += std::string(names.empty() ? "" : ", ") + to_string(v);
    error(n, what + " must be one of " + names);
  }

  void read_cron(trigger_def& t, const YAML::Node& at, const YAML::Node& params) {
    auto c = std::make_shared<cron_trigger>();
    std::string what = "trigger '" + t.id + "': ";
    YAML::Node sched = params["schedule"];
    if (!sched || !sched.IsScalar()) {
      error(at, what + "cron params.schedule is required (e.g. \"*/5 * * * *\")");
      return;
    }
    auto parsed = cron_schedule::parse(sched.Scalar());
    if (auto* e = std::get_if<std::string>(&parsed)) return error(sched, what + *e);
    c->schedule = std::get<cron_schedule>(std::move(parsed));
    if (YAML::Node tz = params["timezone"]; tz) {
      auto z = tz.IsScalar() ? time_zone::load(tz.Scalar()) : std::variant<time_zone, std::string>("a string");
      if (auto* e = std::get_if<std::string>(&z)) return error(tz, what + "timezone: " + *e);
      c->zone = std::get<time_zone>(std::move(z));
    }
    if (!c->schedule.next(int64_t(core::unix_ms_now() / 1000), c->zone))
      return error(sched, what + "schedule '" + sched.Scalar() + "' never fires");
    static const cron_missed missed[] = {cron_missed::skip, cron_missed::run_once, cron_missed::run_all};
    static const cron_overlap overlap[] = {cron_overlap::allow, cron_overlap::skip, cron_overlap::queue};
    pick(params["missed"], c->missed, missed, what + "missed");
    pick(params["overlap"], c->overlap, overlap, what + "overlap");
    for (const auto& kv : params) {
      std::string k = kv.first.Scalar();
      if (k != "schedule" && k != "timezone" && k != "missed" && k != "overlap")
        error(kv.first, what + "unknown cron param '" + k + "' (schedule, timezone, missed, overlap)");
    }
    t.cron = std::move(c);
  }

  void read_queue(trigger_def& t, const YAML::Node& at, const YAML::Node& params) {
    std::string what = "trigger '" + t.id + "': ";
    YAML::Node q = params["queue"];
    if (!q || !q.IsScalar() || !valid_pipeline_name(q.Scalar())) {
      error(q ? q : at, what + "queue params.queue (the queue's name, [a-z0-9_-]{1,64}) is required");
      return;
    }
    t.queue = q.Scalar();
    for (const auto& other : _flow->triggers)
      if (other.queue == t.queue) error(q, what + "queue '" + t.queue + "' is already consumed by trigger '" + other.id + "'");
    if (YAML::Node c = params["capacity"]; c) {
      uint64_t v = 0;
      const std::string& text = c.IsScalar() ? c.Scalar() : std::string();
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size() || v < 1 || v > 1'000'000)
        error(c, what + "capacity must be an integer between 1 and 1000000");
      else t.capacity = uint32_t(v);
    }
    for (const auto& kv : params) {
      std::string k = kv.first.Scalar();
      if (k != "queue" && k != "capacity") error(kv.first, what + "unknown queue param '" + k + "' (queue, capacity)");
    }
  }

  // A scalar or a sequence of scalars, as strings; false (reported) otherwise.
  bool strings(const YAML::Node& n, const std::string& what, std::vector<std::string>& out) {
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
      return true;
    }
    if (n.IsSequence()) {
      for (const auto& item : n) {
        if (!item.IsScalar()) return error(item, what + " must be strings"), false;
        out.push_back(item.Scalar());
      }
      return true;
    }
    return error(n, what + " must be a string or a list of strings"), false;
  }

  bool flag(const YAML::Node& n, const std::string& what, bool& out) {
    if (!n) return true;
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) {
      out = n.Scalar() == "true";
      return true;
    }
    return error(n, what + " must be true or false"), false;
  }

  void read_filesystem(trigger_def& t, const YAML::Node& at, const YAML::Node& params) {
    auto fs = std::make_shared<fs_trigger>();
    std::string what = "trigger '" + t.id + "': ";
    for (const auto& kv : params) {
      std::string k = kv.first.Scalar();
      if (k != "paths" && k != "events" && k != "patterns" && k != "recursive" && k != "debounce_ms" && k != "create")
        error(kv.first, what + "unknown filesystem param '" + k +
                            "' (paths, events, patterns, recursive, debounce_ms, create)");
    }
    flag(params["recursive"], what + "recursive", fs->recursive);
    flag(params["create"], what + "create", fs->create);
    YAML::Node paths = params["paths"];
    if (!paths || (paths.IsSequence() && paths.size() == 0)) {
      error(paths ? paths : at, what + "filesystem params.paths (directories to watch) is required");
      return;
    }
    std::vector<std::string> given;
    if (!strings(paths, what + "paths", given)) return;
    for (const std::string& given_path : given) {
      std::string p = std::filesystem::path(given_path).lexically_normal().string();
      while (p.size() > 1 && p.back() == '/') p.pop_back();
      if (p.empty() || p[0] != '/') {
        error(paths, what + "path '" + given_path + "' must be absolute");
        continue;
      }
      // One watch per directory: two roots sharing one would mix up their events.
      bool overlaps = false;
      for (const auto& q : fs->paths) {
        auto inside = [](const std::string& a, const std::string& b) {
          return a == b || b == "/" || a.starts_with(b + "/");
        };
        if (inside(p, q) || inside(q, p)) {
          error(paths, what + "paths '" + q + "' and '" + p + "' overlap (list each directory once)");
          overlaps = true;
        }
      }
      if (overlaps) continue;
      // A deploy is a rare control-plane call: one stat per path, like loading a
      // time zone, and the user hears of a typo now rather than from /triggers.
      struct stat st {};
      if (_limits.paths_must_exist && !fs->create && ::stat(p.c_str(), &st) != 0)
        error(paths, what + "path '" + p + "': " + std::strerror(errno) + " (or set create: true)");
      else if (_limits.paths_must_exist && !fs->create && !S_ISDIR(st.st_mode))
        error(paths, what + "path '" + p + "' is not a directory");
      fs->paths.push_back(std::move(p));
    }
    if (YAML::Node ev = params["events"]; ev) {
      std::vector<std::string> names;
      if (strings(ev, what + "events", names)) {
        fs->events = 0;
        for (const auto& n : names) {
          if (auto e = parse_fs_event(n)) fs->events |= uint8_t(*e);
          else error(ev, what + "unknown event '" + n + "' (created, modified, deleted, moved)");
        }
        if (!fs->events) error(ev, what + "events must name at least one of created, modified, deleted, moved");
      }
    }
    if (YAML::Node pat = params["patterns"]; pat && strings(pat, what + "patterns", fs->patterns))
      for (const auto& g : fs->patterns)
        if (g.empty() || g.find('/') != std::string::npos)
          error(pat, what + "pattern '" + g + "' must be a non-empty glob on the file name (no '/')");
    if (YAML::Node d = params["debounce_ms"]; d) {
      uint64_t v = 0;
      const std::string& text = d.IsScalar() ? d.Scalar() : std::string();
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size() || v > 60'000)
        error(d, what + "debounce_ms must be an integer between 0 and 60000");
      else fs->debounce_ms = uint32_t(v);
    }
    t.fs = std::move(fs);
  }

  void read_triggers() {
    YAML::Node ts = _root["triggers"];
    if (!ts || ts.IsNull() || (ts.IsSequence() && ts.size() == 0)) {
      error(_root, "at least one trigger is required");
      return;
    }
    if (ts.IsSequence()) {
      for (const auto& t : ts) {
        YAML::Node id = t.IsMap() ? t["id"] : YAML::Node();
        if (!id || !id.IsScalar()) {
          error(t, "each trigger needs an id");
          continue;
        }
        read_trigger(id, id.Scalar(), t);
      }
    } else if (ts.IsMap()) {
      for (const auto& kv : ts) read_trigger(kv.first, kv.first.Scalar(), kv.second);
    } else {
      error(ts, "triggers must be a list or a map");
    }
  }

  void read_nodes() {
    YAML::Node ns = _root["nodes"];
    if (!ns || ns.IsNull()) {
      error(_root, "nodes is required");
      return;
    }
    if (!ns.IsMap()) {
      error(ns, "nodes must be a map of node name to definition");
      return;
    }
    if (ns.size() > _limits.nodes_max) {
      error(ns, "more than " + std::to_string(_limits.nodes_max) + " nodes");
      return;
    }
    for (const auto& kv : ns) {
      uint32_t idx = add_vertex(kv.first, kv.first.Scalar(), false);
      if (idx == no_index) continue;
      const YAML::Node& def = kv.second;
      vertex& v = _flow->vertices[idx];
      if (!def.IsMap()) {
        error(def, "node '" + v.name + "': definition must be a map with a type");
        continue;
      }
      YAML::Node type = def["type"];
      if (!type || !type.IsScalar()) {
        error(def, "node '" + v.name + "': type is required");
        continue;
      }
      v.type = find_node_type(type.Scalar());
      if (!v.type) {
        std::string known;
        for (const auto& n : node_type_names()) known += (known.empty() ? "" : ", ") + n;
        error(type, "node '" + v.name + "': unknown node type '" + type.Scalar() + "' (known: " + known + ")");
        continue;
      }
      if (v.type->shape == node_shape::wait) _flow->has_wait = true;
      v.ports = v.type->ports;
      v.ports.push_back("error");
      _node_defs[idx] = def;
    }
  }

  void compile_nodes() {
    node_lookup lookup = [this](std::string_view name) -> std::optional<uint32_t> {
      auto it = _names.find(std::string(name));
      if (it == _names.end()) return std::nullopt;
      return it->second;
    };
    for (auto& [idx, def] : _node_defs) {
      vertex& v = _flow->vertices[idx];
      static const char* known[] = {"type", "config", "retry", "timeout_ms", "description"};
      for (const auto& kv : def)
        if (std::find(std::begin(known), std::end(known), kv.first.Scalar()) == std::end(known))
          error(kv.first, "node '" + v.name + "': unknown key '" + kv.first.Scalar() + "'");
      YAML::Node config = def["config"];
      if (config && !config.IsMap() && !config.IsNull()) {
        error(config, "node '" + v.name + "': config must be a map");
        continue;
      }
      node_compiler nc(config ? config : YAML::Node(YAML::NodeType::Map), def, v.name, lookup, _errors);
      v.impl = v.type->compile(nc);
      if (!v.impl && !nc.failed()) error(def, "node '" + v.name + "': invalid config");
      if (YAML::Node r = def["retry"]; r) {
        node_compiler rc(r, def, v.name, lookup, _errors);
        if (!r.IsMap()) {
          error(r, "node '" + v.name + "': retry must be a map {max_attempts, backoff_ms}");
        } else {
          if (auto n = rc.integer("max_attempts", false, 1, 1, 100)) v.retry.max_attempts = uint32_t(*n);
          if (auto b = rc.integer("backoff_ms", false, 0, 0, 3'600'000)) v.retry.backoff_ms = uint64_t(*b);
        }
      }
      if (YAML::Node t = def["timeout_ms"]; t) {
        YAML::Node wrap;
        wrap["timeout_ms"] = t;
        node_compiler tc(wrap, def, v.name, lookup, _errors);
        if (auto n = tc.integer("timeout_ms", false, 0, 1, 86'400'000)) v.timeout_ms = uint64_t(*n);
      }
    }
  }

  // "node" or "node.port".
  std::pair<std::string, std::string> split_ref(const std::string& s) {
    size_t dot = s.rfind('.');
    if (dot == std::string::npos) return {s, ""};
    return {s.substr(0, dot), s.substr(dot + 1)};
  }

  void read_edges() {
    YAML::Node es = _root["edges"];
    if (!es || es.IsNull()) return;
    if (!es.IsSequence()) {
      error(es, "edges must be a list of {from, to}");
      return;
    }
    if (es.size() > _limits.edges_max) {
      error(es, "more than " + std::to_string(_limits.edges_max) + " edges");
      return;
    }
    for (const auto& e : es) {
      if (!e.IsMap()) {
        error(e, "an edge needs from and to");
        continue;
      }
      YAML::Node from = e["from"], to = e["to"];
      if (!from || !to || !from.IsScalar() || !to.IsScalar()) {
        error(e, "an edge needs from and to");
        continue;
      }
      auto [src, port] = split_ref(from.Scalar());
      auto [dst, in_port] = split_ref(to.Scalar());
      auto s = _names.find(src);
      auto d = _names.find(dst);
      if (s == _names.end()) {
        error(from, "edge from unknown node '" + src + "'");
        continue;
      }
      if (d == _names.end()) {
        error(to, "edge to unknown node '" + dst + "'");
        continue;
      }
      vertex& sv = _flow->vertices[s->second];
      const vertex& dv = _flow->vertices[d->second];
      if (dv.is_trigger) {
        error(to, "edge into trigger '" + dst + "': triggers have no inputs");
        continue;
      }
      if (!in_port.empty() && in_port != "in") {
        error(to, "node '" + dst + "' has no input port '" + in_port + "' (nodes take input on 'in')");
        continue;
      }
      if (sv.ports.empty()) continue;  // its type was unknown: reported already
      std::string p = port.empty() ? "out" : port;
      if (port.empty() && std::find(sv.ports.begin(), sv.ports.end(), "out") == sv.ports.end()) p = sv.ports[0];
      auto it = std::find(sv.ports.begin(), sv.ports.end(), p);
      if (it == sv.ports.end()) {
        std::string known;
        for (const auto& x : sv.ports) known += (known.empty() ? "" : ", ") + x;
        error(from, "node '" + src + "' has no port '" + p + "' (ports: " + known + ")");
        continue;
      }
      edge_def ed;
      ed.from = s->second;
      ed.port = uint16_t(it - sv.ports.begin());
      ed.to = d->second;
      ed.line = from.Mark().line + 1;
      _flow->edges.push_back(ed);
    }
  }

  // Vertices reachable from `start` through edges leaving it on `port` (or any port
  // when port < 0), then through every forward edge, never entering `stop`.
  std::vector<bool> reach(uint32_t start, int port, uint32_t stop) const {
    const auto& vs = _flow->vertices;
    std::vector<bool> seen(vs.size(), false);
    std::vector<uint32_t> stack;
    for (size_t p = 0; p < vs[start].out_edges.size(); ++p) {
      if (port >= 0 && int(p) != port) continue;
      for (uint32_t e : vs[start].out_edges[p]) stack.push_back(_flow->edges[e].to);
    }
    while (!stack.empty()) {
      uint32_t v = stack.back();
      stack.pop_back();
      if (v == stop || seen[v]) continue;
      seen[v] = true;
      for (const auto& outs : vs[v].out_edges)
        for (uint32_t e : outs)
          if (!_flow->edges[e].back) stack.push_back(_flow->edges[e].to);
    }
    return seen;
  }

  uint16_t port_index(const vertex& v, std::string_view name) const {
    return uint16_t(std::find(v.ports.begin(), v.ports.end(), name) - v.ports.begin());
  }

  void analyse_graph() {
    auto& vs = _flow->vertices;
    auto& es = _flow->edges;
    for (auto& v : vs) v.out_edges.assign(v.ports.size(), {});
    for (uint32_t i = 0; i < es.size(); ++i) {
      vs[es[i].from].out_edges[es[i].port].push_back(i);
      vs[es[i].to].in_edges.push_back(i);
    }
    // Back edges: into a std::loop from its own body.
    for (uint32_t l = 0; l < vs.size(); ++l) {
      if (vs[l].is_trigger || vs[l].type->shape != node_shape::loop) continue;
      auto body = reach(l, port_index(vs[l], "continue"), l);
      for (uint32_t e : vs[l].in_edges)
        if (body[es[e].from]) es[e].back = true;
      bool has_back = std::any_of(vs[l].in_edges.begin(), vs[l].in_edges.end(), [&](uint32_t e) { return es[e].back; });
      if (!has_back && !vs[l].out_edges[port_index(vs[l], "continue")].empty())
        error(_defs[l], "std::loop '" + vs[l].name + "': its continue branch never leads back to it");
    }
    std::vector<uint32_t> order = topo_order();
    if (order.size() != vs.size()) return;  // cycle reported
    check_reachable();
    build_regions(order);
  }

  std::vector<uint32_t> topo_order() {
    auto& vs = _flow->vertices;
    std::vector<uint32_t> indeg(vs.size(), 0), order;
    for (const auto& e : _flow->edges)
      if (!e.back) ++indeg[e.to];
    for (uint32_t v = 0; v < vs.size(); ++v)
      if (indeg[v] == 0) order.push_back(v);
    for (size_t i = 0; i < order.size(); ++i)
      for (const auto& outs : vs[order[i]].out_edges)
        for (uint32_t e : outs)
          if (!_flow->edges[e].back && --indeg[_flow->edges[e].to] == 0) order.push_back(_flow->edges[e].to);
    if (order.size() != vs.size()) {
      std::string names;
      int line = 0;
      for (uint32_t v = 0; v < vs.size(); ++v) {
        if (indeg[v] == 0) continue;
        names += (names.empty() ? "" : ", ") + vs[v].name;
        if (!line) line = vs[v].line;
      }
      _errors.push_back({line, 1, "cycle not closed through a std::loop among: " + names});
    }
    return order;
  }

  void check_reachable() {
    auto& vs = _flow->vertices;
    std::vector<bool> seen(vs.size(), false);
    std::vector<uint32_t> stack;
    for (const auto& t : _flow->triggers) stack.push_back(t.vertex);
    while (!stack.empty()) {
      uint32_t v = stack.back();
      stack.pop_back();
      if (seen[v]) continue;
      seen[v] = true;
      for (const auto& outs : vs[v].out_edges)
        for (uint32_t e : outs) stack.push_back(_flow->edges[e].to);
    }
    for (uint32_t v = 0; v < vs.size(); ++v)
      if (!seen[v]) error(_defs[v], "node '" + vs[v].name + "' is unreachable from every trigger");
  }

  void build_regions(const std::vector<uint32_t>& order) {
    auto& vs = _flow->vertices;
    auto& es = _flow->edges;
    struct body_info {
      uint32_t owner;
      std::vector<bool> members;
      size_t size;
    };
    std::vector<body_info> bodies;
    for (uint32_t o = 0; o < vs.size(); ++o) {
      if (vs[o].is_trigger) continue;
      node_shape shape = vs[o].type->shape;
      if (shape != node_shape::split && shape != node_shape::loop) continue;
      const char* port = shape == node_shape::split ? "out" : "continue";
      auto members = reach(o, port_index(vs[o], port), o);
      size_t n = size_t(std::count(members.begin(), members.end(), true));
      if (shape == node_shape::split) {
        auto after = reach(o, port_index(vs[o], "done"), o);
        for (uint32_t v = 0; v < vs.size(); ++v)
          if (members[v] && after[v])
            error(_defs[v], "node '" + vs[v].name + "' is downstream of both out and done of std::split '" +
                                vs[o].name + "'");
      }
      bodies.push_back({o, std::move(members), n});
    }
    // Each vertex belongs to the smallest body that contains it (bodies nest).
    _flow->regions.push_back({});
    std::vector<uint32_t> region_of_body(bodies.size());
    for (size_t b = 0; b < bodies.size(); ++b) {
      region_of_body[b] = uint32_t(_flow->regions.size());
      region_def r;
      r.owner = bodies[b].owner;
      vs[bodies[b].owner].body = region_of_body[b];
      _flow->regions.push_back(std::move(r));
    }
    for (uint32_t v = 0; v < vs.size(); ++v) {
      size_t best = SIZE_MAX;
      for (size_t b = 0; b < bodies.size(); ++b)
        if (bodies[b].members[v] && (best == SIZE_MAX || bodies[b].size < bodies[best].size)) best = b;
      vs[v].region = best == SIZE_MAX ? 0 : region_of_body[best];
    }
    for (uint32_t v : order) {
      auto& members = _flow->regions[vs[v].region].members;
      vs[v].local = uint32_t(members.size());
      members.push_back(v);
    }
    // Edges may not enter or leave a body except from its owner and back to it.
    for (const auto& e : es) {
      uint32_t from_r = vs[e.from].region, to_r = vs[e.to].region;
      if (from_r == to_r) continue;
      bool owner_into_body = vs[e.from].body == to_r;
      bool back_to_owner = e.back && _flow->regions[from_r].owner == e.to;
      if (owner_into_body || back_to_owner) continue;
      std::string what = _flow->regions[to_r].owner != no_index && to_r != vs[e.from].region
                             ? "enters the body of '" + vs[_flow->regions[to_r].owner].name + "'"
                             : "leaves the body of '" + vs[_flow->regions[from_r].owner].name + "'";
      _errors.push_back({e.line, 1, "edge " + vs[e.from].name + " -> " + vs[e.to].name + " " + what});
    }
    // A suspension parks the whole trace: only top-level nodes may wait.
    for (uint32_t v = 0; v < vs.size(); ++v)
      if (vs[v].type && vs[v].type->shape == node_shape::wait && vs[v].region != 0)
        _errors.push_back({vs[v].line, 1, "node '" + vs[v].name + "': std::wait cannot run inside the body of '" +
                                              vs[_flow->regions[vs[v].region].owner].name + "'"});
    // A message is sent once per node of a trace (its idempotency key), not per item.
    for (uint32_t v = 0; v < vs.size(); ++v)
      if (vs[v].type && vs[v].type->name == "std::enqueue" && vs[v].region != 0)
        _errors.push_back({vs[v].line, 1, "node '" + vs[v].name + "': std::enqueue cannot run inside the body of '" +
                                              vs[_flow->regions[vs[v].region].owner].name + "'"});
    for (uint32_t r = 0; r < _flow->regions.size(); ++r) {
      region_def& reg = _flow->regions[r];
      for (uint32_t v : reg.members) {
        bool internal_out = false;
        for (const auto& outs : vs[v].out_edges)
          for (uint32_t e : outs)
            if (!es[e].back && vs[es[e].to].region == r) internal_out = true;
        if (!internal_out && !vs[v].is_trigger) reg.sinks.push_back(v);
        for (uint32_t e : vs[v].in_edges)
          if (reg.owner != no_index && es[e].from == reg.owner) {
            reg.entries.push_back(v);
            break;
          }
      }
    }
  }

  YAML::Node _root;
  flow_limits _limits;
  std::unique_ptr<compiled_flow> _flow;
  std::vector<flow_error> _errors;
  std::map<std::string, uint32_t> _names;
  std::vector<YAML::Node> _defs;               // per vertex: its key node (for error positions)
  std::map<uint32_t, YAML::Node> _node_defs;   // per node vertex: its definition
};

// The 1-based line and column (in characters, like yaml-cpp's) of byte `at`.
flow_error position_of(std::string_view text, size_t at, std::string message) {
  int line = 1, column = 1;
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((uint8_t(text[i]) & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++column;
    }
  }
  return {line, column, std::move(message)};
}

}  // namespace

std::optional<uint32_t> compiled_flow::find(std::string_view n) const {
  for (uint32_t i = 0; i < vertices.size(); ++i)
    if (vertices[i].name == n) return i;
  return std::nullopt;
}

const trigger_def* compiled_flow::find_trigger(std::string_view id) const {
  for (const auto& t : triggers)
    if (t.id == id) return &t;
  return nullptr;
}

compile_result compile_flow(std::string_view yaml, const flow_limits& limits) {
  std::vector<flow_error> errors;
  if (yaml.size() > limits.yaml_bytes_max) {
    errors.push_back({1, 1, "flow YAML larger than " + std::to_string(limits.yaml_bytes_max) + " bytes"});
    return errors;
  }
  // YAML allows no NUL character (not even in quotes: it must be escaped), and
  // yaml-cpp reports positions past the end of the text for one.
  if (size_t nul = yaml.find('\0'); nul != std::string_view::npos) {
    errors.push_back(position_of(yaml, nul, "NUL byte in the flow YAML"));
    return errors;
  }
  std::string text(yaml);
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    guard_handler guard(errors, limits.depth_max);
    // The first document, then whether another follows. Never more: yaml-cpp 0.7
    // can report a document without consuming input (a stray ',', as in ", :"), so
    // looping until it says there is no more would never end.
    if (parser.HandleNextDocument(guard)) parser.HandleNextDocument(guard);  // the guard reports a second
  } catch (const YAML::Exception& e) {
    errors.push_back({e.mark.line + 1, e.mark.column + 1, "invalid YAML: " + e.msg});
    return errors;
  }
  if (!errors.empty()) return errors;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    errors.push_back({e.mark.line + 1, e.mark.column + 1, "invalid YAML: " + e.msg});
    return errors;
  }
  try {
    return compiler(root, yaml, limits).run();
  } catch (const YAML::Exception& e) {
    // A shape the compiler failed to check first; some carry no position.
    YAML::Mark m = e.mark.is_null() ? YAML::Mark() : e.mark;
    errors.push_back({m.line + 1, m.column + 1, "invalid flow: " + e.msg});
    return errors;
  }
}

std::string format_errors(const std::vector<flow_error>& errors, std::string_view file) {
  std::string out;
  for (const auto& e : errors)
    out += std::string(file) + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message + "\n";
  return out;
}

}  // namespace xerv::flows
