// libFuzzer target: the flow compiler (flows::compile_flow, what `POST /pipelines`
// and `xerv validate` run on untrusted YAML), with the default limits.
//
// The whole input is the YAML text.
//
// Invariants (a broken one traps), on every input:
//   a failure lists at least one error, each with line >= 1 and column >= 1
//   (SPEC §2: 1-based positions) inside the text, and a non-empty message; and
//   none is a yaml-cpp exception that got past the compiler's shape checks.
// On success, the structure the executor walks by index is sound: every index is
// in range; edges, out_edges and in_edges describe the same graph; ports are the
// type's ports then "error"; every vertex is in exactly one region, in
// topological order of the forward edges, and reachable from a trigger; back
// edges only enter a std::loop; a body belongs to its split/loop owner; the
// settings respect their bounds; and compiling `source` again succeeds, into the
// same structure.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "flows/flow.h"
#include "tests/fuzz/check.h"

namespace {

using namespace xerv;
using flows::no_index;

void check_errors(const std::vector<flows::flow_error>& errors, std::string_view text) {
  CHECK(!errors.empty());
  // A position is at most one past the text's end (yaml-cpp marks the end of input).
  const size_t bound = text.size() + 1;
  for (const auto& e : errors) {
    CHECK(e.line >= 1);
    CHECK(e.column >= 1);
    CHECK(size_t(e.line) <= bound);
    CHECK(size_t(e.column) <= bound);
    CHECK(!e.message.empty());
    // The compiler looks at each YAML node's shape before reading it: a yaml-cpp
    // exception caught at the top ("invalid flow: ...") would hide every other
    // problem of the flow (SPEC §2 lists them all) and often its position.
    CHECK(!e.message.starts_with("invalid flow: "));
  }
}

bool valid_pipeline_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

void check_settings(const flows::flow_settings& s) {
  CHECK(s.max_concurrent_executions >= 1 && s.max_concurrent_executions <= 1'000'000);
  CHECK(s.execution_timeout_ms >= 1 && s.execution_timeout_ms <= 86'400'000);
  CHECK(s.node_timeout_ms >= 1 && s.node_timeout_ms <= 86'400'000);
  CHECK(s.max_concurrent_nodes >= 1 && s.max_concurrent_nodes <= 10'000);
  CHECK(s.circuit_breaker_threshold >= 0 && s.circuit_breaker_threshold <= 1);
}

void check_vertices(const flows::compiled_flow& f) {
  const flows::flow_limits limits;
  const size_t nv = f.vertices.size(), ne = f.edges.size();
  CHECK(nv >= 1);
  CHECK(ne <= limits.edges_max);
  std::set<std::string> names;
  size_t nodes = 0;
  for (uint32_t v = 0; v < nv; ++v) {
    const flows::vertex& x = f.vertices[v];
    CHECK(!x.name.empty());
    CHECK(names.insert(x.name).second);  // one namespace for triggers and nodes
    CHECK(f.find(x.name) == v);
    CHECK(x.line >= 1);
    if (x.is_trigger) {
      CHECK(x.type == nullptr);
      CHECK(x.ports.size() == 1 && x.ports[0] == "out");
      CHECK(f.find_trigger(x.name) != nullptr && f.find_trigger(x.name)->vertex == v);
    } else {
      ++nodes;
      CHECK(x.type != nullptr);
      CHECK(x.impl != nullptr);
      CHECK(x.ports.size() == x.type->ports.size() + 1);
      for (size_t p = 0; p < x.type->ports.size(); ++p) CHECK(x.ports[p] == x.type->ports[p]);
      CHECK(x.ports.back() == "error");
      CHECK(x.retry.max_attempts >= 1);
    }
    CHECK(x.out_edges.size() == x.ports.size());
    for (size_t p = 0; p < x.out_edges.size(); ++p)
      for (uint32_t e : x.out_edges[p]) {
        CHECK(e < ne);
        CHECK(f.edges[e].from == v && f.edges[e].port == p);
      }
    for (uint32_t e : x.in_edges) {
      CHECK(e < ne);
      CHECK(f.edges[e].to == v);
    }
    CHECK(x.region < f.regions.size());
    CHECK(x.local < f.regions[x.region].members.size());
    CHECK(f.regions[x.region].members[x.local] == v);
    if (x.body != no_index) {
      CHECK(x.body < f.regions.size() && x.body != 0);
      CHECK(f.regions[x.body].owner == v);
    }
  }
  CHECK(nodes <= limits.nodes_max);
}

void check_edges(const flows::compiled_flow& f) {
  const size_t nv = f.vertices.size();
  std::vector<size_t> outs(f.edges.size(), 0), ins(f.edges.size(), 0);
  for (const auto& x : f.vertices) {
    for (const auto& port : x.out_edges)
      for (uint32_t e : port) ++outs[e];
    for (uint32_t e : x.in_edges) ++ins[e];
  }
  for (uint32_t e = 0; e < f.edges.size(); ++e) {
    const flows::edge_def& d = f.edges[e];
    CHECK(d.from < nv && d.to < nv);
    CHECK(d.port < f.vertices[d.from].ports.size());
    CHECK(!f.vertices[d.to].is_trigger);
    CHECK(d.line >= 1);
    // Each edge is listed once where it leaves and once where it arrives.
    CHECK(outs[e] == 1 && ins[e] == 1);
    if (d.back) CHECK(f.vertices[d.to].type->shape == flows::node_shape::loop);
  }
}

void check_regions(const flows::compiled_flow& f) {
  const size_t nv = f.vertices.size();
  CHECK(!f.regions.empty());
  CHECK(f.regions[0].owner == no_index);
  size_t members = 0;
  for (uint32_t r = 0; r < f.regions.size(); ++r) {
    const flows::region_def& reg = f.regions[r];
    if (r > 0) {
      CHECK(reg.owner < nv);
      const flows::vertex& o = f.vertices[reg.owner];
      CHECK(!o.is_trigger);
      CHECK(o.type->shape == flows::node_shape::split || o.type->shape == flows::node_shape::loop);
      CHECK(o.body == r);
    }
    members += reg.members.size();
    for (uint32_t v : reg.members) CHECK(v < nv && f.vertices[v].region == r);
    for (uint32_t v : reg.entries) CHECK(v < nv && f.vertices[v].region == r);
    for (uint32_t v : reg.sinks) CHECK(v < nv && f.vertices[v].region == r && !f.vertices[v].is_trigger);
  }
  CHECK(members == nv);  // with the check above: each vertex in exactly one region
  // Members are in topological order: a forward edge inside a region goes forward.
  for (const auto& e : f.edges) {
    const flows::vertex& a = f.vertices[e.from];
    const flows::vertex& b = f.vertices[e.to];
    if (!e.back && a.region == b.region) CHECK(a.local < b.local);
  }
}

// Forward edges form no cycle and every vertex is reachable from a trigger.
void check_graph(const flows::compiled_flow& f) {
  const size_t nv = f.vertices.size();
  std::vector<uint32_t> indeg(nv, 0), order;
  for (const auto& e : f.edges)
    if (!e.back) ++indeg[e.to];
  for (uint32_t v = 0; v < nv; ++v)
    if (indeg[v] == 0) order.push_back(v);
  for (size_t i = 0; i < order.size(); ++i)
    for (const auto& port : f.vertices[order[i]].out_edges)
      for (uint32_t e : port)
        if (!f.edges[e].back && --indeg[f.edges[e].to] == 0) order.push_back(f.edges[e].to);
  CHECK(order.size() == nv);

  std::vector<bool> seen(nv, false);
  std::vector<uint32_t> stack;
  CHECK(!f.triggers.empty());
  for (const auto& t : f.triggers) {
    CHECK(t.vertex < nv && f.vertices[t.vertex].is_trigger);
    CHECK(f.vertices[t.vertex].name == t.id);
    stack.push_back(t.vertex);
  }
  while (!stack.empty()) {
    uint32_t v = stack.back();
    stack.pop_back();
    if (seen[v]) continue;
    seen[v] = true;
    for (const auto& port : f.vertices[v].out_edges)
      for (uint32_t e : port) stack.push_back(f.edges[e].to);
  }
  for (uint32_t v = 0; v < nv; ++v) CHECK(seen[v]);
}

void check_flow(const flows::compiled_flow& f, std::string_view text) {
  CHECK(f.source == text);
  CHECK(valid_pipeline_name(f.name));
  CHECK(f.config.ref().type() == core::json_type::object);
  check_settings(f.settings);
  check_vertices(f);
  check_edges(f);
  check_regions(f);
  check_graph(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  flows::compile_result r = flows::compile_flow(text);
  if (auto* errors = std::get_if<std::vector<flows::flow_error>>(&r)) {
    check_errors(*errors, text);
    return 0;
  }
  const auto& flow = *std::get<std::unique_ptr<flows::compiled_flow>>(r);
  check_flow(flow, text);
  // What was deployed deploys again (pipelines are stored as their source and
  // recompiled at restart), into the same structure.
  flows::compile_result again = flows::compile_flow(flow.source);
  auto* flow_again = std::get_if<std::unique_ptr<flows::compiled_flow>>(&again);
  CHECK(flow_again != nullptr);
  const auto& g = **flow_again;
  CHECK(g.name == flow.name);
  CHECK(g.vertices.size() == flow.vertices.size());
  CHECK(g.edges.size() == flow.edges.size());
  CHECK(g.regions.size() == flow.regions.size());
  for (size_t v = 0; v < g.vertices.size(); ++v) {
    CHECK(g.vertices[v].name == flow.vertices[v].name);
    CHECK(g.vertices[v].region == flow.vertices[v].region);
    CHECK(g.vertices[v].local == flow.vertices[v].local);
  }
  for (size_t e = 0; e < g.edges.size(); ++e) {
    CHECK(g.edges[e].from == flow.edges[e].from);
    CHECK(g.edges[e].to == flow.edges[e].to);
    CHECK(g.edges[e].port == flow.edges[e].port);
    CHECK(g.edges[e].back == flow.edges[e].back);
  }
  return 0;
}
