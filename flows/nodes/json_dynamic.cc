// std::json_dynamic: schemaless edits of the node's input, emitted on `out`.
//
//   operation: passthrough (default)  the input unchanged
//   operation: extract, fields: [$.a.b, $.items[*].sku]
//       an object keyed by each path's last name ({"b": ..., "sku": [...]}); a
//       missing path gives null; names must differ and may not end in an index.
//   operation: set, path: $.a.b, value: <any YAML, or a ${selector} template>
//       sets the value, creating missing intermediate objects and replacing
//       non-objects on the way; an existing key keeps its position. `[n]` steps
//       need an existing array with at least n elements (n == size appends). A
//       string value holding ${...} is rendered per trace; exactly one selector
//       keeps the selected value's type. `$` replaces the whole input.
//   operation: delete, path: $.a.b     (also $.items[0], $.items[*].secret)
//       removes the key or element; a path that reaches nothing changes nothing.
//   operation: flatten, separator: "."
//       nested objects and arrays become one level: {"a":{"b":1},"items":[{"sku":2}]}
//       gives {"a.b":1,"items.0.sku":2}. Empty objects and arrays stay as values; a
//       scalar input passes through.
//   operation: merge
//       with several active inputs (branches joined into the node), every object
//       input is merged in arrival order into one object (a later key wins and
//       keeps the first position; non-objects are skipped). With one input, an
//       array of objects is merged left to right the same way; an object or
//       anything else passes through unchanged.

#include <set>
#include <unordered_map>

#include "flows/nodes/all.h"
#include "flows/nodes/values.h"

namespace xerv::flows::nodes {
namespace {

enum class operation { passthrough, extract, set, remove, flatten, merge };
using segments = std::vector<field_path::segment>;

bool set_at(core::value_builder& b, std::optional<core::value_ref> cur, const segments& segs, size_t i,
            core::value_ref v, std::string& error) {
  if (i == segs.size()) {
    b.add(v);
    return true;
  }
  const field_path::segment& s = segs[i];
  if (s.kind == field_path::segment::key) {
    b.begin_object();
    bool done = false;
    if (cur && cur->type() == core::json_type::object) {
      for (uint32_t k = 0; k < cur->size(); ++k) {
        b.key(cur->key_at(k));
        if (!done && cur->key_at(k) == s.name) {
          done = true;
          if (!set_at(b, cur->value_at(k), segs, i + 1, v, error)) return false;
        } else {
          b.add(cur->value_at(k));
        }
      }
    }
    if (!done) {
      b.key(s.name);
      if (!set_at(b, std::nullopt, segs, i + 1, v, error)) return false;
    }
    b.end();
    return true;
  }
  // An index step (set paths have no wildcards).
  if (!cur || cur->type() != core::json_type::array || s.position > cur->size()) {
    error = "[" + std::to_string(s.position) + "] is not an element of an existing array (or one past its end)";
    return false;
  }
  b.begin_array();
  for (uint32_t k = 0; k < cur->size(); ++k) {
    if (k == s.position) {
      if (!set_at(b, cur->at(k), segs, i + 1, v, error)) return false;
    } else {
      b.add(cur->at(k));
    }
  }
  if (s.position == cur->size() && !set_at(b, std::nullopt, segs, i + 1, v, error)) return false;
  b.end();
  return true;
}

void delete_at(core::value_builder& b, core::value_ref cur, const segments& segs, size_t i) {
  const field_path::segment& s = segs[i];
  bool last = i + 1 == segs.size();
  if (s.kind == field_path::segment::key && cur.type() == core::json_type::object) {
    b.begin_object();
    for (uint32_t k = 0; k < cur.size(); ++k) {
      if (cur.key_at(k) == s.name && last) continue;
      b.key(cur.key_at(k));
      if (cur.key_at(k) == s.name) delete_at(b, cur.value_at(k), segs, i + 1);
      else b.add(cur.value_at(k));
    }
    b.end();
    return;
  }
  if (s.kind != field_path::segment::key && cur.type() == core::json_type::array) {
    bool every = s.kind == field_path::segment::wildcard;
    b.begin_array();
    for (uint32_t k = 0; k < cur.size(); ++k) {
      bool hit = every || k == s.position;
      if (hit && last) continue;
      if (hit) delete_at(b, cur.at(k), segs, i + 1);
      else b.add(cur.at(k));
    }
    b.end();
    return;
  }
  b.add(cur);  // the path leaves the document here: nothing to delete
}

void flatten_into(core::value_builder& b, core::value_ref v, std::string& prefix, const std::string& sep) {
  bool container = v.type() == core::json_type::object || v.type() == core::json_type::array;
  if (!container || v.size() == 0) {
    b.key(prefix);
    b.add(v);
    return;
  }
  size_t keep = prefix.size();
  for (uint32_t k = 0; k < v.size(); ++k) {
    prefix += sep;
    if (v.type() == core::json_type::object) prefix += v.key_at(k);
    else prefix += std::to_string(k);
    flatten_into(b, v.type() == core::json_type::object ? v.value_at(k) : v.at(k), prefix, sep);
    prefix.resize(keep);
  }
}

// Merges the objects among `parts` left to right: a later key wins and keeps the
// key's first position; non-objects are skipped. The index keeps it linear in the
// number of keys.
core::value merge_objects(const std::vector<core::value_ref>& parts) {
  std::vector<std::pair<std::string_view, core::value_ref>> fields;
  std::unordered_map<std::string_view, size_t> position;
  for (core::value_ref o : parts) {
    if (o.type() != core::json_type::object) continue;
    for (uint32_t k = 0; k < o.size(); ++k) {
      auto [it, added] = position.try_emplace(o.key_at(k), fields.size());
      if (added) fields.emplace_back(o.key_at(k), o.value_at(k));
      else fields[it->second].second = o.value_at(k);
    }
  }
  core::value_builder b;
  b.begin_object();
  for (const auto& [k, v] : fields) {
    b.key(k);
    b.add(v);
  }
  b.end();
  return b.finish();
}

// Several active inputs (branches joined into the node): every object among them,
// in arrival order. One input: the elements of an array, or the value unchanged.
node_result merge(core::value_ref input, const node_env& env) {
  std::vector<core::value_ref> parts = env.inputs();
  if (parts.size() > 1) return emit(0, merge_objects(parts));
  if (input.type() != core::json_type::array) return emit_ref(0, input);
  parts.clear();
  for (uint32_t i = 0; i < input.size(); ++i) parts.push_back(input.at(i));
  return emit(0, merge_objects(parts));
}

struct json_dynamic_impl : node_impl {
  operation op = operation::passthrough;
  std::vector<field_path> fields;  // extract
  field_path path;                 // set, delete
  core::value value;               // set: a literal
  std::optional<template_string> value_template;  // set: a template
  std::string separator = ".";     // flatten

  node_result run(core::value_ref input, node_env& env) const override {
    switch (op) {
      case operation::passthrough: return emit_ref(0, input);
      case operation::extract: return extract(input);
      case operation::set: {
        core::value rendered = value_template ? value_template->render(env.selectors()) : core::value();
        core::value_ref v = value_template ? rendered.ref() : value.ref();
        core::value_builder b;
        std::string error;
        if (!set_at(b, input, path.segments(), 0, v, error))
          return fail("set " + path.text() + ": " + error, error_codes::invalid_input);
        return emit(0, b.finish());
      }
      case operation::remove: {
        core::value_builder b;
        delete_at(b, input, path.segments(), 0);
        return emit(0, b.finish());
      }
      case operation::flatten: {
        if (input.type() != core::json_type::object && input.type() != core::json_type::array) return emit_ref(0, input);
        core::value_builder b;
        b.begin_object();
        std::string prefix;
        for (uint32_t k = 0; k < input.size(); ++k) {
          prefix = input.type() == core::json_type::object ? std::string(input.key_at(k)) : std::to_string(k);
          flatten_into(b, input.type() == core::json_type::object ? input.value_at(k) : input.at(k), prefix, separator);
        }
        b.end();
        return emit(0, b.finish());
      }
      case operation::merge: return merge(input, env);
    }
    return fail("unknown operation");
  }

  node_result extract(core::value_ref input) const {
    core::value_builder b;
    b.begin_object();
    for (const field_path& f : fields) {
      b.key(f.last_name());
      core::value scratch;
      auto v = read_path(f, input, scratch);
      if (v) b.add(*v);
      else b.add_null();
    }
    b.end();
    return emit(0, b.finish());
  }
};

bool compile_extract(node_compiler& c, json_dynamic_impl& impl) {
  YAML::Node list = c.config()["fields"];
  if (!list || !list.IsSequence() || list.size() == 0) {
    c.error(list ? list : c.config(), "config.fields is required for extract: a non-empty list of paths");
    return false;
  }
  std::set<std::string, std::less<>> names;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string key = "config.fields[" + std::to_string(i) + "]";
    YAML::Node n = list[i];
    std::string why;
    auto p = n.IsScalar() ? field_path::parse(n.Scalar(), &why) : std::nullopt;
    if (!n.IsScalar()) why = "must be a path, e.g. $.customer.name";
    if (!p) {
      c.error(n, key + (n.IsScalar() ? ": " : " ") + why);
      continue;
    }
    if (p->last_name().empty()) {
      c.error(n, key + ": '" + n.Scalar() + "' must end in a field name (it names the output key)");
      continue;
    }
    if (!names.insert(std::string(p->last_name())).second) {
      c.error(n, key + ": another field is also named '" + std::string(p->last_name()) + "'");
      continue;
    }
    impl.fields.push_back(std::move(*p));
  }
  return true;
}

bool compile_path(node_compiler& c, json_dynamic_impl& impl, const std::string& op) {
  YAML::Node n = c.config()["path"];
  if (!n || !n.IsScalar()) {
    c.error(n ? n : c.config(), "config.path is required for " + op + " (e.g. $.customer.name)");
    return false;
  }
  std::string why;
  auto p = field_path::parse(n.Scalar(), &why);
  if (!p) {
    c.error(n, "config.path: " + why);
    return false;
  }
  if (op == "set" && p->has_wildcard()) {
    c.error(n, "config.path: set takes a path without [*]");
    return false;
  }
  if (op == "delete" && p->empty()) {
    c.error(n, "config.path: delete needs a path below the root ($ cannot be deleted)");
    return false;
  }
  impl.path = std::move(*p);
  return true;
}

void compile_value(node_compiler& c, json_dynamic_impl& impl) {
  YAML::Node v = c.config()["value"];
  if (!v) {
    c.error(c.config(), "config.value is required for set (null is written as value: null)");
    return;
  }
  if (v.IsScalar() && v.Scalar().find("${") != std::string::npos) {
    std::string why;
    impl.value_template = template_string::compile(v.Scalar(), c.lookup(), &why);
    if (!impl.value_template) c.error(v, "config.value: " + why);
    return;
  }
  impl.value = c.to_value(v);
}

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<json_dynamic_impl>();
  auto op = c.string("operation", false, "passthrough");
  if (!op) return nullptr;
  static const std::pair<std::string_view, operation> ops[] = {
      {"passthrough", operation::passthrough}, {"extract", operation::extract}, {"set", operation::set},
      {"delete", operation::remove},           {"flatten", operation::flatten}, {"merge", operation::merge},
  };
  auto it = std::find_if(std::begin(ops), std::end(ops), [&](const auto& p) { return p.first == *op; });
  if (it == std::end(ops)) {
    c.error(c.config()["operation"],
            "config.operation '" + *op + "' is unknown (passthrough, extract, set, delete, flatten, merge)");
    return nullptr;
  }
  impl->op = it->second;
  switch (impl->op) {
    case operation::extract: compile_extract(c, *impl); break;
    case operation::set:
      if (compile_path(c, *impl, "set")) compile_value(c, *impl);
      break;
    case operation::remove: compile_path(c, *impl, "delete"); break;
    case operation::flatten:
      if (auto s = c.string("separator", false, ".")) {
        if (s->empty()) c.error(c.config()["separator"], "config.separator must not be empty");
        else impl->separator = *s;
      }
      break;
    case operation::passthrough:
    case operation::merge: break;
  }
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type json_dynamic_node() { return {"std::json_dynamic", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
