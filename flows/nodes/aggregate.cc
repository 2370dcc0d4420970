// std::aggregate: reduces numbers found in the node's input and emits the input
// object plus `output_field` (default "result") on `out`.
//
//   operation: sum | average (avg) | min | max | count | product
//   source: $.items[*].price        (or a list of paths)
//
// Collected values: every value a path with [*] reaches; for a path without [*],
// the elements of the array it reaches, or the value itself when it is not an
// array; nothing for a missing path. count counts every collected value; the other
// operations use the numbers among them and ignore the rest. Over no numbers: sum 0,
// product 1, count 0, average/min/max null. sum and product stay integers while
// every operand is an integer and nothing overflows; average is always a real;
// min and max keep the winning value's type. A non-object input gives an object
// with just the output field.

#include "flows/nodes/all.h"
#include "flows/nodes/values.h"

namespace xerv::flows::nodes {
namespace {

enum class operation { sum, average, min, max, count, product };

struct accumulator {
  operation op;
  uint64_t count = 0;    // every value
  uint64_t numbers = 0;  // numeric values
  bool integral = true;  // the int accumulator is exact so far
  int64_t i = 0;
  double d = 0;
  core::value_ref best;  // min/max

  explicit accumulator(operation o) : op(o) {
    if (op == operation::product) {
      i = 1;
      d = 1;
    }
  }

  void add(core::value_ref v) {
    ++count;
    if (!v.is_number()) return;
    ++numbers;
    switch (op) {
      case operation::sum:
      case operation::average:
        d += v.as_double();
        if (integral && (v.type() != core::json_type::integer || __builtin_add_overflow(i, v.as_int(), &i)))
          integral = false;
        break;
      case operation::product:
        d *= v.as_double();
        if (integral && (v.type() != core::json_type::integer || __builtin_mul_overflow(i, v.as_int(), &i)))
          integral = false;
        break;
      case operation::min:
        if (numbers == 1 || compare_less(v, best)) best = v;
        break;
      case operation::max:
        if (numbers == 1 || compare_less(best, v)) best = v;
        break;
      case operation::count: break;
    }
  }

  static bool compare_less(core::value_ref a, core::value_ref b) {
    if (a.type() == core::json_type::integer && b.type() == core::json_type::integer) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }

  core::value result() const {
    core::value_builder b;
    switch (op) {
      case operation::count: b.add_int(int64_t(count)); break;
      case operation::sum:
      case operation::product:
        if (integral) b.add_int(i);
        else b.add_double(d);
        break;
      case operation::average:
        if (numbers == 0) b.add_null();
        else if (integral) b.add_double(double(i) / double(numbers));
        else b.add_double(d / double(numbers));
        break;
      case operation::min:
      case operation::max:
        if (numbers == 0) b.add_null();
        else b.add(best);
        break;
    }
    return b.finish();
  }
};

struct aggregate_impl : node_impl {
  operation op = operation::sum;
  std::vector<field_path> sources;
  std::string output_field = "result";

  node_result run(core::value_ref input, node_env&) const override {
    accumulator acc(op);
    std::vector<core::value_ref> found;
    for (const field_path& p : sources) {
      if (p.has_wildcard()) {
        p.collect(input, found);
        continue;
      }
      auto v = p.resolve(input);
      if (!v) continue;
      if (v->type() == core::json_type::array) {
        for (uint32_t k = 0; k < v->size(); ++k) found.push_back(v->at(k));
      } else {
        found.push_back(*v);
      }
    }
    for (core::value_ref v : found) acc.add(v);
    core::value r = acc.result();
    return emit(0, with_field(input, output_field, r.ref()));
  }
};

std::optional<field_path> source_path(node_compiler& c, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) {
    c.error(n, key + " must be a path, e.g. $.items[*].price");
    return std::nullopt;
  }
  std::string why;
  auto p = field_path::parse(n.Scalar(), &why);
  if (!p) c.error(n, key + ": " + why);
  return p;
}

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<aggregate_impl>();
  static const std::pair<std::string_view, operation> ops[] = {
      {"sum", operation::sum}, {"average", operation::average}, {"avg", operation::average},
      {"min", operation::min}, {"max", operation::max},         {"count", operation::count},
      {"product", operation::product},
  };
  if (auto op = c.string("operation", true)) {
    auto it = std::find_if(std::begin(ops), std::end(ops), [&](const auto& p) { return p.first == *op; });
    if (it == std::end(ops))
      c.error(c.config()["operation"],
              "config.operation '" + *op + "' is unknown (sum, average, avg, min, max, count, product)");
    else impl->op = it->second;
  }
  YAML::Node src = c.config()["source"];
  if (!src || src.IsNull() || (src.IsSequence() && src.size() == 0)) {
    c.error(src ? src : c.config(), "config.source is required: a path such as $.items[*].price, or a list of paths");
  } else if (src.IsSequence()) {
    for (size_t i = 0; i < src.size(); ++i)
      if (auto p = source_path(c, src[i], "config.source[" + std::to_string(i) + "]")) impl->sources.push_back(*p);
  } else if (auto p = source_path(c, src, "config.source")) {
    impl->sources.push_back(*p);
  }
  if (auto f = c.string("output_field", false, "result")) {
    if (f->empty()) c.error(c.config()["output_field"], "config.output_field must not be empty");
    else impl->output_field = *f;
  }
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type aggregate_node() { return {"std::aggregate", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
