// std::concat: joins parts into one string and emits the input object plus
// `output_field` (default "result") holding it, on `out`.
//
//   parts: ["Order ", $.id, " for ${input.customer}"]
//   separator: ""
//
// A part starting with `$.` (or exactly `$`) is a path in the node's input; a part
// containing `${...}` is a template rendered with selectors; anything else is
// literal text. Values are joined as text: strings raw, anything else as compact
// JSON; a path or selector that reaches nothing contributes an empty string (the
// separator is still written). A non-object input gives an object with just the
// output field; an existing field of that name is replaced (moved last).

#include "flows/nodes/all.h"
#include "flows/nodes/values.h"

namespace xerv::flows::nodes {
namespace {

struct part {
  std::string literal;
  std::optional<field_path> path;
  std::optional<template_string> templ;
};

struct concat_impl : node_impl {
  std::vector<part> parts;
  std::string separator;
  std::string output_field = "result";

  node_result run(core::value_ref input, node_env& env) const override {
    std::string text;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) text += separator;
      const part& p = parts[i];
      if (p.path) {
        core::value scratch;
        if (auto v = read_path(*p.path, input, scratch)) append_as_text(text, *v);
      } else if (p.templ) {
        p.templ->render_text(text, env.selectors());
      } else {
        text += p.literal;
      }
    }
    core::value_builder b;
    b.add_string(text);
    core::value s = b.finish();
    return emit(0, with_field(input, output_field, s.ref()));
  }
};

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<concat_impl>();
  YAML::Node list = c.config()["parts"];
  if (!list || !list.IsSequence()) {
    c.error(list ? list : c.config(), "config.parts is required: a list of strings, $.paths and ${selectors}");
    return nullptr;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    YAML::Node n = list[i];
    std::string key = "config.parts[" + std::to_string(i) + "]";
    if (!n.IsScalar()) {
      c.error(n, key + " must be a string, a $.path or a ${selector} template");
      continue;
    }
    const std::string& s = n.Scalar();
    part p;
    std::string why;
    if (s == "$" || s.starts_with("$.")) {
      p.path = field_path::parse(s, &why);
      if (!p.path) c.error(n, key + ": " + why);
    } else if (s.find("${") != std::string::npos) {
      p.templ = template_string::compile(s, c.lookup(), &why);
      if (!p.templ) c.error(n, key + ": " + why);
    } else {
      p.literal = s;
    }
    impl->parts.push_back(std::move(p));
  }
  if (auto s = c.string("separator", false, "")) impl->separator = *s;
  if (auto f = c.string("output_field", false, "result")) {
    if (f->empty()) c.error(c.config()["output_field"], "config.output_field must not be empty");
    else impl->output_field = *f;
  }
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type concat_node() { return {"std::concat", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
