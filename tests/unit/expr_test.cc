// flows/expr: the expression language of std::switch and std::loop.

#include "flows/expr.h"

#include <gtest/gtest.h>

#include "flows/nodes/structural.h"
#include "tests/flows_fakes.h"

using namespace xerv;
using xerv::testing::fake_trace;
using xerv::testing::json;

namespace {

bool eval(std::string_view text, const fake_trace& t) {
  std::string why;
  auto e = flows::parse_expression(text, t.lookup(), &why);
  if (!e) {
    ADD_FAILURE() << "did not compile: " << text << ": " << why;
    return false;
  }
  return e->evaluate(t);
}

std::string compile_error(std::string_view text) {
  fake_trace t;
  std::string why;
  auto e = flows::parse_expression(text, t.lookup(), &why);
  EXPECT_EQ(e, nullptr) << text;
  return why;
}

fake_trace sample() {
  fake_trace t;
  t.input = json(R"({"vip":true,"country":"de","amount":120,"zero":0,"empty":"","items":[1,2]})");
  t.set("fraud", R"({"score":0.93,"label":"high","tags":["a"],"obj":{}})");
  t.config = json(R"({"limit":100})");
  return t;
}

TEST(expr, literals_and_truthiness) {
  fake_trace t;
  EXPECT_TRUE(eval("true", t));
  EXPECT_FALSE(eval("false", t));
  EXPECT_FALSE(eval("null", t));
  EXPECT_FALSE(eval("0", t));
  EXPECT_FALSE(eval("0.0", t));
  EXPECT_TRUE(eval("-1", t));
  EXPECT_TRUE(eval("2.5e3", t));
  EXPECT_FALSE(eval("''", t));
  EXPECT_FALSE(eval("\"\"", t));
  EXPECT_TRUE(eval("'x'", t));
  EXPECT_TRUE(eval("!false", t));
  EXPECT_TRUE(eval("!!1", t));
}

TEST(expr, selectors_read_nodes_input_and_config) {
  fake_trace t = sample();
  EXPECT_TRUE(eval("${fraud.score} > 0.8 && ${input.vip} == true", t));
  EXPECT_TRUE(eval("${fraud.score} > 0.8", t));
  EXPECT_FALSE(eval("${fraud.score} > 0.95", t));
  EXPECT_TRUE(eval("${input.amount} > ${pipeline.config.limit}", t));
  EXPECT_TRUE(eval("${input.country} == 'de'", t));
  EXPECT_TRUE(eval("${input.country} != \"fr\"", t));
  EXPECT_TRUE(eval("${trace_id} == 'trace-1'", t));
  EXPECT_TRUE(eval("${input.items[1]} == 2", t));
  EXPECT_TRUE(eval("${input.items} == ${input.items}", t));
  // Truthiness of selected values: empty arrays and objects are true.
  EXPECT_TRUE(eval("${fraud.obj}", t));
  EXPECT_FALSE(eval("${input.zero}", t));
  EXPECT_FALSE(eval("${input.empty}", t));
  EXPECT_TRUE(eval("${fraud.tags}", t));
}

TEST(expr, missing_values_are_null) {
  fake_trace t = sample();
  EXPECT_TRUE(eval("${input.nope} == null", t));
  EXPECT_TRUE(eval("${a.score} == null", t));  // node a has no output (skipped)
  EXPECT_TRUE(eval("!${input.nope.deeper}", t));
  EXPECT_FALSE(eval("${input.nope} > 1", t));
  EXPECT_FALSE(eval("${input.nope} < 1", t));
}

TEST(expr, comparisons) {
  fake_trace t;
  EXPECT_TRUE(eval("1 == 1.0", t));
  EXPECT_TRUE(eval("2 > 1.5", t));
  EXPECT_TRUE(eval("1.5 < 2", t));
  EXPECT_TRUE(eval("2 >= 2", t));
  EXPECT_TRUE(eval("2 <= 2.0", t));
  EXPECT_TRUE(eval("9007199254740993 > 9007199254740992", t));  // exact for integers
  EXPECT_TRUE(eval("'abc' < 'abd'", t));
  EXPECT_TRUE(eval("'b' > 'abc'", t));
  EXPECT_FALSE(eval("'a' == 1", t));
  EXPECT_TRUE(eval("'a' != 1", t));
  // Ordering across types is false in both directions.
  EXPECT_FALSE(eval("'2' > 1", t));
  EXPECT_FALSE(eval("'2' <= 1", t));
  EXPECT_FALSE(eval("null >= null", t));
  EXPECT_FALSE(eval("true > false", t));
  EXPECT_TRUE(eval("null == null", t));
  EXPECT_TRUE(eval("'it\\'s' == \"it's\"", t));
}

TEST(expr, precedence_and_parentheses) {
  fake_trace t;
  EXPECT_TRUE(eval("true || false && false", t));    // && binds tighter than ||
  EXPECT_FALSE(eval("(true || false) && false", t));
  EXPECT_TRUE(eval("!false && true", t));             // ! binds tighter than &&
  EXPECT_FALSE(eval("!(true && true)", t));
  EXPECT_TRUE(eval("1 < 2 && 3 > 2", t));              // comparison tighter than &&
  EXPECT_TRUE(eval("1 == 2 || 2 == 2", t));
  EXPECT_TRUE(eval("!1 == false", t));                 // (!1) == false
  EXPECT_TRUE(eval("((((1))))", t));
  EXPECT_TRUE(eval("  1\t<\n2  ", t));
}

TEST(expr, every_operator_yields_a_boolean) {
  fake_trace t = sample();
  // `||` does not return its operand: ("x" || 1) == true.
  EXPECT_TRUE(eval("('x' || 1) == true", t));
  EXPECT_TRUE(eval("(0 && 1) == false", t));
  EXPECT_TRUE(eval("(1 < 2) == true", t));
}

TEST(expr, compile_errors_name_the_column) {
  EXPECT_EQ(compile_error(""), "column 1: the expression is empty");
  EXPECT_EQ(compile_error("   "), "column 4: the expression is empty");
  EXPECT_EQ(compile_error("1 &&"), "column 5: expected a value (a selector, number, string, true, false or null)");
  EXPECT_EQ(compile_error("(1 == 1"), "column 8: expected ')'");
  EXPECT_EQ(compile_error("1 == 1)"), "column 7: unexpected ')'");
  EXPECT_EQ(compile_error("amount > 1"),
            "column 1: unexpected 'amount': fields are read with selectors, e.g. ${input.amount}");
  EXPECT_EQ(compile_error("${input.a} = 1"), "column 12: use == to compare, not =");
  EXPECT_EQ(compile_error("'abc"), "column 1: unterminated string");
  EXPECT_EQ(compile_error("'a\\q'"), "column 4: unknown escape \\q in a string");
  EXPECT_EQ(compile_error("${nobody.x} > 1"), "column 1: unknown selector root 'nobody' in ${nobody.x}");
  EXPECT_EQ(compile_error("${input.x"), "column 1: unterminated selector");
  EXPECT_EQ(compile_error("${input.a[x]} > 1"), "column 1: invalid path 'a[x]': index must be a number or *");
  EXPECT_EQ(compile_error("1.2.3 > 1"), "column 1: malformed number '1.2.3'");
  EXPECT_EQ(compile_error("12abc"), "column 1: malformed number '12abc'");
  EXPECT_EQ(compile_error("- 1"), "column 1: malformed number '-'");
  EXPECT_EQ(compile_error("1 2"), "column 3: unexpected '2'");
  EXPECT_EQ(compile_error("1 + 2"), "column 3: unexpected '+'");
  EXPECT_EQ(compile_error("truex"), "column 1: unexpected 'truex': fields are read with selectors, e.g. ${input.amount}");
  EXPECT_EQ(compile_error("!= 1"), "column 1: expected a value (a selector, number, string, true, false or null), found '!='");
}

TEST(expr, deep_nesting_is_refused_not_a_stack_overflow) {
  std::string deep(10'000, '(');
  deep += "1";
  deep += std::string(10'000, ')');
  EXPECT_NE(compile_error(deep).find("nests deeper than 64 levels"), std::string::npos);
  std::string bangs(10'000, '!');
  bangs += "1";
  EXPECT_NE(compile_error(bangs).find("nests deeper than 64 levels"), std::string::npos);
  // 60 levels are fine.
  fake_trace t;
  EXPECT_TRUE(eval(std::string(60, '(') + "1" + std::string(60, ')'), t));
}

TEST(expr, long_flat_chains_evaluate) {
  fake_trace t = sample();
  std::string text = "${input.vip}";
  for (int i = 0; i < 200; ++i) text += " && ${input.amount} > " + std::to_string(i % 100);
  EXPECT_TRUE(eval(text, t));
  // The term count is bounded, which also bounds the evaluator's recursion.
  for (int i = 0; i < 100; ++i) text += " && ${input.amount} > " + std::to_string(i % 100);
  EXPECT_NE(compile_error(text).find("the expression has more than 1024 terms"), std::string::npos);
}

TEST(expr, compile_expression_reports_through_the_node_compiler) {
  fake_trace t;
  std::vector<flows::flow_error> errors;
  YAML::Node cfg = YAML::Load("until_expression: \"${input.n} >\"\n");
  flows::node_compiler c(cfg, cfg, "loop1", t.lookup(), errors);
  EXPECT_EQ(flows::compile_expression(c, cfg["until_expression"], "until_expression"), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message,
            "node 'loop1': config.until_expression: column 13: expected a value (a selector, number, string, true, "
            "false or null)");
  EXPECT_EQ(errors[0].line, 1);
  errors.clear();
  YAML::Node list = YAML::Load("expression: [1, 2]\n");
  flows::node_compiler c2(list, list, "sw", t.lookup(), errors);
  EXPECT_EQ(flows::compile_expression(c2, list["expression"], "expression"), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message,
            "node 'sw': config.expression must be a string expression, e.g. \"${input.amount} > 100\"");
}

TEST(expr, loop_until_expression_compiles_and_evaluates) {
  fake_trace t;
  auto impl = xerv::testing::compile_node("std::loop", "{max_iterations: 5, until_expression: '${x.n} >= 3'}", t);
  ASSERT_TRUE(impl.errors.empty()) << impl.error_text();
  auto* loop = dynamic_cast<const flows::nodes::loop_impl*>(impl.impl.get());
  ASSERT_NE(loop, nullptr);
  ASSERT_NE(loop->until_expression, nullptr);
  EXPECT_EQ(loop->max_iterations, 5u);
  t.set("x", R"({"n":2})");
  EXPECT_FALSE(flows::evaluate(*loop->until_expression, t));
  t.set("x", R"({"n":3})");
  EXPECT_TRUE(flows::evaluate(*loop->until_expression, t));
  auto bad = xerv::testing::compile_node("std::loop", "until_expression: '${x.n} >= '");
  EXPECT_EQ(bad.impl, nullptr);
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_EQ(bad.errors[0].message,
            "node 'n': config.until_expression: column 11: expected a value (a selector, number, string, true, false "
            "or null)");
}

}  // namespace
