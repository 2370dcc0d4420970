#include "flows/expr.h"

#include <charconv>
#include <cmath>

#include "flows/node.h"
#include "io/assert.h"

namespace xerv::flows {

namespace {

// Encoded booleans and null, so operators return references without allocating.
constexpr char k_null[1] = {0};
constexpr char k_false[1] = {1};
constexpr char k_true[1] = {2};

core::value_ref boolean(bool b) { return core::value_ref(b ? k_true : k_false); }

constexpr size_t k_depth_max = 64;     // nesting of parentheses and `!`
constexpr size_t k_terms_max = 1024;  // bounds the evaluator's recursion too

}  // namespace

bool truthy(core::value_ref v) {
  switch (v.type()) {
    case core::json_type::null: return false;
    case core::json_type::boolean: return v.as_bool();
    case core::json_type::integer: return v.as_int() != 0;
    case core::json_type::real: return v.as_double() != 0;
    case core::json_type::string: return !v.as_string().empty();
    case core::json_type::array:
    case core::json_type::object: return true;
  }
  return false;
}

bool compare_values(compare_op op, core::value_ref a, core::value_ref b) {
  if (op == compare_op::eq) return core::equal(a, b);
  if (op == compare_op::ne) return !core::equal(a, b);
  int order = 0;  // <0, 0, >0
  if (a.type() == core::json_type::integer && b.type() == core::json_type::integer) {
    int64_t x = a.as_int(), y = b.as_int();
    order = x < y ? -1 : x > y ? 1 : 0;
  } else if (a.is_number() && b.is_number()) {
    double x = a.as_double(), y = b.as_double();
    order = x < y ? -1 : x > y ? 1 : 0;
  } else if (a.type() == core::json_type::string && b.type() == core::json_type::string) {
    order = a.as_string().compare(b.as_string());
  } else {
    return false;
  }
  switch (op) {
    case compare_op::lt: return order < 0;
    case compare_op::le: return order <= 0;
    case compare_op::gt: return order > 0;
    case compare_op::ge: return order >= 0;
    default: break;
  }
  return false;
}

// Recursive descent over the text: or := and ('||' and)*; and := cmp ('&&' cmp)*;
// cmp := unary (op unary)*; unary := '!' unary | primary.
class expression_parser {
 public:
  expression_parser(std::string_view text, const node_lookup& nodes) : _s(text), _nodes(nodes) {
    _e = std::make_shared<expression>();
    _e->_text = std::string(text);
  }

  std::shared_ptr<const expression> run(std::string* error) {
    skip_space();
    if (_pos == _s.size()) {
      fail("the expression is empty");
    } else if (parse_or(0)) {
      skip_space();
      if (_pos != _s.size() && _error.empty()) fail("unexpected '" + token_text() + "'");
    }
    if (!_error.empty()) {
      if (error) *error = _error;
      return nullptr;
    }
    ASSERT(!_e->_terms.empty());
    return _e;
  }

 private:
  using term = expression::term;
  using kind = expression::kind;

  bool fail(const std::string& why) {
    if (_error.empty()) _error = "column " + std::to_string(_pos + 1) + ": " + why;
    return false;
  }

  void skip_space() {
    while (_pos < _s.size() && (_s[_pos] == ' ' || _s[_pos] == '\t' || _s[_pos] == '\n' || _s[_pos] == '\r')) ++_pos;
  }

  bool eat(std::string_view tok) {
    skip_space();
    if (_s.substr(_pos).starts_with(tok)) {
      _pos += tok.size();
      return true;
    }
    return false;
  }

  // A short excerpt of what follows, for messages.
  std::string token_text() const {
    std::string_view rest = _s.substr(_pos);
    size_t n = 0;
    while (n < rest.size() && n < 12 && rest[n] != ' ') ++n;
    return std::string(rest.substr(0, n ? n : 1));
  }

  uint32_t add(term t) {
    if (_e->_terms.size() == k_terms_max) fail("the expression has more than " + std::to_string(k_terms_max) + " terms");
    _e->_terms.push_back(t);
    return uint32_t(_e->_terms.size() - 1);
  }

  // Each parse_* leaves the index of its term in _last.
  bool parse_or(size_t depth) {
    if (depth > k_depth_max) return fail("the expression nests deeper than " + std::to_string(k_depth_max) + " levels");
    if (!parse_and(depth)) return false;
    while (_error.empty() && eat("||")) {
      uint32_t left = _last;
      if (!parse_and(depth)) return false;
      _last = add({kind::either, compare_op::eq, left, _last});
    }
    return _error.empty();
  }

  bool parse_and(size_t depth) {
    if (!parse_compare(depth)) return false;
    while (_error.empty() && eat("&&")) {
      uint32_t left = _last;
      if (!parse_compare(depth)) return false;
      _last = add({kind::both, compare_op::eq, left, _last});
    }
    return _error.empty();
  }

  bool compare_operator(compare_op& op) {
    skip_space();
    static const std::pair<std::string_view, compare_op> ops[] = {
        {"==", compare_op::eq}, {"!=", compare_op::ne}, {"<=", compare_op::le},
        {">=", compare_op::ge}, {"<", compare_op::lt},  {">", compare_op::gt},
    };
    for (const auto& [tok, o] : ops) {
      if (_s.substr(_pos).starts_with(tok)) {
        _pos += tok.size();
        op = o;
        return true;
      }
    }
    if (_pos < _s.size() && _s[_pos] == '=') return fail("use == to compare, not =");
    return false;
  }

  bool parse_compare(size_t depth) {
    if (!parse_unary(depth)) return false;
    compare_op op{};
    while (_error.empty() && compare_operator(op)) {
      uint32_t left = _last;
      if (!parse_unary(depth)) return false;
      _last = add({kind::compare, op, left, _last});
    }
    return _error.empty();
  }

  bool parse_unary(size_t depth) {
    if (depth > k_depth_max) return fail("the expression nests deeper than " + std::to_string(k_depth_max) + " levels");
    skip_space();
    if (_pos < _s.size() && _s[_pos] == '!' && !_s.substr(_pos).starts_with("!=")) {
      ++_pos;
      if (!parse_unary(depth + 1)) return false;
      _last = add({kind::negate, compare_op::eq, _last, 0});
      return _error.empty();
    }
    return parse_primary(depth);
  }

  bool parse_primary(size_t depth) {
    skip_space();
    if (_pos == _s.size()) return fail("expected a value (a selector, number, string, true, false or null)");
    char ch = _s[_pos];
    if (ch == '(') {
      ++_pos;
      if (!parse_or(depth + 1)) return false;
      if (!eat(")")) return fail("expected ')'");
      return true;
    }
    if (ch == '$' && _s.substr(_pos).starts_with("${")) return parse_selector();
    if (ch == '\'' || ch == '"') return parse_string(ch);
    if (ch == '-' || (ch >= '0' && ch <= '9')) return parse_number();
    for (std::string_view word : {"true", "false", "null"}) {
      if (_s.substr(_pos).starts_with(word) && !is_name_char(_pos + word.size())) {
        _pos += word.size();
        core::value_builder b;
        if (word == "null") b.add_null();
        else b.add_bool(word == "true");
        return constant(b.finish());
      }
    }
    if (is_name_char(_pos))
      return fail("unexpected '" + token_text() + "': fields are read with selectors, e.g. ${input.amount}");
    return fail("expected a value (a selector, number, string, true, false or null), found '" + token_text() + "'");
  }

  bool is_name_char(size_t at) const {
    if (at >= _s.size()) return false;
    char c = _s[at];
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }

  bool constant(core::value v) {
    _e->_constants.push_back(std::move(v));
    _last = add({kind::constant, compare_op::eq, uint32_t(_e->_constants.size() - 1), 0});
    return _error.empty();
  }

  bool parse_selector() {
    size_t close = _s.find('}', _pos);
    if (close == std::string_view::npos) return fail("unterminated selector");
    std::string why;
    auto t = template_string::compile(_s.substr(_pos, close + 1 - _pos), _nodes, &why);
    if (!t) return fail(why);
    ASSERT(t->is_single_selector());
    _e->_selectors.push_back(t->selectors()[0]);
    _pos = close + 1;
    _last = add({kind::select, compare_op::eq, uint32_t(_e->_selectors.size() - 1), 0});
    return _error.empty();
  }

  bool parse_string(char quote) {
    size_t start = _pos++;
    std::string out;
    while (_pos < _s.size() && _s[_pos] != quote) {
      char c = _s[_pos++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (_pos == _s.size()) break;
      char e = _s[_pos++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case '\\':
        case '\'':
        case '"': out += e; break;
        default: --_pos; return fail("unknown escape \\" + std::string(1, e) + " in a string");
      }
    }
    if (_pos == _s.size()) {
      _pos = start;
      return fail("unterminated string");
    }
    ++_pos;  // the closing quote
    core::value_builder b;
    b.add_string(out);
    return constant(b.finish());
  }

  bool parse_number() {
    size_t start = _pos;
    if (_s[_pos] == '-') ++_pos;
    size_t digits = _pos;
    bool real = false;
    while (_pos < _s.size()) {
      char c = _s[_pos];
      if (c >= '0' && c <= '9') {
        ++_pos;
      } else if (c == '.' || c == 'e' || c == 'E' ||
                 ((c == '+' || c == '-') && (_s[_pos - 1] == 'e' || _s[_pos - 1] == 'E'))) {
        real = true;
        ++_pos;
      } else {
        break;
      }
    }
    std::string_view text = _s.substr(start, _pos - start);
    if (_pos == digits || is_name_char(_pos)) {
      _pos = start;
      return fail("malformed number '" + token_text() + "'");
    }
    core::value_builder b;
    int64_t i = 0;
    double d = 0;
    if (!real && std::from_chars(text.data(), text.data() + text.size(), i).ec == std::errc()) {
      b.add_int(i);
    } else if (auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
               ec == std::errc() && p == text.data() + text.size() && std::isfinite(d)) {
      b.add_double(d);
    } else {
      _pos = start;
      return fail("malformed number '" + std::string(text) + "'");
    }
    return constant(b.finish());
  }

  std::string_view _s;
  const node_lookup& _nodes;
  size_t _pos = 0;
  uint32_t _last = 0;
  std::string _error;
  std::shared_ptr<expression> _e;
};

core::value_ref expression::eval(uint32_t i, const selector_source& src, core::value& scratch) const {
  const term& t = _terms[i];
  switch (t.k) {
    case kind::constant: return _constants[t.a].ref();
    case kind::select: {
      auto v = template_string::select(_selectors[t.a], src, scratch);
      return v ? *v : core::value_ref(k_null);
    }
    case kind::negate: {
      core::value s;
      return boolean(!truthy(eval(t.a, src, s)));
    }
    case kind::both: {
      core::value s;
      if (!truthy(eval(t.a, src, s))) return boolean(false);
      return boolean(truthy(eval(t.b, src, s)));
    }
    case kind::either: {
      core::value s;
      if (truthy(eval(t.a, src, s))) return boolean(true);
      return boolean(truthy(eval(t.b, src, s)));
    }
    case kind::compare: {
      core::value l, r;
      core::value_ref a = eval(t.a, src, l);
      core::value_ref b = eval(t.b, src, r);
      return boolean(compare_values(t.op, a, b));
    }
  }
  return core::value_ref(k_null);
}

bool expression::evaluate(const selector_source& src) const {
  ASSERT(!_terms.empty());
  core::value scratch;
  return truthy(eval(uint32_t(_terms.size() - 1), src, scratch));
}

std::shared_ptr<const expression> parse_expression(std::string_view text, const node_lookup& nodes,
                                                   std::string* error) {
  return expression_parser(text, nodes).run(error);
}

std::shared_ptr<const expression> compile_expression(node_compiler& c, const YAML::Node& at, std::string_view key) {
  std::string prefix = "config." + std::string(key);
  if (!at || !at.IsScalar()) {
    c.error(at, prefix + " must be a string expression, e.g. \"${input.amount} > 100\"");
    return nullptr;
  }
  std::string why;
  auto e = parse_expression(at.Scalar(), c.lookup(), &why);
  if (!e) c.error(at, prefix + ": " + why);
  return e;
}

}  // namespace xerv::flows
