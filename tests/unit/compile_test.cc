// flows/compile: every validation error of SPEC §2, reported with its line and
// all at once, plus the structure the executor relies on.

#include <gtest/gtest.h>

#include "flows/flow.h"

using namespace xerv::flows;

namespace {

std::vector<flow_error> errors_of(const std::string& yaml, flow_limits limits = {}) {
  auto r = compile_flow(yaml, limits);
  if (auto* e = std::get_if<std::vector<flow_error>>(&r)) return *e;
  return {};
}

// True when some error is on `line` and contains `text`.
bool has(const std::vector<flow_error>& errors, int line, const std::string& text) {
  for (const auto& e : errors)
    if ((line == 0 || e.line == line) && e.message.find(text) != std::string::npos) return true;
  return false;
}

std::string dump(const std::vector<flow_error>& errors) { return format_errors(errors, "flow.yaml"); }

const std::string k_head = "name: f\ntriggers: [{id: t, type: manual}]\n";

TEST(compile, a_valid_flow_compiles_into_regions) {
  auto r = compile_flow(k_head + R"(nodes:
  a: {type: std::log}
  each: {type: std::split, config: {field: $.items}}
  body: {type: std::log}
  again: {type: std::loop, config: {max_iterations: 2}}
  inner: {type: std::log}
edges:
  - {from: t, to: a}
  - {from: a, to: each}
  - {from: each.out, to: body}
  - {from: each.done, to: again}
  - {from: again.continue, to: inner}
  - {from: inner, to: again}
)");
  auto* f = std::get_if<std::unique_ptr<compiled_flow>>(&r);
  ASSERT_TRUE(f) << dump(std::get<std::vector<flow_error>>(r));
  const compiled_flow& flow = **f;
  EXPECT_EQ(flow.regions.size(), 3u);  // root, split body, loop body
  auto region_of = [&](const char* n) { return flow.vertices[*flow.find(n)].region; };
  EXPECT_EQ(region_of("a"), 0u);
  EXPECT_EQ(region_of("each"), 0u);
  EXPECT_NE(region_of("body"), 0u);
  EXPECT_NE(region_of("inner"), 0u);
  EXPECT_NE(region_of("inner"), region_of("body"));
  int back = 0;
  for (const auto& e : flow.edges) back += e.back;
  EXPECT_EQ(back, 1);
}

TEST(compile, unknown_node_type_port_and_nodes) {
  auto e = errors_of(k_head + R"(nodes:
  a: {type: std::log}
  b: {type: std::nope}
edges:
  - {from: t, to: a}
  - {from: a.maybe, to: a}
  - {from: ghost, to: a}
  - {from: a, to: phantom}
)");
  EXPECT_TRUE(has(e, 5, "unknown node type 'std::nope'")) << dump(e);
  EXPECT_TRUE(has(e, 8, "node 'a' has no port 'maybe' (ports: out, error)")) << dump(e);
  EXPECT_TRUE(has(e, 9, "edge from unknown node 'ghost'")) << dump(e);
  EXPECT_TRUE(has(e, 10, "edge to unknown node 'phantom'")) << dump(e);
}

TEST(compile, duplicate_names_share_one_namespace) {
  auto e = errors_of(R"(name: f
triggers:
  - {id: same, type: manual}
nodes:
  same: {type: std::log}
edges: []
)");
  EXPECT_TRUE(has(e, 5, "duplicate name 'same'")) << dump(e);
}

TEST(compile, cycles_must_go_through_a_loop) {
  auto e = errors_of(k_head + R"(nodes:
  a: {type: std::log}
  b: {type: std::log}
edges:
  - {from: t, to: a}
  - {from: a, to: b}
  - {from: b, to: a}
)");
  EXPECT_TRUE(has(e, 0, "cycle not closed through a std::loop among: a, b")) << dump(e);
}

TEST(compile, unreachable_nodes) {
  auto e = errors_of(k_head + R"(nodes:
  a: {type: std::log}
  island: {type: std::log}
edges:
  - {from: t, to: a}
)");
  EXPECT_TRUE(has(e, 5, "node 'island' is unreachable from every trigger")) << dump(e);
}

TEST(compile, bad_config_and_unknown_selector_roots) {
  auto e = errors_of(k_head + R"(nodes:
  wait: {type: std::delay}
  talk: {type: std::log, config: {message: "hi ${nobody.x}", level: loud}}
  join: {type: std::merge, config: {strategy: whenever}}
  each: {type: std::split, config: {field: "$..x"}}
edges:
  - {from: t, to: wait}
  - {from: t, to: talk}
  - {from: t, to: join}
  - {from: t, to: each}
)");
  EXPECT_TRUE(has(e, 0, "node 'wait': config.ms is required")) << dump(e);
  EXPECT_TRUE(has(e, 5, "unknown selector root 'nobody'")) << dump(e);
  EXPECT_TRUE(has(e, 5, "config.level must be debug, info, warn or error")) << dump(e);
  EXPECT_TRUE(has(e, 6, "config.strategy must be wait_all, first_arrival or wait_n")) << dump(e);
  EXPECT_TRUE(has(e, 7, "invalid path")) << dump(e);
}

TEST(compile, a_pattern_re2_cannot_compile_is_reported_at_its_line_and_column) {
  auto e = errors_of(k_head + R"(nodes:
  ok: {type: std::switch, config: {condition: {type: matches, field: s, value: '^[a-z]+$'}}}
  check:
    type: std::switch
    config:
      condition:
        any:
          - {type: matches, field: s, value: 'x'}
          - {type: matches, field: s, value: '(a)\1'}
edges:
  - {from: t, to: ok}
  - {from: t, to: check}
)");
  ASSERT_EQ(e.size(), 1u) << dump(e);
  EXPECT_EQ(e[0].line, 11);
  EXPECT_EQ(e[0].column, 46);  // the pattern's opening quote
  EXPECT_EQ(e[0].message, "node 'check': config.condition.any[1].value is not a valid RE2 regular expression: "
                          "invalid escape sequence: \\1");
}

TEST(compile, pipeline_name_rules) {
  for (const char* bad : {"Upper", "has space", "dots.not", ""}) {
    auto e = errors_of(std::string("name: \"") + bad + "\"\ntriggers: [{id: t, type: manual}]\nnodes: {a: {type: std::log}}\nedges: [{from: t, to: a}]\n");
    EXPECT_TRUE(has(e, 1, "must match [a-z0-9_-]{1,64}") || has(e, 1, "name is required")) << bad << dump(e);
  }
  auto long_name = errors_of("name: " + std::string(65, 'a') + "\ntriggers: [{id: t, type: manual}]\nnodes: {a: {type: std::log}}\nedges: [{from: t, to: a}]\n");
  EXPECT_TRUE(has(long_name, 1, "must match")) << dump(long_name);
}

TEST(compile, anchors_aliases_and_custom_tags_are_refused) {
  auto alias = errors_of(k_head + "nodes:\n  a: &x {type: std::log}\n  b: *x\nedges: [{from: t, to: a}]\n");
  EXPECT_TRUE(has(alias, 4, "YAML anchors are not allowed")) << dump(alias);
  EXPECT_TRUE(has(alias, 5, "YAML aliases are not allowed")) << dump(alias);
  auto tag = errors_of(k_head + "nodes:\n  a: !custom {type: std::log}\nedges: [{from: t, to: a}]\n");
  EXPECT_TRUE(has(tag, 4, "custom YAML tag")) << dump(tag);
  auto bomb = errors_of("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n");
  EXPECT_FALSE(bomb.empty());
}

TEST(compile, limits) {
  flow_limits small;
  small.yaml_bytes_max = 100;
  auto big = errors_of(k_head + "nodes: {a: {type: std::log}}\nedges: [{from: t, to: a}]\n" + std::string(200, '#'), small);
  EXPECT_TRUE(has(big, 1, "larger than 100 bytes")) << dump(big);

  std::string deep = "name: f\nconfig: ";
  for (int i = 0; i < 70; ++i) deep += "[";
  for (int i = 0; i < 70; ++i) deep += "]";
  auto d = errors_of(deep + "\n");
  EXPECT_TRUE(has(d, 2, "nesting deeper than 64 levels")) << dump(d);

  flow_limits few;
  few.nodes_max = 3;
  few.edges_max = 2;
  std::string many = k_head + "nodes:\n";
  for (int i = 0; i < 4; ++i) many += "  n" + std::to_string(i) + ": {type: std::log}\n";
  many += "edges:\n";
  for (int i = 0; i < 4; ++i) many += "  - {from: t, to: n" + std::to_string(i) + "}\n";
  auto m = errors_of(many, few);
  EXPECT_TRUE(has(m, 0, "more than 3 nodes")) << dump(m);
  EXPECT_TRUE(has(m, 0, "more than 2 edges")) << dump(m);
  // The defaults are the product limits.
  flow_limits def;
  EXPECT_EQ(def.yaml_bytes_max, 1u << 20);
  EXPECT_EQ(def.nodes_max, 1000u);
  EXPECT_EQ(def.edges_max, 10000u);
  EXPECT_EQ(def.depth_max, 64u);
}

TEST(compile, split_bodies_may_not_join_done) {
  auto e = errors_of(k_head + R"(nodes:
  each: {type: std::split, config: {field: $.items}}
  body: {type: std::log}
  after: {type: std::merge}
edges:
  - {from: t, to: each}
  - {from: each.out, to: body}
  - {from: each.done, to: after}
  - {from: body, to: after}
)");
  EXPECT_TRUE(has(e, 0, "downstream of both out and done of std::split 'each'")) << dump(e);
}

TEST(compile, every_problem_is_reported_at_once_in_line_order) {
  auto e = errors_of(R"(name: BAD
triggers: [{id: t, type: cron}]
nodes:
  a: {type: std::nope}
  b: {type: std::delay, config: {ms: -5}}
edges:
  - {from: t, to: zz}
settings: {max_concurrent_nodes: 0, bogus: 1}
oops: 1
)");
  EXPECT_GE(e.size(), 6u) << dump(e);
  for (size_t i = 1; i < e.size(); ++i) EXPECT_LE(e[i - 1].line, e[i].line) << dump(e);
  EXPECT_TRUE(has(e, 1, "must match")) << dump(e);
  EXPECT_TRUE(has(e, 2, "cron params.schedule is required")) << dump(e);
  EXPECT_TRUE(has(e, 4, "unknown node type")) << dump(e);
  EXPECT_TRUE(has(e, 5, "config.ms must be an integer between 0 and")) << dump(e);
  EXPECT_TRUE(has(e, 8, "settings.max_concurrent_nodes must be an integer between 1")) << dump(e);
  EXPECT_TRUE(has(e, 8, "unknown setting 'bogus'")) << dump(e);
  EXPECT_TRUE(has(e, 9, "unknown top-level key 'oops'")) << dump(e);
}

TEST(compile, invalid_yaml_reports_its_position) {
  auto e = errors_of("name: f\nnodes: {a: [unclosed\n");
  ASSERT_FALSE(e.empty());
  EXPECT_NE(e[0].message.find("invalid YAML"), std::string::npos) << dump(e);
  EXPECT_GE(e[0].line, 2);
}

// Found by flow_fuzz: each once hung the compiler, lost the positions or ended
// compilation at the first problem through a yaml-cpp exception.
TEST(compile, one_yaml_document) {
  // yaml-cpp 0.7 reports documents for a stray ',' forever without consuming it.
  auto stray = errors_of(", :o-");
  EXPECT_TRUE(has(stray, 1, "a flow is one YAML document")) << dump(stray);
  const std::string flow = k_head + "nodes: {a: {type: std::log}}\nedges: [{from: t, to: a}]\n";
  auto two = errors_of(flow + "---\nname: g\n");
  EXPECT_TRUE(has(two, 5, "content after the end of the document")) << dump(two);
  EXPECT_TRUE(errors_of("---\n" + flow + "...\n").empty());
}

TEST(compile, nul_bytes_are_refused_with_their_position) {
  auto e = errors_of(k_head + "nodes:\n  a" + '\0' + ": {type: std::log}\nedges: [{from: t, to: a}]\n");
  ASSERT_EQ(e.size(), 1u) << dump(e);
  EXPECT_EQ(e[0].line, 4);
  EXPECT_EQ(e[0].column, 4);
  EXPECT_TRUE(has(e, 4, "NUL byte")) << dump(e);
}

TEST(compile, shapes_are_checked_before_they_are_read) {
  const std::string rest = "nodes: {a: {type: std::log}}\nedges: [{from: t, to: a}]\n";
  struct bad {
    std::string triggers;
    std::string message;
  };
  for (const auto& [triggers, message] : std::vector<bad>{
           {"[{id: t, type: webhook}]", "webhook params.path must start with /"},
           {"[{id: t, type: webhook, params: /hook}]", "params must be a map"},
           {"[t, {id: u, type: manual}]", "each trigger needs an id"},
           {"{t: manual}", "trigger 't': type is required"},
       }) {
    auto e = errors_of("name: f\ntriggers: " + triggers + "\n" + rest);
    EXPECT_TRUE(has(e, 2, message)) << triggers << dump(e);
    for (const auto& x : e) EXPECT_EQ(x.message.find("invalid flow"), std::string::npos) << dump(e);
  }
  auto edge = errors_of(k_head + "nodes: {a: {type: std::log}, b: {type: nope}}\nedges: [t, {from: t, to: a}]\n");
  EXPECT_TRUE(has(edge, 4, "an edge needs from and to")) << dump(edge);
  EXPECT_TRUE(has(edge, 3, "unknown node type 'nope'")) << dump(edge);  // every problem, not the first
}

TEST(compile, map_keys_are_scalars) {
  auto e = errors_of(k_head + "config: {? [k] : v}\nnodes: {a: {type: std::log, config: {x: {? {a: 1} : 2}}}}\n"
                              "edges: [{from: t, to: a}]\n");
  EXPECT_TRUE(has(e, 3, "a map key must be a scalar")) << dump(e);
  EXPECT_TRUE(has(e, 4, "a map key must be a scalar")) << dump(e);
  // A map as a value, a sequence of maps and an empty key are fine.
  EXPECT_TRUE(errors_of(k_head + "config: {a: [b: c], \"\": {d: [e, {f: g}]}}\nnodes: {a: {type: std::log}}\n"
                                 "edges: [{from: t, to: a}]\n").empty());
}

TEST(compile, top_level_config_is_a_map) {
  const std::string rest = "triggers: [{id: t, type: manual}]\nnodes: {a: {type: std::log}}\nedges: [{from: t, to: a}]\n";
  for (const char* bad : {"5", "[a, b]", "text"}) {
    auto e = errors_of(std::string("name: f\nconfig: ") + bad + "\n" + rest);
    EXPECT_TRUE(has(e, 2, "config must be a map")) << bad << dump(e);
  }
  for (const char* fine : {"", "~", "{}", "{region: eu}"}) {
    auto r = compile_flow(std::string("name: f\nconfig: ") + fine + "\n" + rest);
    auto* f = std::get_if<std::unique_ptr<compiled_flow>>(&r);
    ASSERT_TRUE(f) << fine;
    EXPECT_EQ((*f)->config.ref().type(), xerv::core::json_type::object) << fine;
  }
}

}  // namespace

TEST(compile, queue_trigger_params) {
  auto e = errors_of(R"(name: q
version: "1"
triggers:
  - {id: a, type: queue, params: {queue: jobs}}
  - {id: b, type: queue, params: {queue: jobs, capacity: 0}}
  - {id: c, type: queue, params: {queue: "Bad Name"}}
  - {id: d, type: queue, params: {queue: other, size: 3}}
nodes:
  n: {type: std::log}
edges:
  - {from: a, to: n}
  - {from: b, to: n}
  - {from: c, to: n}
  - {from: d, to: n}
)");
  EXPECT_TRUE(has(e, 5, "queue 'jobs' is already consumed by trigger 'a'")) << dump(e);
  EXPECT_TRUE(has(e, 5, "capacity must be an integer between 1 and 1000000")) << dump(e);
  EXPECT_TRUE(has(e, 6, "queue params.queue (the queue's name, [a-z0-9_-]{1,64}) is required")) << dump(e);
  EXPECT_TRUE(has(e, 7, "unknown queue param 'size' (queue, capacity)")) << dump(e);
}

TEST(compile, filesystem_trigger_params) {
  auto e = errors_of(R"(name: fs
version: "1"
triggers:
  - {id: a, type: filesystem, params: {paths: [/in/a, /in/a/b, /in/./c/../a]}}
  - {id: b, type: filesystem, params: {paths: [relative/dir]}}
  - {id: c, type: filesystem, params: {paths: [/, /x]}}
  - {id: d, type: filesystem, params: {paths: [/in], events: [created, renamed], patterns: ["a/*"]}}
  - {id: e, type: filesystem, params: {paths: [/in], debounce_ms: 60001, recursive: yes, depth: 2}}
  - {id: f, type: filesystem}
nodes:
  n: {type: std::log}
edges:
  - {from: a, to: n}
  - {from: b, to: n}
  - {from: c, to: n}
  - {from: d, to: n}
  - {from: e, to: n}
  - {from: f, to: n}
)");
  EXPECT_TRUE(has(e, 4, "paths '/in/a' and '/in/a/b' overlap (list each directory once)")) << dump(e);
  EXPECT_TRUE(has(e, 4, "paths '/in/a' and '/in/a' overlap")) << dump(e);  // the same, spelled differently
  EXPECT_TRUE(has(e, 5, "path 'relative/dir' must be absolute")) << dump(e);
  EXPECT_TRUE(has(e, 6, "paths '/' and '/x' overlap")) << dump(e);
  EXPECT_TRUE(has(e, 7, "unknown event 'renamed' (created, modified, deleted, moved)")) << dump(e);
  EXPECT_TRUE(has(e, 7, "pattern 'a/*' must be a non-empty glob on the file name (no '/')")) << dump(e);
  EXPECT_TRUE(has(e, 8, "debounce_ms must be an integer between 0 and 60000")) << dump(e);
  EXPECT_TRUE(has(e, 8, "recursive must be true or false")) << dump(e);
  EXPECT_TRUE(has(e, 8, "unknown filesystem param 'depth'")) << dump(e);
  EXPECT_TRUE(has(e, 9, "filesystem params.paths (directories to watch) is required")) << dump(e);

  // Defaults and a full set. (Whether the directories exist is checked only
  // with paths_must_exist, by a deploy: tests/integration/filesystem_test.cc.)
  auto r = compile_flow(R"(name: fs
triggers:
  - {id: a, type: filesystem, params: {paths: /in/}}
  - {id: b, type: filesystem, params: {paths: [/nonexistent/xerv-inbox], create: true, events: deleted, patterns: "*.csv", debounce_ms: 0, recursive: true}}
nodes:
  n: {type: std::log}
edges:
  - {from: a, to: n}
  - {from: b, to: n}
)");
  auto* f = std::get_if<std::unique_ptr<compiled_flow>>(&r);
  ASSERT_TRUE(f) << dump(std::get<std::vector<flow_error>>(r));
  const fs_trigger& a = *(*f)->triggers[0].fs;
  EXPECT_EQ(a.paths, std::vector<std::string>{"/in"});
  EXPECT_EQ(a.events, fs_all_events);
  EXPECT_TRUE(a.patterns.empty());
  EXPECT_FALSE(a.recursive);
  EXPECT_EQ(a.debounce_ms, 100u);
  const fs_trigger& b = *(*f)->triggers[1].fs;
  EXPECT_TRUE(b.create);
  EXPECT_EQ(b.events, uint8_t(fs_event::deleted));
  EXPECT_EQ(b.patterns, std::vector<std::string>{"*.csv"});
  EXPECT_EQ(b.debounce_ms, 0u);
  EXPECT_TRUE(b.recursive);
}
