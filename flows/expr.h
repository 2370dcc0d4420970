#pragma once
// The small expression language of std::switch `expression:` and std::loop
// `until_expression:`, compiled once at deploy and evaluated per trace.
//
//   ${fraud.score} > 0.8 && (${input.vip} == true || !${input.country})
//
// Operands: selectors `${root.path}` (a missing value is null), numbers, 'single'
// or "double" quoted strings (backslash escapes \\ \' \" \n \t), true, false, null.
// Operators, loosest first: `||`, `&&`, comparisons `== != < <= > >=` (left
// associative), `!`; parentheses group. Bare names are not operands: node input
// fields are read through selectors.
//
// Semantics: == and != are deep equality (core::equal, so 1 == 1.0); < <= > >=
// compare numbers numerically and strings by bytes, and are false for any other
// pair of types. && || ! work on truthiness: false, null, 0 and "" are false,
// everything else (including empty arrays and objects) is true. Every operator
// yields a boolean.

#include <yaml-cpp/yaml.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "flows/path.h"

namespace xerv::flows {

class node_compiler;

enum class compare_op : uint8_t { eq, ne, lt, le, gt, ge };

// The comparison rules above, shared with std::switch conditions.
bool compare_values(compare_op op, core::value_ref a, core::value_ref b);
// false, null, 0 and "" are false.
bool truthy(core::value_ref v);

// An immutable compiled expression: a flat tree, children before parents.
class expression {
 public:
  enum class kind : uint8_t { constant, select, negate, both, either, compare };
  struct term {
    kind k = kind::constant;
    compare_op op = compare_op::eq;
    uint32_t a = 0;  // constant/selector index, or left/only child
    uint32_t b = 0;  // right child
  };

  const std::string& text() const { return _text; }
  bool evaluate(const selector_source& src) const;

 private:
  friend class expression_parser;
  core::value_ref eval(uint32_t t, const selector_source& src, core::value& scratch) const;

  std::string _text;
  std::vector<term> _terms;  // the root is the last one
  std::vector<core::value> _constants;
  std::vector<selector> _selectors;
};

// Compiles `text`; on error returns null and sets `error` (e.g. "column 7: expected
// an operand after '&&'").
std::shared_ptr<const expression> parse_expression(std::string_view text, const node_lookup& nodes,
                                                   std::string* error);

// Compiles the scalar `at` (config.<key>) with the compiler's node names, reporting
// problems through it as "config.<key>: ...". Returns null on error.
std::shared_ptr<const expression> compile_expression(node_compiler& c, const YAML::Node& at, std::string_view key);

inline bool evaluate(const expression& e, const selector_source& src) { return e.evaluate(src); }

}  // namespace xerv::flows
