// std::switch: routes its input unchanged to `true` or `false`.
//
// Either `condition:` — a test on a field of the node's input, or a tree of them:
//   {type: greater_than | less_than | equals | not_equals | contains | matches, field, value}
//   {type: exists, field}     the field is present and not null
//   {type: always}            always true
//   {all: [cond, ...]} / {any: [cond, ...]}
// or `expression:` over selectors (flows/expr.h), never both.
//
// A missing field reads as null. greater_than/less_than/equals/not_equals follow
// the expression rules (numbers numerically, strings by bytes, deep equality).
// contains: a string field contains the value as a substring, or an array field
// has an element equal to it. matches: a string field in which the RE2 regular
// expression `value` finds a match (a search, not a whole-string match; anchor
// with ^$). RE2 runs in time linear in the subject without recursion, so any
// subject length is safe; a pattern RE2 refuses (backreferences, lookaround) is a
// deploy error. A field path with [*] reads as the array of every value it reaches.

#include <re2/re2.h>

#include "flows/expr.h"
#include "flows/nodes/all.h"
#include "flows/nodes/values.h"

namespace xerv::flows::nodes {
namespace {

struct condition {
  enum kind_t : uint8_t { greater_than, less_than, equals, not_equals, contains, matches, exists, always, all, any };
  kind_t kind = always;
  field_path field;
  core::value value;
  // matches. RE2 is thread-safe: a search may take the lock of its lazily built
  // DFA cache, uncontended in the server, where every shard compiles its own
  // copy of a flow.
  std::unique_ptr<const re2::RE2> re;
  std::vector<condition> children;
};

const std::pair<std::string_view, condition::kind_t> k_kinds[] = {
    {"greater_than", condition::greater_than},
    {"less_than", condition::less_than},
    {"equals", condition::equals},
    {"not_equals", condition::not_equals},
    {"contains", condition::contains},
    {"matches", condition::matches},
    {"exists", condition::exists},
    {"always", condition::always},
};

bool contains(core::value_ref hay, core::value_ref needle) {
  if (hay.type() == core::json_type::string && needle.type() == core::json_type::string)
    return hay.as_string().find(needle.as_string()) != std::string_view::npos;
  if (hay.type() == core::json_type::array) {
    for (uint32_t i = 0; i < hay.size(); ++i)
      if (core::equal(hay.at(i), needle)) return true;
  }
  return false;
}

bool test(const condition& c, core::value_ref input) {
  switch (c.kind) {
    case condition::always: return true;
    case condition::all:
      for (const condition& k : c.children)
        if (!test(k, input)) return false;
      return true;
    case condition::any:
      for (const condition& k : c.children)
        if (test(k, input)) return true;
      return false;
    default: break;
  }
  static const char k_null[1] = {0};
  core::value scratch;
  auto found = read_path(c.field, input, scratch);
  core::value_ref v = found ? *found : core::value_ref(k_null);
  switch (c.kind) {
    case condition::greater_than: return compare_values(compare_op::gt, v, c.value.ref());
    case condition::less_than: return compare_values(compare_op::lt, v, c.value.ref());
    case condition::equals: return compare_values(compare_op::eq, v, c.value.ref());
    case condition::not_equals: return compare_values(compare_op::ne, v, c.value.ref());
    case condition::contains: return contains(v, c.value.ref());
    case condition::exists: return !v.is_null();
    case condition::matches:
      return v.type() == core::json_type::string && re2::RE2::PartialMatch(v.as_string(), *c.re);
    default: break;
  }
  return false;
}

class condition_compiler {
 public:
  explicit condition_compiler(node_compiler& c) : _c(c) {}

  std::optional<condition> compile(const YAML::Node& n, const std::string& key) {
    if (!n.IsMap()) {
      _c.error(n, key + " must be a map: {type, field, value}, {all: [...]} or {any: [...]}");
      return std::nullopt;
    }
    if (n["all"] || n["any"]) return compile_group(n, key);
    return compile_test(n, key);
  }

 private:
  bool only_keys(const YAML::Node& n, const std::string& key, std::initializer_list<std::string_view> known) {
    bool ok = true;
    for (const auto& kv : n) {
      std::string k = kv.first.Scalar();
      if (std::find(known.begin(), known.end(), k) != known.end()) continue;
      _c.error(kv.first, key + ": unknown key '" + k + "'");
      ok = false;
    }
    return ok;
  }

  std::optional<condition> compile_group(const YAML::Node& n, const std::string& key) {
    if (n["all"] && n["any"]) {
      _c.error(n, key + ": use either all or any, not both (nest them to combine)");
      return std::nullopt;
    }
    bool is_all = bool(n["all"]);
    std::string name = is_all ? "all" : "any";
    if (!only_keys(n, key, {name})) return std::nullopt;
    YAML::Node list = n[name];
    if (!list.IsSequence() || list.size() == 0) {
      _c.error(list, key + "." + name + " must be a non-empty list of conditions");
      return std::nullopt;
    }
    condition out;
    out.kind = is_all ? condition::all : condition::any;
    bool ok = true;
    for (size_t i = 0; i < list.size(); ++i) {
      auto child = compile(list[i], key + "." + name + "[" + std::to_string(i) + "]");
      if (child) out.children.push_back(std::move(*child));
      else ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  std::optional<condition> compile_test(const YAML::Node& n, const std::string& key) {
    if (!only_keys(n, key, {"type", "field", "value"})) return std::nullopt;
    YAML::Node type = n["type"];
    if (!type || !type.IsScalar()) {
      _c.error(type ? type : n, key + ".type is required (greater_than, less_than, equals, not_equals, contains, "
                                      "matches, exists or always), or use all/any");
      return std::nullopt;
    }
    condition out;
    auto it = std::find_if(std::begin(k_kinds), std::end(k_kinds), [&](const auto& p) { return p.first == type.Scalar(); });
    if (it == std::end(k_kinds)) {
      _c.error(type, key + ".type '" + type.Scalar() +
                         "' is unknown (greater_than, less_than, equals, not_equals, contains, matches, exists, always)");
      return std::nullopt;
    }
    out.kind = it->second;
    if (out.kind == condition::always) return out;
    YAML::Node field = n["field"];
    if (!field || !field.IsScalar()) {
      _c.error(field ? field : n, key + ".field is required (a path in the node's input, e.g. $.amount)");
      return std::nullopt;
    }
    std::string why;
    auto path = field_path::parse(field.Scalar(), &why);
    if (!path) {
      _c.error(field, key + ".field: " + why);
      return std::nullopt;
    }
    out.field = std::move(*path);
    if (out.kind == condition::exists) return out;
    return compile_value(n, key, std::move(out)) ;
  }

  std::optional<condition> compile_value(const YAML::Node& n, const std::string& key, condition out) {
    YAML::Node value = n["value"];
    if (!value) {
      _c.error(n, key + ".value is required for type " + n["type"].Scalar());
      return std::nullopt;
    }
    out.value = _c.to_value(value);
    core::json_type t = out.value.ref().type();
    if ((out.kind == condition::greater_than || out.kind == condition::less_than) && t != core::json_type::integer &&
        t != core::json_type::real && t != core::json_type::string) {
      _c.error(value, key + ".value must be a number or a string for type " + n["type"].Scalar());
      return std::nullopt;
    }
    if (out.kind == condition::matches) {
      if (!value.IsScalar() || t != core::json_type::string) {
        _c.error(value, key + ".value must be a regular expression string for type matches");
        return std::nullopt;
      }
      re2::RE2::Options options;
      options.set_log_errors(false);  // the error goes to the deploy report instead
      auto re = std::make_unique<const re2::RE2>(value.Scalar(), options);
      if (!re->ok()) {
        _c.error(value, key + ".value is not a valid RE2 regular expression: " + re->error());
        return std::nullopt;
      }
      out.re = std::move(re);
    }
    return out;
  }

  node_compiler& _c;
};

struct switch_impl : node_impl {
  std::optional<condition> cond;
  std::shared_ptr<const expression> expr;

  node_result run(core::value_ref input, node_env& env) const override {
    bool yes = false;
    if (expr) {
      yes = expr->evaluate(env.selectors());
    } else {
      yes = test(*cond, input);
    }
    return emit_ref(yes ? 0 : 1, input);
  }
};

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<switch_impl>();
  YAML::Node cond = c.config()["condition"];
  YAML::Node expr = c.config()["expression"];
  if (cond && expr) {
    c.error(expr, "config.condition and config.expression are mutually exclusive; use one");
    return nullptr;
  }
  if (!cond && !expr) {
    c.error(c.config(), "config.condition or config.expression is required");
    return nullptr;
  }
  if (cond) impl->cond = condition_compiler(c).compile(cond, "config.condition");
  else impl->expr = compile_expression(c, expr, "expression");
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type switch_node() { return {"std::switch", {"true", "false"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
