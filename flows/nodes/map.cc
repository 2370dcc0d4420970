// std::map: builds a new object from field mappings and emits it on `out`.
//
//   mappings: [{from: $.customer.name, to: name, default: anonymous}, ...]
//   keep_unmapped: false
//
// `from` is a path in the node's input; `to` is a key of the output (taken
// literally, dots included). A `from` that reaches nothing gives `default`, or null
// without one. A `from` with [*] gives the array of every value it reaches; when
// that array is empty, `default` replaces it if given.
//
// Output order: with keep_unmapped, first the input's fields (in input order) whose
// names are not a mapping target, then the mapped fields in mapping order. A
// non-object input has no fields to keep.

#include <set>

#include "flows/nodes/all.h"
#include "flows/nodes/values.h"

namespace xerv::flows::nodes {
namespace {

struct mapping {
  field_path from;
  std::string to;
  std::optional<core::value> fallback;
};

struct map_impl : node_impl {
  std::vector<mapping> mappings;
  bool keep_unmapped = false;

  bool is_target(std::string_view key) const {
    for (const mapping& m : mappings)
      if (m.to == key) return true;
    return false;
  }

  node_result run(core::value_ref input, node_env&) const override {
    core::value_builder b;
    b.begin_object();
    if (keep_unmapped && input.type() == core::json_type::object) {
      for (uint32_t i = 0; i < input.size(); ++i) {
        if (is_target(input.key_at(i))) continue;
        b.key(input.key_at(i));
        b.add(input.value_at(i));
      }
    }
    for (const mapping& m : mappings) {
      b.key(m.to);
      core::value scratch;
      auto v = read_path(m.from, input, scratch);
      bool empty_collection = m.from.has_wildcard() && v && v->size() == 0;
      if (v && !(empty_collection && m.fallback)) b.add(*v);
      else if (m.fallback) b.add(m.fallback->ref());
      else b.add_null();
    }
    b.end();
    return emit(0, b.finish());
  }
};

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<map_impl>();
  YAML::Node list = c.config()["mappings"];
  if (!list || !list.IsSequence() || list.size() == 0) {
    c.error(list ? list : c.config(), "config.mappings is required: a non-empty list of {from, to, default}");
    return nullptr;
  }
  std::set<std::string> targets;
  for (size_t i = 0; i < list.size(); ++i) {
    YAML::Node m = list[i];
    std::string key = "config.mappings[" + std::to_string(i) + "]";
    if (!m.IsMap()) {
      c.error(m, key + " must be a map {from, to, default}");
      continue;
    }
    for (const auto& kv : m) {
      std::string k = kv.first.Scalar();
      if (k != "from" && k != "to" && k != "default") c.error(kv.first, key + ": unknown key '" + k + "'");
    }
    mapping out;
    YAML::Node from = m["from"], to = m["to"];
    if (!from || !from.IsScalar()) {
      c.error(from ? from : m, key + ".from is required (a path in the input, e.g. $.customer.name)");
    } else {
      std::string why;
      if (auto p = field_path::parse(from.Scalar(), &why)) out.from = std::move(*p);
      else c.error(from, key + ".from: " + why);
    }
    if (!to || !to.IsScalar() || to.Scalar().empty()) {
      c.error(to ? to : m, key + ".to is required (the output field name)");
    } else if (!targets.insert(to.Scalar()).second) {
      c.error(to, key + ".to: '" + to.Scalar() + "' is already the target of another mapping");
    } else {
      out.to = to.Scalar();
    }
    if (YAML::Node d = m["default"]; d) out.fallback = c.to_value(d);
    impl->mappings.push_back(std::move(out));
  }
  if (auto k = c.boolean("keep_unmapped", false, false)) impl->keep_unmapped = *k;
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type map_node() { return {"std::map", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
