// The standard node library: configs compiled from YAML, nodes run against a fake
// trace, and every config error naming the node and the key.

#include <gtest/gtest.h>

#include "flows/flow.h"
#include "io/net.h"
#include "io/ops.h"
#include "io/when_all.h"
#include "tests/flows_fakes.h"
#include "tests/run_on.h"

using namespace xerv;
using xerv::testing::compile_node;
using xerv::testing::fake_trace;
using xerv::testing::json;
using xerv::testing::run_node;

namespace {

// Compiles `config_yaml` for `type` and expects exactly one error containing `text`.
void expect_config_error(std::string_view type, const std::string& config_yaml, const std::string& text) {
  auto c = compile_node(type, config_yaml);
  EXPECT_EQ(c.impl, nullptr) << config_yaml;
  ASSERT_EQ(c.errors.size(), 1u) << config_yaml << "\n" << c.error_text();
  EXPECT_EQ(c.errors[0].message.rfind("node 'n': ", 0), 0u) << c.errors[0].message;
  EXPECT_NE(c.errors[0].message.find(text), std::string::npos) << "got: " << c.errors[0].message << "\nwanted: " << text;
}

std::unique_ptr<flows::node_impl> compile_ok(std::string_view type, const std::string& config_yaml,
                                             const fake_trace& trace = {}) {
  auto c = compile_node(type, config_yaml, trace);
  EXPECT_TRUE(c.errors.empty()) << c.error_text();
  EXPECT_NE(c.impl, nullptr);
  return std::move(c.impl);
}

// ---------- std::switch ----------

int route(const std::string& config_yaml, std::string_view input, const fake_trace& trace = {}) {
  auto impl = compile_ok("std::switch", config_yaml, trace);
  if (!impl) return -2;
  auto [port, out] = run_node(*impl, input, trace);
  if (port >= 0) EXPECT_TRUE(core::equal(json(out).ref(), json(input).ref())) << "the input passes unchanged";
  else ADD_FAILURE() << out;
  return port;
}

constexpr int yes = 0, no = 1;

TEST(switch_node, comparisons_on_fields) {
  std::string gt = "condition: {type: greater_than, field: risk_score, value: 0.8}";
  EXPECT_EQ(route(gt, R"({"risk_score":0.93})"), yes);
  EXPECT_EQ(route(gt, R"({"risk_score":0.8})"), no);
  EXPECT_EQ(route(gt, R"({"risk_score":1})"), yes);
  EXPECT_EQ(route(gt, R"({"risk_score":"0.9"})"), no);  // a string is not a number
  EXPECT_EQ(route(gt, R"({})"), no);
  EXPECT_EQ(route("condition: {type: less_than, field: '$.a.b[1]', value: 10}", R"({"a":{"b":[50,5]}})"), yes);
  EXPECT_EQ(route("condition: {type: less_than, field: name, value: m}", R"({"name":"alice"})"), yes);
  EXPECT_EQ(route("condition: {type: equals, field: status, value: paid}", R"({"status":"paid"})"), yes);
  EXPECT_EQ(route("condition: {type: equals, field: n, value: 3}", R"({"n":3.0})"), yes);
  EXPECT_EQ(route("condition: {type: equals, field: ok, value: true}", R"({"ok":"true"})"), no);
  EXPECT_EQ(route("condition: {type: equals, field: ok, value: 'true'}", R"({"ok":"true"})"), yes);
  EXPECT_EQ(route("condition: {type: equals, field: tags, value: [a, b]}", R"({"tags":["a","b"]})"), yes);
  EXPECT_EQ(route("condition: {type: equals, field: gone, value: null}", R"({})"), yes);
  EXPECT_EQ(route("condition: {type: not_equals, field: status, value: paid}", R"({"status":"open"})"), yes);
  EXPECT_EQ(route("condition: {type: not_equals, field: status, value: paid}", R"({})"), yes);
}

TEST(switch_node, contains_matches_exists_always) {
  std::string c = "condition: {type: contains, field: text, value: needle}";
  EXPECT_EQ(route(c, R"({"text":"haystack with a needle in it"})"), yes);
  EXPECT_EQ(route(c, R"({"text":"nothing"})"), no);
  EXPECT_EQ(route(c, R"({"text":["needle"]})"), yes);
  EXPECT_EQ(route(c, R"({"text":["needles"]})"), no);
  EXPECT_EQ(route(c, R"({"text":42})"), no);
  EXPECT_EQ(route("condition: {type: contains, field: ids, value: 7}", R"({"ids":[1,7.0]})"), yes);
  EXPECT_EQ(route("condition: {type: contains, field: 'items[*].sku', value: B2}",
                  R"({"items":[{"sku":"A1"},{"sku":"B2"}]})"),
            yes);
  std::string m = R"(condition: {type: matches, field: email, value: '^[^@]+@example\.com$'})";
  EXPECT_EQ(route(m, R"({"email":"bob@example.com"})"), yes);
  EXPECT_EQ(route(m, R"({"email":"bob@example.org"})"), no);
  EXPECT_EQ(route(m, R"({"email":7})"), no);
  EXPECT_EQ(route("condition: {type: matches, field: s, value: 'b+'}", R"({"s":"abbbc"})"), yes);  // a search
  std::string e = "condition: {type: exists, field: user.id}";
  EXPECT_EQ(route(e, R"({"user":{"id":0}})"), yes);
  EXPECT_EQ(route(e, R"({"user":{"id":null}})"), no);
  EXPECT_EQ(route(e, R"({"user":{}})"), no);
  EXPECT_EQ(route("condition: {type: always}", R"(17)"), yes);
}

TEST(switch_node, all_and_any_nest) {
  std::string c = R"(
condition:
  all:
    - {type: greater_than, field: amount, value: 100}
    - any:
        - {type: equals, field: country, value: de}
        - {type: exists, field: vip}
)";
  EXPECT_EQ(route(c, R"({"amount":150,"country":"de"})"), yes);
  EXPECT_EQ(route(c, R"({"amount":150,"country":"fr","vip":true})"), yes);
  EXPECT_EQ(route(c, R"({"amount":150,"country":"fr"})"), no);
  EXPECT_EQ(route(c, R"({"amount":50,"country":"de"})"), no);
}

TEST(switch_node, long_subjects_and_backtracking_patterns_are_matched_in_linear_time) {
  // std::regex overflowed the stack on such subjects (hence a 1 KiB cap) and took
  // exponential time on (a|aa)*b; RE2 answers both.
  std::string as(100 * 1024, 'a');
  std::string nested = "condition: {type: matches, field: s, value: '(a|aa)*b'}";
  EXPECT_EQ(route(nested, R"({"s":")" + as + R"("})"), no);
  EXPECT_EQ(route(nested, R"({"s":")" + as + R"(b"})"), yes);
  std::string alt = "condition: {type: matches, field: s, value: '^(a|b)*c$'}";
  EXPECT_EQ(route(alt, R"({"s":")" + as + R"(c"})"), yes);
  EXPECT_EQ(route(alt, R"({"s":")" + as + R"(cc"})"), no);
}

TEST(switch_node, matches_uses_re2_syntax) {
  auto m = [](const std::string& pattern, const std::string& subject) {
    return route("condition: {type: matches, field: s, value: '" + pattern + "'}", R"({"s":")" + subject + R"("})");
  };
  EXPECT_EQ(m("(?i)^hello", "HeLLo world"), yes);  // inline flags
  EXPECT_EQ(m("^\\d{3}-\\d{4}$", "555-1234"), yes);
  EXPECT_EQ(m("^world", "hello world"), no);  // ^ anchors at the subject's start
  EXPECT_EQ(m("^\\pL+$", "\xc3\xa9t\xc3\xa9"), yes);  // Unicode classes on UTF-8 ("été")
  EXPECT_EQ(m("^.$", "\xc3\xa9"), yes);                // . is one code point
  EXPECT_EQ(m("(?P<word>b+)", "abbc"), yes);  // named groups
}

TEST(switch_node, expression_over_selectors) {
  fake_trace t;
  t.set("x", R"({"score":0.93})");
  t.input = json(R"({"vip":true})");
  std::string c = R"(expression: "${x.score} > 0.8 && ${input.vip} == true")";
  EXPECT_EQ(route(c, R"({"any":"thing"})", t), yes);
  t.input = json(R"({"vip":false})");
  EXPECT_EQ(route(c, R"({"any":"thing"})", t), no);
}

TEST(switch_node, config_errors_name_the_node_and_key) {
  const char* sw = "std::switch";
  expect_config_error(sw, "{}", "config.condition or config.expression is required");
  expect_config_error(sw, "{condition: {type: always}, expression: 'true'}",
                      "config.condition and config.expression are mutually exclusive");
  expect_config_error(sw, "condition: [1]", "config.condition must be a map");
  expect_config_error(sw, "condition: {field: a, value: 1}", "config.condition.type is required");
  expect_config_error(sw, "condition: {type: bigger, field: a, value: 1}", "config.condition.type 'bigger' is unknown");
  expect_config_error(sw, "condition: {type: equals, value: 1}", "config.condition.field is required");
  expect_config_error(sw, "condition: {type: equals, field: 'a[x]', value: 1}",
                      "config.condition.field: invalid path 'a[x]'");
  expect_config_error(sw, "condition: {type: equals, field: a}", "config.condition.value is required for type equals");
  expect_config_error(sw, "condition: {type: greater_than, field: a, value: [1]}",
                      "config.condition.value must be a number or a string for type greater_than");
  expect_config_error(sw, "condition: {type: matches, field: a, value: '(unclosed'}",
                      "config.condition.value is not a valid RE2 regular expression: missing ): (unclosed");
  // ECMAScript features RE2 leaves out, to stay linear: backreferences, lookaround.
  expect_config_error(sw, "condition: {type: matches, field: a, value: '(a)\\1'}",
                      "config.condition.value is not a valid RE2 regular expression: invalid escape sequence: \\1");
  expect_config_error(sw, "condition: {type: matches, field: a, value: 'a(?=b)'}",
                      "config.condition.value is not a valid RE2 regular expression: invalid perl operator: (?=");
  expect_config_error(sw, "condition: {type: matches, field: a, value: 5}",
                      "config.condition.value must be a regular expression string for type matches");
  expect_config_error(sw, "condition: {type: equals, field: a, value: 1, extra: 2}",
                      "config.condition: unknown key 'extra'");
  expect_config_error(sw, "condition: {all: []}", "config.condition.all must be a non-empty list of conditions");
  expect_config_error(sw, "condition: {all: [{type: always}], any: [{type: always}]}",
                      "config.condition: use either all or any, not both");
  expect_config_error(sw, "condition: {any: [{type: always}], type: equals}", "config.condition: unknown key 'type'");
  expect_config_error(sw, "condition: {any: [{type: always}, {all: [{type: nope}]}]}",
                      "config.condition.any[1].all[0].type 'nope' is unknown");
  expect_config_error(sw, "expression: '${x.score} >'", "config.expression: column 13: expected a value");
  expect_config_error(sw, "expression: '${ghost.score} > 1'",
                      "config.expression: column 1: unknown selector root 'ghost'");
}

TEST(switch_node, routes_by_port_name_in_a_flow) {
  auto r = flows::compile_flow(R"(
name: orders
triggers: [{id: start, type: manual}]
nodes:
  fraud_check:
    type: std::switch
    config: { condition: { type: greater_than, field: risk_score, value: 0.8 } }
  risky: { type: std::log }
  safe: { type: std::log }
edges:
  - { from: start, to: fraud_check }
  - { from: fraud_check.true, to: risky }
  - { from: fraud_check.false, to: safe }
)");
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<flows::compiled_flow>>(r))
      << flows::format_errors(std::get<std::vector<flows::flow_error>>(r), "flow");
  const auto& flow = *std::get<std::unique_ptr<flows::compiled_flow>>(r);
  const auto& v = flow.vertices[*flow.find("fraud_check")];
  EXPECT_EQ(v.ports, (std::vector<std::string>{"true", "false", "error"}));
  EXPECT_EQ(run_node(*v.impl, R"({"risk_score":0.9})").first, 0);
  EXPECT_EQ(run_node(*v.impl, R"({"risk_score":0.1})").first, 1);
}

TEST(switch_node, bad_config_in_a_flow_is_reported_with_its_line) {
  auto r = flows::compile_flow(R"(name: orders
triggers: [{id: start, type: manual}]
nodes:
  fraud_check:
    type: std::switch
    config:
      condition: { type: greater_than, field: risk_score }
edges:
  - { from: start, to: fraud_check }
)");
  ASSERT_TRUE(std::holds_alternative<std::vector<flows::flow_error>>(r));
  const auto& errors = std::get<std::vector<flows::flow_error>>(r);
  ASSERT_EQ(errors.size(), 1u) << flows::format_errors(errors, "flow");
  EXPECT_EQ(errors[0].line, 7);
  EXPECT_EQ(errors[0].message, "node 'fraud_check': config.condition.value is required for type greater_than");
}

// ---------- std::map ----------

std::string run_ok(std::string_view type, const std::string& config_yaml, std::string_view input,
                   const fake_trace& trace = {}) {
  auto impl = compile_ok(type, config_yaml, trace);
  if (!impl) return "<no impl>";
  auto [port, out] = run_node(*impl, input, trace);
  EXPECT_EQ(port, 0) << out;
  return out;
}

TEST(map_node, builds_a_new_object) {
  std::string c = R"(
mappings:
  - {from: $.customer.name, to: name}
  - {from: 'items[*].sku', to: skus}
  - {from: $.missing, to: nothing}
  - {from: $.missing, to: fallback, default: {a: 1}}
  - {from: total, to: total, default: 0}
)";
  EXPECT_EQ(run_ok("std::map", c, R"({"customer":{"name":"Ada"},"items":[{"sku":"A"},{"sku":"B"}],"total":9,"x":1})"),
            R"({"name":"Ada","skus":["A","B"],"nothing":null,"fallback":{"a":1},"total":9})");
  // An empty [*] collection takes the default when one is given.
  EXPECT_EQ(run_ok("std::map", "mappings: [{from: 'a[*]', to: x, default: none}, {from: 'a[*]', to: y}]", R"({"a":[]})"),
            R"({"x":"none","y":[]})");
  EXPECT_EQ(run_ok("std::map", "mappings: [{from: $, to: all}]", R"(5)"), R"({"all":5})");
}

TEST(map_node, keep_unmapped_copies_other_fields_first) {
  std::string c = "{keep_unmapped: true, mappings: [{from: a, to: b}, {from: c, to: renamed}]}";
  // b is a target, so the input's b is dropped; a and c stay (they are not targets).
  EXPECT_EQ(run_ok("std::map", c, R"({"a":1,"b":2,"c":3,"d":4})"), R"({"a":1,"c":3,"d":4,"b":1,"renamed":3})");
  EXPECT_EQ(run_ok("std::map", c, R"([1,2])"), R"({"b":null,"renamed":null})");
}

TEST(map_node, config_errors) {
  const char* t = "std::map";
  expect_config_error(t, "{}", "config.mappings is required");
  expect_config_error(t, "mappings: []", "config.mappings is required");
  expect_config_error(t, "mappings: [5]", "config.mappings[0] must be a map {from, to, default}");
  expect_config_error(t, "mappings: [{to: x}]", "config.mappings[0].from is required");
  expect_config_error(t, "mappings: [{from: 'a[', to: x}]", "config.mappings[0].from: invalid path 'a[': missing ]");
  expect_config_error(t, "mappings: [{from: a}]", "config.mappings[0].to is required");
  expect_config_error(t, "mappings: [{from: a, to: x}, {from: b, to: x}]",
                      "config.mappings[1].to: 'x' is already the target of another mapping");
  expect_config_error(t, "mappings: [{from: a, to: x, dflt: 1}]", "config.mappings[0]: unknown key 'dflt'");
  expect_config_error(t, "{mappings: [{from: a, to: x}], keep_unmapped: maybe}",
                      "config.keep_unmapped must be true or false");
}

// ---------- std::concat ----------

TEST(concat_node, joins_literals_paths_and_selectors) {
  fake_trace t;
  t.input = json(R"({"customer":"Ada"})");
  t.set("a", R"({"n":3,"tags":["x"]})");
  std::string c = R"({parts: ["Order", $.id, "for ${input.customer}", "${a.n}", "${a.tags}", $.meta, $.nope], separator: " "})";
  EXPECT_EQ(run_ok("std::concat", c, R"({"id":42,"meta":{"k":"v"}})", t),
            R"({"id":42,"meta":{"k":"v"},"result":"Order 42 for Ada 3 [\"x\"] {\"k\":\"v\"} "})");
  EXPECT_EQ(run_ok("std::concat", "{parts: [a, b], output_field: joined}", R"({"joined":"old","z":1})"),
            R"({"z":1,"joined":"ab"})");
  EXPECT_EQ(run_ok("std::concat", "{parts: [$.s, '-', $.s]}", R"({"s":"raw \"text\""})"),
            R"({"s":"raw \"text\"","result":"raw \"text\"-raw \"text\""})");
  EXPECT_EQ(run_ok("std::concat", "{parts: [x, $]}", R"("str")"), R"({"result":"xstr"})");
  EXPECT_EQ(run_ok("std::concat", "{parts: ['$.items[*].n'], separator: ','}", R"({"items":[{"n":1},{"n":2}]})"),
            R"({"items":[{"n":1},{"n":2}],"result":"[1,2]"})");
  EXPECT_EQ(run_ok("std::concat", "{parts: []}", R"({})"), R"({"result":""})");
}

TEST(concat_node, config_errors) {
  const char* t = "std::concat";
  expect_config_error(t, "{}", "config.parts is required");
  expect_config_error(t, "parts: abc", "config.parts is required");
  expect_config_error(t, "parts: [[1]]", "config.parts[0] must be a string, a $.path or a ${selector} template");
  expect_config_error(t, "parts: [a, '$.x[']", "config.parts[1]: invalid path '$.x['");
  expect_config_error(t, "parts: ['${ghost.x}']", "config.parts[0]: unknown selector root 'ghost'");
  expect_config_error(t, "parts: ['${input.x']", "config.parts[0]: unterminated selector");
  expect_config_error(t, "{parts: [a], separator: [1]}", "config.separator must be a string");
  expect_config_error(t, "{parts: [a], output_field: ''}", "config.output_field must not be empty");
}

// ---------- std::aggregate ----------

std::string aggregate(const std::string& op, const std::string& source, std::string_view input) {
  return run_ok("std::aggregate", "{operation: " + op + ", source: " + source + ", output_field: r}", input);
}

TEST(aggregate_node, operations) {
  std::string items = R"({"items":[{"price":10},{"price":2.5},{"price":"n/a"},{"price":-1}]})";
  std::string p = "'$.items[*].price'";
  EXPECT_EQ(aggregate("sum", p, items), R"({"items":[{"price":10},{"price":2.5},{"price":"n/a"},{"price":-1}],"r":11.5})");
  // The value as JSON, with " (real)" after reals: the writer prints 2.0 as 2.
  auto r = [&](const std::string& op, const std::string& src, std::string_view in) {
    auto impl = compile_ok("std::aggregate", "{operation: " + op + ", source: " + src + ", output_field: r}");
    if (!impl) return std::string("<no impl>");
    fake_trace t;
    xerv::testing::fake_env env(t);
    core::value input = json(in);
    auto res = impl->run(input.ref(), env);
    auto* o = std::get_if<flows::node_output>(&res);
    if (!o) return std::string("<failed>");
    auto v = o->value.ref().find("r");
    if (!v) return std::string("<missing>");
    return core::to_json(*v) + (v->type() == core::json_type::real ? " (real)" : "");
  };
  EXPECT_EQ(r("average", p, items), "3.8333333333333335 (real)");
  EXPECT_EQ(r("avg", p, items), "3.8333333333333335 (real)");
  EXPECT_EQ(r("min", p, items), "-1");
  EXPECT_EQ(r("max", p, items), "10");
  EXPECT_EQ(r("count", p, items), "4");  // counts every collected value
  EXPECT_EQ(r("product", p, items), "-25 (real)");
  // Integers stay integers; overflow falls back to reals.
  EXPECT_EQ(r("sum", "$.a", R"({"a":[1,2,3]})"), "6");
  EXPECT_EQ(r("product", "$.a", R"({"a":[2,3,4]})"), "24");
  EXPECT_EQ(r("average", "$.a", R"({"a":[1,2]})"), "1.5 (real)");
  EXPECT_EQ(r("average", "$.a", R"({"a":[2,2]})"), "2 (real)");
  EXPECT_EQ(r("sum", "$.a", R"({"a":[9223372036854775807,1]})"), "9223372036854775808 (real)");
  EXPECT_EQ(r("max", "$.a", R"({"a":[1,2.5,2]})"), "2.5 (real)");
  EXPECT_EQ(r("min", "$.a", R"({"a":[1.0,3]})"), "1 (real)");
  EXPECT_EQ(r("sum", "$.a", R"({"a":[1,2.0]})"), "3 (real)");
  // A list of sources; a scalar path counts as one value.
  EXPECT_EQ(r("sum", "[$.a, $.b, '$.c[*].v', $.missing]", R"({"a":1,"b":[2,3],"c":[{"v":4}]})"), "10");
  // Nothing to aggregate.
  EXPECT_EQ(r("sum", "$.a", R"({"a":[]})"), "0");
  EXPECT_EQ(r("product", "$.a", R"({})"), "1");
  EXPECT_EQ(r("count", "$.a", R"({})"), "0");
  EXPECT_EQ(r("average", "$.a", R"({"a":["x"]})"), "null");
  EXPECT_EQ(r("min", "$.a", R"({})"), "null");
  EXPECT_EQ(r("max", "$.a", R"({})"), "null");
  EXPECT_EQ(r("count", "$.a", R"({"a":["x",null,{}]})"), "3");
  EXPECT_EQ(run_ok("std::aggregate", "{operation: sum, source: $}", R"([1,2])"), R"({"result":3})");
}

TEST(aggregate_node, config_errors) {
  const char* t = "std::aggregate";
  expect_config_error(t, "{source: $.a}", "config.operation is required");
  expect_config_error(t, "{operation: median, source: $.a}", "config.operation 'median' is unknown");
  expect_config_error(t, "{operation: sum}", "config.source is required");
  expect_config_error(t, "{operation: sum, source: []}", "config.source is required");
  expect_config_error(t, "{operation: sum, source: 'a['}", "config.source: invalid path 'a['");
  expect_config_error(t, "{operation: sum, source: [$.a, {x: 1}]}", "config.source[1] must be a path");
  expect_config_error(t, "{operation: sum, source: $.a, output_field: ''}", "config.output_field must not be empty");
}

// ---------- std::json_dynamic ----------

std::string dyn(const std::string& config_yaml, std::string_view input, const fake_trace& trace = {}) {
  return run_ok("std::json_dynamic", config_yaml, input, trace);
}

TEST(json_dynamic_node, passthrough_extract) {
  EXPECT_EQ(dyn("{}", R"({"a":1})"), R"({"a":1})");
  EXPECT_EQ(dyn("operation: passthrough", R"([1])"), R"([1])");
  EXPECT_EQ(dyn("{operation: extract, fields: [$.customer.name, 'items[*].sku', $.gone]}",
                R"({"customer":{"name":"Ada"},"items":[{"sku":"A"},{"sku":"B"}]})"),
            R"({"name":"Ada","sku":["A","B"],"gone":null})");
}

TEST(json_dynamic_node, set) {
  EXPECT_EQ(dyn("{operation: set, path: $.a.b, value: 5}", R"({"x":1})"), R"({"x":1,"a":{"b":5}})");
  EXPECT_EQ(dyn("{operation: set, path: $.a.b, value: 5}", R"({"a":{"b":1,"c":2},"z":0})"), R"({"a":{"b":5,"c":2},"z":0})");
  EXPECT_EQ(dyn("{operation: set, path: $.a.b, value: [1, two]}", R"({"a":7})"), R"({"a":{"b":[1,"two"]}})");
  EXPECT_EQ(dyn("{operation: set, path: 'items[1].sku', value: X}", R"({"items":[{"sku":"A"},{"sku":"B"}]})"),
            R"({"items":[{"sku":"A"},{"sku":"X"}]})");
  EXPECT_EQ(dyn("{operation: set, path: 'items[1]', value: X}", R"({"items":["A"]})"), R"({"items":["A","X"]})");
  EXPECT_EQ(dyn("{operation: set, path: $, value: {replaced: true}}", R"({"a":1})"), R"({"replaced":true})");
  EXPECT_EQ(dyn("{operation: set, path: a, value: null}", R"({"a":1})"), R"({"a":null})");
  EXPECT_EQ(dyn("{operation: set, path: a, value: 'null'}", R"({})"), R"({"a":"null"})");
  EXPECT_EQ(dyn("{operation: set, path: a, value: 5}", R"("scalar")"), R"({"a":5})");
  // Templates: one selector keeps its type, longer text is rendered.
  fake_trace t;
  t.input = json(R"({"amount":12.5,"who":"Ada"})");
  EXPECT_EQ(dyn("{operation: set, path: total, value: '${input.amount}'}", R"({})", t), R"({"total":12.5})");
  EXPECT_EQ(dyn("{operation: set, path: msg, value: 'hi ${input.who}'}", R"({})", t), R"({"msg":"hi Ada"})");
  EXPECT_EQ(dyn("{operation: set, path: m, value: '${input.nope}'}", R"({})", t), R"({"m":null})");
  // An index beyond the end fails the node.
  auto impl = compile_ok("std::json_dynamic", "{operation: set, path: 'items[3]', value: 1}");
  auto [port, msg] = run_node(*impl, R"({"items":[1]})");
  EXPECT_EQ(port, -1);
  EXPECT_EQ(msg, "set items[3]: [3] is not an element of an existing array (or one past its end)");
}

TEST(json_dynamic_node, delete) {
  EXPECT_EQ(dyn("{operation: delete, path: $.a.b}", R"({"a":{"b":1,"c":2},"d":3})"), R"({"a":{"c":2},"d":3})");
  EXPECT_EQ(dyn("{operation: delete, path: $.nope.deeper}", R"({"a":1})"), R"({"a":1})");
  EXPECT_EQ(dyn("{operation: delete, path: 'items[0]'}", R"({"items":[1,2,3]})"), R"({"items":[2,3]})");
  EXPECT_EQ(dyn("{operation: delete, path: 'items[*].secret'}", R"({"items":[{"secret":1,"k":1},{"k":2},3]})"),
            R"({"items":[{"k":1},{"k":2},3]})");
  EXPECT_EQ(dyn("{operation: delete, path: 'items[*]'}", R"({"items":[1,2]})"), R"({"items":[]})");
}

TEST(json_dynamic_node, flatten) {
  EXPECT_EQ(dyn("operation: flatten", R"({"a":{"b":1,"c":{"d":true}},"items":[{"sku":2},"x"],"e":{},"f":[],"g":null})"),
            R"({"a.b":1,"a.c.d":true,"items.0.sku":2,"items.1":"x","e":{},"f":[],"g":null})");
  EXPECT_EQ(dyn("{operation: flatten, separator: _}", R"({"a":{"b":1}})"), R"({"a_b":1})");
  EXPECT_EQ(dyn("operation: flatten", R"([{"a":1}])"), R"({"0.a":1})");
  EXPECT_EQ(dyn("operation: flatten", R"(7)"), R"(7)");
}

TEST(json_dynamic_node, merge) {
  EXPECT_EQ(dyn("operation: merge", R"([{"a":1,"b":1},{"b":2,"c":3},5,{"a":0}])"), R"({"a":0,"b":2,"c":3})");
  EXPECT_EQ(dyn("operation: merge", R"({"single":"object"})"), R"({"single":"object"})");
  EXPECT_EQ(dyn("operation: merge", R"([])"), R"({})");
}

// A node_env that reports several active inputs, as the executor does for a node
// that several branches join into.
struct joined_env : xerv::testing::fake_env {
  using fake_env::fake_env;
  std::vector<core::value> joined;
  std::vector<core::value_ref> inputs() const override {
    std::vector<core::value_ref> out;
    for (const auto& v : joined) out.push_back(v.ref());
    return out;
  }
};

TEST(json_dynamic_node, merge_combines_every_active_input) {
  auto impl = compile_ok("std::json_dynamic", "operation: merge");
  ASSERT_NE(impl, nullptr);
  fake_trace t;
  joined_env env(t);
  // Objects merge in arrival order (a later key wins, keeping its first position);
  // non-objects, arrays of objects included, are skipped.
  for (auto text : {R"({"lx":1,"k":"l"})", R"([{"no":1}])", R"(7)", R"({"ry":2,"k":"r"})"}) env.joined.push_back(json(text));
  auto r = impl->run(env.joined[0].ref(), env);
  auto* o = std::get_if<flows::node_output>(&r);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(core::to_json(o->value.ref()), R"({"lx":1,"k":"r","ry":2})");
}

TEST(json_dynamic_node, config_errors) {
  const char* t = "std::json_dynamic";
  expect_config_error(t, "operation: explode", "config.operation 'explode' is unknown");
  expect_config_error(t, "operation: [set]", "config.operation must be a string");
  expect_config_error(t, "operation: extract", "config.fields is required for extract");
  expect_config_error(t, "{operation: extract, fields: [{a: 1}]}", "config.fields[0] must be a path");
  expect_config_error(t, "{operation: extract, fields: ['a[']}", "config.fields[0]: invalid path 'a['");
  expect_config_error(t, "{operation: extract, fields: ['a[0]']}", "config.fields[0]: 'a[0]' must end in a field name");
  expect_config_error(t, "{operation: extract, fields: [a.x, b.x]}", "config.fields[1]: another field is also named 'x'");
  expect_config_error(t, "{operation: set, value: 1}", "config.path is required for set");
  expect_config_error(t, "{operation: set, path: a}", "config.value is required for set");
  expect_config_error(t, "{operation: set, path: 'a[*]', value: 1}", "config.path: set takes a path without [*]");
  expect_config_error(t, "{operation: set, path: a, value: '${ghost}'}", "config.value: unknown selector root 'ghost'");
  expect_config_error(t, "operation: delete", "config.path is required for delete");
  expect_config_error(t, "{operation: delete, path: $}", "config.path: delete needs a path below the root");
  expect_config_error(t, "{operation: delete, path: 'a..b'}", "config.path: invalid path 'a..b'");
  expect_config_error(t, "{operation: flatten, separator: ''}", "config.separator must not be empty");
}

// ---------- std::http ----------

// A loopback server for one connection: reads the request (until its headers and
// Content-Length are in, or until the client closes when it never answers), then
// sends `response` and closes.
struct canned_server {
  std::unique_ptr<io::tcp_listener> listener;
  std::string response;  // empty: never answer
  std::string request;   // what arrived
};

bool request_complete(const std::string& r) {
  size_t end = r.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  size_t cl = r.find("Content-Length: ");
  size_t body = cl == std::string::npos || cl > end ? 0 : std::stoul(r.substr(cl + 16));
  return r.size() >= end + 4 + body;
}

io::task<void> serve_once(canned_server* s) {
  auto c = co_await s->listener->accept();
  if (!c) co_return;
  for (;;) {
    auto b = co_await c->recv();
    if (!b || b->size() == 0) break;
    s->request.append(b->view());
    if (!s->response.empty() && request_complete(s->request)) break;
  }
  if (!s->response.empty()) {
    auto sent = co_await c->send_all(s->response);
    (void)sent;  // the client may have given up already
  }
  co_await c->close();
}

io::task<void> cancel_after(io::cancel_source* cs, std::chrono::milliseconds d) {
  auto r = co_await io::sleep_for(d);
  (void)r;  // no cancel source: it always completes
  cs->cancel();
}

enum class server_mode { answer, silent, refuse };

struct http_case {
  std::string config;  // "{port}" is replaced by the server's port
  std::string response;
  server_mode mode = server_mode::answer;
  int cancel_after_ms = 0;
  fake_trace trace;
  // Results.
  uint16_t port = 0;
  int out_port = -2;
  std::string output;  // the output JSON, or the failure message
  std::string code;    // the failure's code
  std::string request;
  std::vector<flows::flow_error> errors;
  std::chrono::milliseconds elapsed{};
};

std::string with_port(std::string text, uint16_t port) {
  for (size_t at; (at = text.find("{port}")) != std::string::npos;) text.replace(at, 6, std::to_string(port));
  return text;
}

io::task<int> run_http_case(http_case* hc) {
  auto l = io::tcp_listener::listen(*io::socket_address::parse("127.0.0.1", 0));
  if (!l) co_return 1;
  canned_server srv{std::move(*l), hc->mode == server_mode::silent ? "" : hc->response, {}};
  hc->port = srv.listener->port();
  if (hc->mode == server_mode::refuse) co_await srv.listener->close();
  auto c = compile_node("std::http", with_port(hc->config, hc->port), hc->trace);
  hc->errors = c.errors;
  if (!c.impl) {
    if (hc->mode != server_mode::refuse) co_await srv.listener->close();
    co_return 2;
  }
  EXPECT_TRUE(c.impl->is_async());
  xerv::testing::fake_env env(hc->trace);
  auto start = std::chrono::steady_clock::now();
  flows::node_result res;
  if (hc->mode == server_mode::refuse) {
    res = co_await c.impl->run_async(json("{}"), env);
  } else if (hc->cancel_after_ms > 0) {
    auto [r, a, b] = co_await io::when_all(c.impl->run_async(json("{}"), env), serve_once(&srv),
                                           cancel_after(&env.cancel_src, std::chrono::milliseconds(hc->cancel_after_ms)));
    res = std::move(r);
  } else {
    auto [r, a] = co_await io::when_all(c.impl->run_async(json("{}"), env), serve_once(&srv));
    res = std::move(r);
  }
  hc->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  if (hc->mode != server_mode::refuse) co_await srv.listener->close();
  hc->request = srv.request;
  if (auto* f = std::get_if<flows::node_failure>(&res)) {
    hc->out_port = -1;
    hc->output = f->message;
    hc->code = f->code;
  } else {
    auto& o = std::get<flows::node_output>(res);
    hc->out_port = o.port;
    hc->output = core::to_json(o.value.ref());
  }
  co_return 0;
}

void run_case(http_case& hc) { EXPECT_EQ(xerv::testing::run_on(1, run_http_case(&hc)), 0) << hc.output; }

TEST(http_node, posts_and_parses_a_json_response) {
  http_case hc;
  hc.trace.input = json(R"({"id":7})");
  hc.config = R"(
method: post
url: "http://127.0.0.1:{port}/orders/${input.id}?q=1#frag"
headers: {X-Trace: "${trace_id}", Accept: application/json}
body: "${input}"
)";
  std::string body = R"({"ok":true,"n":[1,2]})";
  hc.response = "HTTP/1.1 201 Created\r\nContent-Type: application/json; charset=utf-8\r\nX-Multi: a\r\n"
                "x-multi: b\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  run_case(hc);
  EXPECT_EQ(hc.out_port, 0);
  EXPECT_EQ(hc.output, R"({"status":201,"headers":{"content-type":"application/json; charset=utf-8",)"
                       R"("x-multi":"a, b","content-length":"21"},"body":{"ok":true,"n":[1,2]}})");
  EXPECT_EQ(hc.request, "POST /orders/7?q=1 HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(hc.port) +
                            "\r\nUser-Agent: xerv\r\nX-Trace: trace-1\r\nAccept: application/json\r\n"
                            "Content-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n\r\n"
                            R"({"id":7})");
}

TEST(http_node, get_with_a_text_body_and_configured_host) {
  http_case hc;
  hc.config = "{url: 'http://localhost:{port}', headers: {Host: api.internal, User-Agent: me}, body: 'a=${trace_id}'}";
  hc.response = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot here";  // ends at close
  run_case(hc);
  EXPECT_EQ(hc.output, R"({"status":404,"headers":{"content-type":"text/plain"},"body":"not here"})");
  EXPECT_EQ(hc.request, "GET / HTTP/1.1\r\nHost: api.internal\r\nUser-Agent: me\r\nContent-Length: 9\r\n"
                        "Connection: close\r\n\r\na=trace-1");
}

TEST(http_node, response_framings) {
  auto body_of = [](const std::string& config, const std::string& response) {
    http_case hc;
    hc.config = config;
    hc.response = response;
    run_case(hc);
    EXPECT_EQ(hc.out_port, 0) << hc.output;
    auto v = json(hc.output);
    auto b = v.ref().find("body");
    auto st = v.ref().find("status");
    return (st ? core::to_json(*st) : "?") + " " + (b ? core::to_json(*b) : "<none>");
  };
  std::string get = "url: 'http://127.0.0.1:{port}/x'";
  EXPECT_EQ(body_of(get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                         "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"),
            R"(200 {"a":1})");
  EXPECT_EQ(body_of(get, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nnot j"),
            R"(200 "not j")");
  EXPECT_EQ(body_of(get, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n"), R"(204 "")");
  EXPECT_EQ(body_of("{method: HEAD, url: 'http://127.0.0.1:{port}/'}",
                    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
            R"(200 "")");
}

TEST(http_node, malformed_truncated_and_oversized_responses_fail) {
  auto fails = [](const std::string& response) {
    http_case hc;
    hc.config = "url: 'http://127.0.0.1:{port}/'";
    hc.response = response;
    run_case(hc);
    EXPECT_EQ(hc.out_port, -1) << hc.output;
    EXPECT_EQ(hc.code, "http_error") << hc.output;
    return hc.output;
  };
  EXPECT_NE(fails("garbage\r\n\r\n").find("GET http://127.0.0.1:"), std::string::npos);
  EXPECT_NE(fails("garbage\r\n\r\n").find(": malformed response: HPE_"), std::string::npos);
  EXPECT_NE(fails("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .find("the connection closed before the response was complete"),
            std::string::npos);
  std::string big = "HTTP/1.1 200 OK\r\nContent-Length: 11000000\r\n\r\n" + std::string(11'000'000, 'x');
  EXPECT_NE(fails(big).find("response body over 10 MiB"), std::string::npos);
  std::string many = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_NE(fails(many + "\r\n").find("more than 100 response headers"), std::string::npos);
}

TEST(http_node, times_out_against_a_silent_server) {
  http_case hc;
  hc.config = "{url: 'http://127.0.0.1:{port}/slow', timeout_ms: 200}";
  hc.mode = server_mode::silent;
  run_case(hc);
  EXPECT_EQ(hc.out_port, -1);
  EXPECT_EQ(hc.output, "http: GET http://127.0.0.1:" + std::to_string(hc.port) + "/slow: timed out after 200 ms");
  EXPECT_EQ(hc.code, "node_timeout");
  EXPECT_GE(hc.elapsed.count(), 190);
  EXPECT_LT(hc.elapsed.count(), 5000);
  EXPECT_NE(hc.request.find("GET /slow HTTP/1.1\r\n"), std::string::npos);  // it did send
}

TEST(http_node, the_node_cancel_source_stops_the_request) {
  http_case hc;
  hc.config = "{url: 'http://127.0.0.1:{port}/', timeout_ms: 60000}";
  hc.mode = server_mode::silent;
  hc.cancel_after_ms = 50;
  run_case(hc);
  EXPECT_EQ(hc.out_port, -1);
  EXPECT_EQ(hc.output, "http: GET http://127.0.0.1:" + std::to_string(hc.port) + "/: cancelled (operation cancelled)");
  EXPECT_LT(hc.elapsed.count(), 5000);
}

TEST(http_node, refused_connection) {
  http_case hc;
  hc.config = "url: 'http://127.0.0.1:{port}/'";
  hc.mode = server_mode::refuse;
  run_case(hc);
  EXPECT_EQ(hc.out_port, -1);
  std::string addr = "127.0.0.1:" + std::to_string(hc.port);
  EXPECT_EQ(hc.output, "http: GET http://" + addr + "/: connect to " + addr + " failed: Connection refused");
  EXPECT_EQ(hc.code, "http_error");
}

TEST(http_node, rendered_urls_and_headers_are_checked_per_run) {
  http_case hc;
  hc.trace.input = json(R"({"host":"example.com","evil":"a\r\nX-Injected: 1"})");
  hc.config = "url: 'http://${input.host}/x'";
  hc.mode = server_mode::refuse;
  run_case(hc);
  EXPECT_EQ(hc.output, "http: GET http://example.com/x: the url's host 'example.com' must be a numeric IPv4 or IPv6 "
                       "address or localhost (no DNS lookups on a shard)");
  EXPECT_EQ(hc.code, "invalid_input");
  http_case h2;
  h2.trace = hc.trace;
  h2.config = "{url: 'http://127.0.0.1:{port}/', headers: {X-A: '${input.evil}'}}";
  h2.mode = server_mode::refuse;
  run_case(h2);
  EXPECT_EQ(h2.output, "http: GET http://127.0.0.1:" + std::to_string(h2.port) +
                           "/: header X-A: the rendered value contains a line break or NUL");
}

TEST(http_node, config_errors) {
  const char* t = "std::http";
  expect_config_error(t, "{}", "config.url is required");
  expect_config_error(t, "url: 'https://127.0.0.1/'", "config.url: https not supported yet");
  expect_config_error(t, "url: 'https://${input.host}/'", "config.url: https not supported yet");
  expect_config_error(t, "url: 'ftp://127.0.0.1/'", "config.url: the url must start with http://");
  expect_config_error(t, "url: 'http://example.com/'",
                      "config.url: the url's host 'example.com' must be a numeric IPv4 or IPv6 address or localhost");
  expect_config_error(t, "url: 'http://:80/'", "config.url: the url's host '' must be");
  expect_config_error(t, "url: 'http://127.0.0.1:99999/'", "config.url: the url's port must be a number between 1 and 65535");
  expect_config_error(t, "url: 'http://127.0.0.1:/'", "config.url: the url's port must be");
  expect_config_error(t, "url: 'http://u:p@127.0.0.1/'", "config.url: credentials in the url are not supported");
  expect_config_error(t, "url: 'http://[::1/'", "config.url: the url has an unterminated [IPv6] host");
  expect_config_error(t, "url: 'http://127.0.0.1/a b'", "config.url: the url contains a space or control character");
  expect_config_error(t, "url: 'http://${ghost.h}/'", "config.url: unknown selector root 'ghost'");
  expect_config_error(t, "{url: 'http://127.0.0.1/', method: FETCH}",
                      "config.method must be GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS");
  expect_config_error(t, "{url: 'http://127.0.0.1/', headers: [a]}", "config.headers must be a map");
  expect_config_error(t, "{url: 'http://127.0.0.1/', headers: {Content-Length: 5}}",
                      "config.headers.Content-Length is set by the node and cannot be configured");
  expect_config_error(t, "{url: 'http://127.0.0.1/', headers: {connection: keep-alive}}",
                      "config.headers.connection is set by the node");
  expect_config_error(t, "{url: 'http://127.0.0.1/', headers: {'bad name': x}}",
                      "config.headers.bad name: not a valid header name");
  expect_config_error(t, "{url: 'http://127.0.0.1/', headers: {X-A: [1]}}", "config.headers.X-A must be a string");
  expect_config_error(t, "{url: 'http://127.0.0.1/', headers: {X-A: '${ghost}'}}",
                      "config.headers.X-A: unknown selector root 'ghost'");
  expect_config_error(t, "{url: 'http://127.0.0.1/', body: {a: 1}}", "config.body must be a string");
  expect_config_error(t, "{url: 'http://127.0.0.1/', body: '${ghost}'}", "config.body: unknown selector root 'ghost'");
  expect_config_error(t, "{url: 'http://127.0.0.1/', timeout_ms: 0}",
                      "config.timeout_ms must be an integer between 1 and 3600000");
  // Accepted forms.
  compile_ok(t, "url: 'http://localhost/'");
  compile_ok(t, "url: 'HTTP://[::1]:8080/a?b=c'");
  compile_ok(t, "{url: 'http://10.0.0.1', method: delete, timeout_ms: 5}");
}

}  // namespace
