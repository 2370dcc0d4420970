#pragma once
// Field paths and selectors, compiled once when a flow is deployed.
//
// A field path is relative to a value: dotted names with [n] indexes and [*]
// (every element of an array), `$.` optional: `amount`, `$.amount`,
// `$.items[0].sku`, `$.items[*].price`.
//
// A template is a config string that may contain `${root.path}` selectors, where
// root is a node name, `input`, `pipeline.config` or `trace_id`. A template that is
// exactly one selector yields the selected value with its type; otherwise the
// selectors are rendered as text into the string.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace xerv::flows {

class field_path {
 public:
  struct segment {
    enum kind_t : uint8_t { key, at, wildcard } kind;
    std::string name;
    uint32_t position = 0;
  };

  // Returns nullopt and sets `error` for malformed text.
  static std::optional<field_path> parse(std::string_view text, std::string* error);

  bool empty() const { return _segments.empty(); }
  bool has_wildcard() const { return _wildcard; }
  const std::string& text() const { return _text; }
  const std::vector<segment>& segments() const { return _segments; }
  // The last key name ("sku" for `$.items[0].sku`); empty when the path ends in an index.
  std::string_view last_name() const;

  // The value at the path (the root itself for an empty path); nullopt when any
  // step is missing. Paths with [*] resolve to nothing here: use collect().
  std::optional<core::value_ref> resolve(core::value_ref root) const;
  // Every value the path reaches, in document order ([*] fans out).
  void collect(core::value_ref root, std::vector<core::value_ref>& out) const;

 private:
  void collect_from(core::value_ref v, size_t seg, std::vector<core::value_ref>& out) const;
  std::string _text;
  std::vector<segment> _segments;
  bool _wildcard = false;
};

enum class selector_root : uint8_t { node, input, pipeline_config, trace_id };

struct selector {
  selector_root root = selector_root::input;
  uint32_t node = 0;  // for selector_root::node
  field_path path;
  std::string text;   // as written, without ${ }
};

// What a template reads when it renders, supplied by the running trace.
class selector_source {
 public:
  virtual ~selector_source() = default;
  // nullopt when the node has not completed (or was skipped).
  virtual std::optional<core::value_ref> node_output(uint32_t node) const = 0;
  virtual core::value_ref trace_input() const = 0;
  virtual core::value_ref pipeline_config() const = 0;
  virtual std::string_view trace_id() const = 0;
};

// Maps a selector's root name to a node index, or nullopt for an unknown name.
using node_lookup = std::function<std::optional<uint32_t>(std::string_view name)>;

class template_string {
 public:
  // Unknown roots and malformed selectors are reported through `error`.
  static std::optional<template_string> compile(std::string_view text, const node_lookup& nodes, std::string* error);

  bool has_selectors() const { return !_selectors.empty(); }
  bool is_single_selector() const { return _parts.size() == 1 && _parts[0].selector >= 0; }
  const std::vector<selector>& selectors() const { return _selectors; }
  const std::string& text() const { return _text; }

  // A single selector: the selected value (null when missing); otherwise a string.
  core::value render(const selector_source& src) const;
  void render_text(std::string& out, const selector_source& src) const;
  // The value one selector selects (null when missing), as a reference when possible.
  static std::optional<core::value_ref> select(const selector& s, const selector_source& src,
                                               core::value& scratch);

 private:
  struct part {
    std::string literal;
    int selector = -1;  // index into _selectors, or -1 for a literal
  };
  std::string _text;
  std::vector<part> _parts;
  std::vector<selector> _selectors;
};

// Appends a value as template text: strings raw, everything else as JSON.
void append_as_text(std::string& out, core::value_ref v);

}  // namespace xerv::flows
