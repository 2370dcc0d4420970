#include "flows/path.h"

#include <charconv>

namespace xerv::flows {

std::optional<field_path> field_path::parse(std::string_view text, std::string* error) {
  field_path p;
  p._text = std::string(text);
  std::string_view s = text;
  if (s == "$") return p;
  if (s.starts_with("$.")) s.remove_prefix(2);
  else if (s.starts_with("$[")) s.remove_prefix(1);
  auto bad = [&](const std::string& why) -> std::optional<field_path> {
    if (error) *error = "invalid path '" + std::string(text) + "': " + why;
    return std::nullopt;
  };
  bool expect_name = !s.starts_with("[");
  // After a segment: a '.' must introduce a name; '[' or the end may follow directly.
  auto after_segment = [&] {
    expect_name = !s.empty() && s.front() == '.';
    if (expect_name) s.remove_prefix(1);
    return !(expect_name && s.empty());
  };
  while (!s.empty()) {
    if (s.front() == '[') {
      size_t close = s.find(']');
      if (close == std::string_view::npos) return bad("missing ]");
      std::string_view inside = s.substr(1, close - 1);
      if (inside == "*") {
        p._segments.push_back({segment::wildcard, {}, 0});
        p._wildcard = true;
      } else {
        uint32_t n = 0;
        auto [ptr, ec] = std::from_chars(inside.data(), inside.data() + inside.size(), n);
        if (ec != std::errc() || ptr != inside.data() + inside.size() || inside.empty())
          return bad("index must be a number or *");
        p._segments.push_back({segment::at, {}, n});
      }
      s.remove_prefix(close + 1);
      if (!after_segment()) return bad("ends with .");
      continue;
    }
    if (!expect_name) return bad("expected . or [ after ]");
    size_t end = s.find_first_of(".[");
    std::string_view name = s.substr(0, end);
    if (name.empty()) return bad("empty name");
    p._segments.push_back({segment::key, std::string(name), 0});
    s.remove_prefix(name.size());
    if (!after_segment()) return bad("ends with .");
  }
  return p;
}

std::string_view field_path::last_name() const {
  if (_segments.empty() || _segments.back().kind != segment::key) return {};
  return _segments.back().name;
}

std::optional<core::value_ref> field_path::resolve(core::value_ref v) const {
  for (const segment& seg : _segments) {
    switch (seg.kind) {
      case segment::key: {
        auto next = v.find(seg.name);
        if (!next) return std::nullopt;
        v = *next;
        break;
      }
      case segment::at:
        if (v.type() != core::json_type::array || seg.position >= v.size()) return std::nullopt;
        v = v.at(seg.position);
        break;
      case segment::wildcard: return std::nullopt;
    }
  }
  return v;
}

void field_path::collect_from(core::value_ref v, size_t i, std::vector<core::value_ref>& out) const {
  for (; i < _segments.size(); ++i) {
    const segment& seg = _segments[i];
    if (seg.kind == segment::wildcard) {
      if (v.type() != core::json_type::array) return;
      for (uint32_t k = 0; k < v.size(); ++k) collect_from(v.at(k), i + 1, out);
      return;
    }
    if (seg.kind == segment::key) {
      auto next = v.find(seg.name);
      if (!next) return;
      v = *next;
    } else {
      if (v.type() != core::json_type::array || seg.position >= v.size()) return;
      v = v.at(seg.position);
    }
  }
  out.push_back(v);
}

void field_path::collect(core::value_ref root, std::vector<core::value_ref>& out) const { collect_from(root, 0, out); }

void append_as_text(std::string& out, core::value_ref v) {
  if (v.type() == core::json_type::string) out += v.as_string();
  else core::write_json(out, v);
}

std::optional<template_string> template_string::compile(std::string_view text, const node_lookup& nodes,
                                                        std::string* error) {
  template_string t;
  t._text = std::string(text);
  std::string_view s = text;
  while (!s.empty()) {
    size_t open = s.find("${");
    if (open == std::string_view::npos) {
      t._parts.push_back({std::string(s), -1});
      break;
    }
    if (open > 0) t._parts.push_back({std::string(s.substr(0, open)), -1});
    size_t close = s.find('}', open);
    if (close == std::string_view::npos) {
      if (error) *error = "unterminated selector in '" + std::string(text) + "'";
      return std::nullopt;
    }
    std::string_view body = s.substr(open + 2, close - open - 2);
    selector sel;
    sel.text = std::string(body);
    std::string_view rest;
    if (body == "trace_id") {
      sel.root = selector_root::trace_id;
    } else if (body == "input" || body.starts_with("input.") || body.starts_with("input[")) {
      sel.root = selector_root::input;
      rest = body.substr(5);
    } else if (body == "pipeline.config" || body.starts_with("pipeline.config.") || body.starts_with("pipeline.config[")) {
      sel.root = selector_root::pipeline_config;
      rest = body.substr(15);
    } else {
      size_t cut = body.find_first_of(".[");
      std::string_view root = body.substr(0, cut);
      auto idx = nodes(root);
      if (root.empty() || !idx) {
        if (error) *error = "unknown selector root '" + std::string(root) + "' in ${" + std::string(body) + "}";
        return std::nullopt;
      }
      sel.root = selector_root::node;
      sel.node = *idx;
      rest = cut == std::string_view::npos ? std::string_view{} : body.substr(cut);
    }
    if (rest.starts_with(".")) rest.remove_prefix(1);
    auto path = field_path::parse(rest, error);
    if (!path) return std::nullopt;
    sel.path = std::move(*path);
    t._parts.push_back({{}, int(t._selectors.size())});
    t._selectors.push_back(std::move(sel));
    s.remove_prefix(close + 1);
  }
  return t;
}

std::optional<core::value_ref> template_string::select(const selector& s, const selector_source& src,
                                                       core::value& scratch) {
  core::value_ref root;
  switch (s.root) {
    case selector_root::trace_id: {
      core::value_builder b;
      b.add_string(src.trace_id());
      scratch = b.finish();
      return scratch.ref();
    }
    case selector_root::input: root = src.trace_input(); break;
    case selector_root::pipeline_config: root = src.pipeline_config(); break;
    case selector_root::node: {
      auto out = src.node_output(s.node);
      if (!out) return std::nullopt;
      root = *out;
      break;
    }
  }
  if (!s.path.has_wildcard()) return s.path.resolve(root);
  std::vector<core::value_ref> all;
  s.path.collect(root, all);
  core::value_builder b;
  b.begin_array();
  for (auto v : all) b.add(v);
  b.end();
  scratch = b.finish();
  return scratch.ref();
}

core::value template_string::render(const selector_source& src) const {
  if (is_single_selector()) {
    core::value scratch;
    auto v = select(_selectors[0], src, scratch);
    if (!v) return core::value();
    return core::value(std::string(v->bytes()));
  }
  std::string text;
  render_text(text, src);
  core::value_builder b;
  b.add_string(text);
  return b.finish();
}

void template_string::render_text(std::string& out, const selector_source& src) const {
  for (const part& p : _parts) {
    if (p.selector < 0) {
      out += p.literal;
      continue;
    }
    core::value scratch;
    auto v = select(_selectors[size_t(p.selector)], src, scratch);
    if (v) append_as_text(out, *v);  // a missing value renders as nothing
  }
}

}  // namespace xerv::flows
