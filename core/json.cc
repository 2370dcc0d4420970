#include "core/json.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "io/assert.h"
#include "io/strings.h"

namespace xerv::core {
namespace {
enum : uint8_t { t_null = 0, t_false, t_true, t_int, t_real, t_string, t_array, t_object };
}  // namespace

json_type value_ref::type() const {
  switch (tag()) {
    case t_null: return json_type::null;
    case t_false:
    case t_true: return json_type::boolean;
    case t_int: return json_type::integer;
    case t_real: return json_type::real;
    case t_string: return json_type::string;
    case t_array: return json_type::array;
    default: return json_type::object;
  }
}

int64_t value_ref::as_int() const {
  if (tag() == t_real) return static_cast<int64_t>(as_double());
  ASSERT(tag() == t_int, "as_int on tag %u", unsigned(tag()));
  int64_t v;
  std::memcpy(&v, _p + 1, 8);
  return v;
}

double value_ref::as_double() const {
  if (tag() == t_int) return static_cast<double>(as_int());
  ASSERT(tag() == t_real, "as_double on tag %u", unsigned(tag()));
  double v;
  std::memcpy(&v, _p + 1, 8);
  return v;
}

std::string_view value_ref::as_string() const {
  ASSERT(tag() == t_string, "as_string on tag %u", unsigned(tag()));
  return {_p + 5, u32_at(1)};
}

uint32_t value_ref::size() const {
  if (tag() != t_array && tag() != t_object) return 0;
  return u32_at(5);
}

const char* value_ref::entry(uint32_t i) const {
  ASSERT(i < size(), "index %u of %u", i, size());
  uint32_t total = u32_at(1);
  return _p + u32_at(total - 4 * (size() - i));
}

value_ref value_ref::at(uint32_t i) const {
  ASSERT(tag() == t_array);
  return value_ref(entry(i));
}

std::string_view value_ref::key_at(uint32_t i) const {
  ASSERT(tag() == t_object);
  const char* e = entry(i);
  uint32_t len;
  std::memcpy(&len, e, 4);
  return {e + 4, len};
}

value_ref value_ref::value_at(uint32_t i) const {
  ASSERT(tag() == t_object);
  const char* e = entry(i);
  uint32_t len;
  std::memcpy(&len, e, 4);
  return value_ref(e + 4 + len);
}

std::optional<value_ref> value_ref::find(std::string_view key) const {
  if (tag() != t_object) return std::nullopt;
  for (uint32_t i = 0, n = size(); i < n; ++i)
    if (key_at(i) == key) return value_at(i);
  return std::nullopt;
}

size_t value_ref::encoded_size() const {
  switch (tag()) {
    case t_null:
    case t_false:
    case t_true: return 1;
    case t_int:
    case t_real: return 9;
    case t_string: return 5 + size_t(u32_at(1));
    default: return u32_at(1);
  }
}

bool equal(value_ref a, value_ref b) {
  if (a.is_number() && b.is_number()) {
    if (a.type() == json_type::integer && b.type() == json_type::integer) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case json_type::null: return true;
    case json_type::boolean: return a.as_bool() == b.as_bool();
    case json_type::string: return a.as_string() == b.as_string();
    case json_type::array:
      if (a.size() != b.size()) return false;
      for (uint32_t i = 0; i < a.size(); ++i)
        if (!equal(a.at(i), b.at(i))) return false;
      return true;
    case json_type::object:
      if (a.size() != b.size()) return false;
      for (uint32_t i = 0; i < a.size(); ++i) {
        auto other = b.find(a.key_at(i));
        if (!other || !equal(a.value_at(i), *other)) return false;
      }
      return true;
    default: return false;
  }
}

value::value() : _bytes(1, char(t_null)) {}

// ---- builder ----

void value_builder::element_starts() {
  if (_open.empty()) {
    ASSERT(_out.empty(), "a builder makes one value");
    return;
  }
  frame& f = _open.back();
  bool in_object = static_cast<uint8_t>(_out[f.start]) == t_object;
  if (in_object) {
    ASSERT(_key_pending, "object value without key");
    _key_pending = false;
  } else {
    f.offsets.push_back(static_cast<uint32_t>(_out.size() - f.start));
  }
}

void value_builder::add_null() {
  element_starts();
  _out += char(t_null);
}
void value_builder::add_bool(bool b) {
  element_starts();
  _out += char(b ? t_true : t_false);
}
void value_builder::add_int(int64_t v) {
  element_starts();
  _out += char(t_int);
  _out.append(reinterpret_cast<const char*>(&v), 8);
}
void value_builder::add_double(double v) {
  element_starts();
  _out += char(t_real);
  _out.append(reinterpret_cast<const char*>(&v), 8);
}
void value_builder::add_string(std::string_view s) {
  element_starts();
  _out += char(t_string);
  put_u32(static_cast<uint32_t>(s.size()));
  _out.append(s);
}
void value_builder::add(value_ref v) {
  element_starts();
  _out.append(v.bytes());
}
void value_builder::begin_array() {
  element_starts();
  _open.push_back({_out.size(), {}});
  _out += char(t_array);
  _out.append(8, '\0');
}
void value_builder::begin_object() {
  element_starts();
  _open.push_back({_out.size(), {}});
  _out += char(t_object);
  _out.append(8, '\0');
}
void value_builder::key(std::string_view k) {
  ASSERT(!_open.empty() && static_cast<uint8_t>(_out[_open.back().start]) == t_object && !_key_pending);
  frame& f = _open.back();
  f.offsets.push_back(static_cast<uint32_t>(_out.size() - f.start));
  put_u32(static_cast<uint32_t>(k.size()));
  _out.append(k);
  _key_pending = true;
}
void value_builder::end() {
  ASSERT(!_open.empty() && !_key_pending, "end() without an open container");
  frame f = std::move(_open.back());
  _open.pop_back();
  for (uint32_t off : f.offsets) put_u32(off);
  auto total = static_cast<uint32_t>(_out.size() - f.start);
  auto count = static_cast<uint32_t>(f.offsets.size());
  std::memcpy(_out.data() + f.start + 1, &total, 4);
  std::memcpy(_out.data() + f.start + 5, &count, 4);
}
value value_builder::finish() {
  ASSERT(_open.empty() && !_out.empty(), "finish() with open containers or nothing built");
  return value(std::move(_out));
}

// ---- parsing ----

namespace {

using key_at = std::pair<std::string_view, size_t>;  // an object's key and its offset

struct parse_state {
  const char* base;
  json_limits limits;
  std::optional<json_error> error;
  // The keys of the objects being built, innermost last: one buffer per thread,
  // reused, so checking for repeated keys allocates nothing per object.
  std::vector<key_at>& keys;
};

const char* describe(simdjson::error_code e) { return simdjson::error_message(e); }

template <class V>
bool fail(parse_state& st, V& at, simdjson::error_code e) {
  if (!st.error) {
    auto loc = at.current_location();
    size_t off = loc.error() ? 0 : size_t(loc.value_unsafe() - st.base);
    st.error = json_error{off, describe(e)};
  }
  return false;
}

// Where a key repeats, as its byte offset, or nullopt. Duplicate keys are refused:
// readers disagree on which value wins (value_ref::find takes the first, most
// JavaScript and Rust readers the last), and equal() would not even find such an
// object equal to itself. Sorts `keys` (key, offset).
// object's keys are keys[from..]; small objects are compared pairwise, large ones
// sorted (O(n log n)).
std::optional<size_t> repeated_key(std::vector<key_at>& all, size_t from) {
  auto begin = all.begin() + ptrdiff_t(from), end = all.end();
  if (end - begin < 2) return std::nullopt;
  std::optional<size_t> first;  // the earliest repetition in the text
  if (end - begin <= 16) {
    for (auto i = begin + 1; i != end; ++i)
      for (auto j = begin; j != i; ++j)
        if (i->first == j->first && (!first || i->second < *first)) first = i->second;
    return first;
  }
  std::sort(begin, end);
  for (auto i = begin + 1; i != end; ++i)
    if (i->first == (i - 1)->first && (!first || i->second < *first)) first = i->second;
  return first;
}

bool too_deep(parse_state& st, simdjson::ondemand::value& v, size_t depth) {
  if (depth + 1 <= st.limits.depth_max) return false;
  st.error = json_error{size_t(v.current_location().value_unsafe() - st.base),
                        "nesting deeper than " + std::to_string(st.limits.depth_max)};
  return true;
}

bool build(parse_state& st, simdjson::ondemand::value v, value_builder& b, size_t depth) {
  using simdjson::ondemand::json_type;
  json_type t;
  if (auto e = v.type().get(t)) return fail(st, v, e);
  switch (t) {
    case json_type::null: {
      bool is_null = false;
      if (auto e = v.is_null().get(is_null); e || !is_null) return fail(st, v, e ? e : simdjson::N_ATOM_ERROR);
      b.add_null();
      return true;
    }
    case json_type::boolean: {
      bool x;
      if (auto e = v.get_bool().get(x)) return fail(st, v, e);
      b.add_bool(x);
      return true;
    }
    case json_type::number: {
      simdjson::ondemand::number n;
      if (auto e = v.get_number().get(n)) return fail(st, v, e);
      if (n.is_int64()) b.add_int(n.get_int64());
      else if (n.is_uint64()) b.add_double(double(n.get_uint64()));
      else b.add_double(n.get_double());
      return true;
    }
    case json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s)) return fail(st, v, e);
      b.add_string(s);
      return true;
    }
    case json_type::array: {
      if (too_deep(st, v, depth)) return false;
      simdjson::ondemand::array a;
      if (auto e = v.get_array().get(a)) return fail(st, v, e);
      b.begin_array();
      for (auto el : a) {
        simdjson::ondemand::value child;
        if (auto e = el.get(child)) return fail(st, v, e);
        if (!build(st, child, b, depth + 1)) return false;
      }
      b.end();
      return true;
    }
    case json_type::object: {
      if (too_deep(st, v, depth)) return false;
      simdjson::ondemand::object o;
      if (auto e = v.get_object().get(o)) return fail(st, v, e);
      b.begin_object();
      // Unescaped keys live in the parser's buffer until the next document.
      size_t keys_from = st.keys.size();
      for (auto item : o) {
        simdjson::ondemand::field field;
        if (auto e = std::move(item).get(field)) return fail(st, v, e);
        const char* quote = field.key().raw() - 1;  // key() before unescaped_key(), which consumes it
        std::string_view k;
        if (auto e = field.unescaped_key().get(k)) return fail(st, v, e);
        st.keys.emplace_back(k, size_t(quote - st.base));
        b.key(k);
        simdjson::ondemand::value child = field.value();
        if (!build(st, child, b, depth + 1)) return false;
      }
      auto repeated = repeated_key(st.keys, keys_from);
      st.keys.resize(keys_from);
      if (repeated) {
        st.error = json_error{*repeated, "duplicate key in an object"};
        return false;
      }
      b.end();
      return true;
    }
  }
  return fail(st, v, simdjson::INCORRECT_TYPE);
}

}  // namespace

std::variant<value, json_error> parse_json(std::string_view text, json_limits limits) {
  if (text.size() > limits.bytes_max)
    return json_error{limits.bytes_max, "document larger than " + std::to_string(limits.bytes_max) + " bytes"};
  thread_local simdjson::ondemand::parser parser;
  simdjson::padded_string padded(text);
  thread_local std::vector<key_at> keys;
  keys.clear();
  parse_state st{padded.data(), limits, std::nullopt, keys};
  simdjson::ondemand::document doc;
  if (auto e = parser.iterate(padded).get(doc)) return json_error{0, describe(e)};
  value_builder b;
  // Scalars at the top level are not `value`s in simdjson's on-demand API.
  simdjson::ondemand::json_type t;
  if (auto e = doc.type().get(t)) return json_error{0, describe(e)};
  bool ok = true;
  if (t == simdjson::ondemand::json_type::array || t == simdjson::ondemand::json_type::object) {
    simdjson::ondemand::value v;
    if (auto e = doc.get_value().get(v)) return json_error{0, describe(e)};
    ok = build(st, v, b, 0);
  } else {
    switch (t) {
      case simdjson::ondemand::json_type::null: {
        bool n = false;
        ok = !doc.is_null().get(n) && n;
        if (ok) b.add_null();
        break;
      }
      case simdjson::ondemand::json_type::boolean: {
        bool x;
        ok = !doc.get_bool().get(x);
        if (ok) b.add_bool(x);
        break;
      }
      case simdjson::ondemand::json_type::number: {
        simdjson::ondemand::number n;
        ok = !doc.get_number().get(n);
        if (ok) {
          if (n.is_int64()) b.add_int(n.get_int64());
          else if (n.is_uint64()) b.add_double(double(n.get_uint64()));
          else b.add_double(n.get_double());
        }
        break;
      }
      case simdjson::ondemand::json_type::string: {
        std::string_view s;
        ok = !doc.get_string().get(s);
        if (ok) b.add_string(s);
        break;
      }
      default: ok = false;
    }
    if (!ok && !st.error) st.error = json_error{0, "invalid JSON value"};
  }
  if (!ok) return *st.error;
  // current_location() fails with OUT_OF_BOUNDS exactly when the document is used up.
  if (auto loc = doc.current_location(); !loc.error())
    return json_error{size_t(loc.value_unsafe() - st.base), "unexpected content after the JSON value"};
  return b.finish();
}

// ---- writing ----

void write_json(std::string& out, value_ref v) {
  switch (v.type()) {
    case json_type::null: out += "null"; return;
    case json_type::boolean: out += v.as_bool() ? "true" : "false"; return;
    case json_type::integer: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.as_int());
      out.append(buf, r.ptr);
      return;
    }
    case json_type::real: {
      double d = v.as_double();
      if (!std::isfinite(d)) {
        out += "null";  // JSON has no NaN or infinity
        return;
      }
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip form
      // A form without '.' or 'e' reads back as an integer: fine while it is the
      // same number, but -0 would come back as 0, and past the 64-bit integers
      // (18446744073709551616, say) parse_json refuses the digits.
      if (std::find_if(buf, r.ptr, [](char c) { return c == '.' || c == 'e'; }) == r.ptr) {
        if (d == 0 && std::signbit(d)) {
          out += "-0.0";
          return;
        }
        if (d >= 0x1p64 || d < -0x1p63) r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
      }
      out.append(buf, r.ptr);
      return;
    }
    case json_type::string: io::append_json_string(out, v.as_string()); return;
    case json_type::array:
      out += '[';
      for (uint32_t i = 0, n = v.size(); i < n; ++i) {
        if (i) out += ',';
        write_json(out, v.at(i));
      }
      out += ']';
      return;
    case json_type::object:
      out += '{';
      for (uint32_t i = 0, n = v.size(); i < n; ++i) {
        if (i) out += ',';
        io::append_json_string(out, v.key_at(i));
        out += ':';
        write_json(out, v.value_at(i));
      }
      out += '}';
      return;
  }
}

std::string to_json(value_ref v) {
  std::string out;
  write_json(out, v);
  return out;
}

}  // namespace xerv::core
