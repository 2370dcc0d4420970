#include "flows/node.h"

#include <charconv>
#include <cmath>

#include "flows/nodes/all.h"

namespace xerv::flows {
namespace {
// A YAML scalar that is exactly a number of type T.
template <class T>
bool scalar_number(const YAML::Node& n, T& v) {
  if (!n.IsScalar() || n.Scalar().empty()) return false;
  const std::string& s = n.Scalar();
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}
}  // namespace

// config[key] when present and not null; otherwise reports a missing required key
// and leaves `fallback_used` set so the caller returns its fallback.
std::optional<YAML::Node> node_compiler::present(const char* key, bool required, bool& fallback_used) {
  YAML::Node n = _config ? _config[key] : YAML::Node();
  fallback_used = false;
  if (n && !n.IsNull()) return n;
  if (required) {
    error(_config, std::string("config.") + key + " is required");
    return std::nullopt;
  }
  fallback_used = true;
  return std::nullopt;
}

template <class T, class Convert>
std::optional<T> node_compiler::typed(const char* key, bool required, T fallback, Convert convert) {
  bool use_fallback = false;
  auto found = present(key, required, use_fallback);
  if (found) return convert(*found);
  if (use_fallback) return fallback;
  return std::nullopt;
}

void node_compiler::error(const YAML::Node& at, const std::string& message) {
  _failed = true;
  YAML::Mark m = at.IsDefined() ? at.Mark() : _def.Mark();
  if (m.is_null()) m = _def.Mark();
  _errors.push_back({m.line + 1, m.column + 1, "node '" + _name + "': " + message});
}

std::optional<std::string> node_compiler::string(const char* key, bool required, std::string fallback) {
  return typed(key, required, std::move(fallback), [&](const YAML::Node& n) -> std::optional<std::string> {
    if (n.IsScalar()) return n.Scalar();
    error(n, std::string("config.") + key + " must be a string");
    return std::nullopt;
  });
}

std::optional<double> node_compiler::number(const char* key, bool required, double fallback) {
  return typed(key, required, fallback, [&](const YAML::Node& n) -> std::optional<double> {
    double v = 0;
    if (scalar_number(n, v) && std::isfinite(v)) return v;
    error(n, std::string("config.") + key + " must be a number");
    return std::nullopt;
  });
}

std::optional<int64_t> node_compiler::integer(const char* key, bool required, int64_t fallback, int64_t min,
                                              int64_t max) {
  return typed(key, required, fallback, [&](const YAML::Node& n) -> std::optional<int64_t> {
    int64_t v = 0;
    if (scalar_number(n, v) && v >= min && v <= max) return v;
    error(n, std::string("config.") + key + " must be an integer between " + std::to_string(min) + " and " +
                 std::to_string(max));
    return std::nullopt;
  });
}

std::optional<bool> node_compiler::boolean(const char* key, bool required, bool fallback) {
  return typed(key, required, fallback, [&](const YAML::Node& n) -> std::optional<bool> {
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) return n.Scalar() == "true";
    error(n, std::string("config.") + key + " must be true or false");
    return std::nullopt;
  });
}

std::optional<field_path> node_compiler::path(const YAML::Node& n) {
  if (!n || !n.IsScalar()) {
    error(n, "expected a field path");
    return std::nullopt;
  }
  std::string why;
  auto p = field_path::parse(n.Scalar(), &why);
  if (!p) error(n, why);
  return p;
}

std::optional<template_string> node_compiler::templ(const YAML::Node& n) {
  if (!n || !n.IsScalar()) {
    error(n, "expected a string");
    return std::nullopt;
  }
  std::string why;
  auto t = template_string::compile(n.Scalar(), _lookup, &why);
  if (!t) error(n, why);
  return t;
}

namespace {
void yaml_to_value(const YAML::Node& n, core::value_builder& b) {
  if (!n || n.IsNull()) {
    b.add_null();
  } else if (n.IsSequence()) {
    b.begin_array();
    for (const auto& item : n) yaml_to_value(item, b);
    b.end();
  } else if (n.IsMap()) {
    b.begin_object();
    for (const auto& kv : n) {
      b.key(kv.first.as<std::string>());
      yaml_to_value(kv.second, b);
    }
    b.end();
  } else {
    const std::string& s = n.Scalar();
    // A quoted scalar stays a string; plain scalars are typed (YAML 1.2 core schema).
    if (n.Tag() == "!") {
      b.add_string(s);
      return;
    }
    if (s == "true" || s == "false") {
      b.add_bool(s == "true");
      return;
    }
    if (s == "null" || s == "~") {
      b.add_null();
      return;
    }
    int64_t i = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) {
      b.add_int(i);
      return;
    }
    double d = 0;
    auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec2 == std::errc() && p2 == s.data() + s.size() && !s.empty() && std::isfinite(d)) {
      b.add_double(d);
      return;
    }
    b.add_string(s);
  }
}
}  // namespace

core::value node_compiler::to_value(const YAML::Node& n) {
  core::value_builder b;
  yaml_to_value(n, b);
  return b.finish();
}

node_result node_impl::run(core::value_ref, node_env&) const { return fail("node has no synchronous run"); }

io::task<node_result> node_impl::run_async(core::value input, node_env& env) const { co_return run(input.ref(), env); }

io::task<enqueued> node_env::enqueue(std::string queue, core::value) {
  co_return enqueued{{}, "queue '" + queue + "' cannot be reached from here", std::string(error_codes::node_failed)};
}

namespace {
const std::vector<node_type>& registry() {
  static const std::vector<node_type> types = nodes::standard_node_types();
  return types;
}
}  // namespace

const node_type* find_node_type(std::string_view name) {
  for (const auto& t : registry())
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<std::string> node_type_names() {
  std::vector<std::string> out;
  for (const auto& t : registry()) out.push_back(t.name);
  return out;
}

node_result emit(uint16_t port, core::value v) { return node_output{port, std::move(v)}; }
node_result emit_ref(uint16_t port, core::value_ref v) { return node_output{port, core::value(std::string(v.bytes()))}; }
node_result fail(std::string message, std::string_view code) {
  return node_failure{std::move(message), std::string(code)};
}

}  // namespace xerv::flows
