#pragma once
// JSON values in a compact binary encoding: parsed once (simdjson on-demand), then
// read in place by offset — no pointers inside, so an encoded value can be copied
// into the arena or the WAL as plain bytes — and written back as JSON text.
//
// Encoding (little-endian, unaligned):
//   null 0 | false 1 | true 2 | int 3 i64 | real 4 f64 | string 5 u32 len, bytes
//   array  6 u32 total, u32 count, elements..., u32 offset[count]
//   object 7 u32 total, u32 count, (u32 keylen, key, value)..., u32 offset[count]
// `total` is the whole encoded size of the container; offsets are from its first
// byte. Objects keep insertion order; lookup is a scan (objects are small).

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace xerv::core {

enum class json_type : uint8_t { null = 0, boolean, integer, real, string, array, object };

class value_ref {
 public:
  value_ref() = default;
  explicit value_ref(const char* p) : _p(p) {}

  json_type type() const;
  bool is_null() const { return type() == json_type::null; }
  bool is_number() const { return type() == json_type::integer || type() == json_type::real; }
  bool as_bool() const { return tag() == 2; }
  int64_t as_int() const;
  double as_double() const;  // integers convert
  std::string_view as_string() const;

  // Arrays and objects.
  uint32_t size() const;
  value_ref at(uint32_t i) const;
  std::string_view key_at(uint32_t i) const;
  value_ref value_at(uint32_t i) const;
  std::optional<value_ref> find(std::string_view key) const;

  size_t encoded_size() const;
  std::string_view bytes() const { return {_p, encoded_size()}; }
  bool valid() const { return _p != nullptr; }

 private:
  uint8_t tag() const { return static_cast<uint8_t>(_p[0]); }
  uint32_t u32_at(size_t off) const {
    uint32_t v;
    std::memcpy(&v, _p + off, 4);
    return v;
  }
  const char* entry(uint32_t i) const;
  const char* _p = nullptr;
};

// Deep equality (objects compare keys in order-independent fashion; 1 == 1.0).
bool equal(value_ref a, value_ref b);

// An owned encoded value.
class value {
 public:
  value();  // null
  explicit value(std::string bytes) : _bytes(std::move(bytes)) {}
  value_ref ref() const { return value_ref(_bytes.data()); }
  const std::string& bytes() const { return _bytes; }

 private:
  std::string _bytes;
};

// Builds one value; containers nest with begin_*/end.
class value_builder {
 public:
  void add_null();
  void add_bool(bool b);
  void add_int(int64_t v);
  void add_double(double v);
  void add_string(std::string_view s);
  void add(value_ref v);  // copies an encoded value
  void begin_array();
  void begin_object();
  void key(std::string_view k);  // inside an object, before each value
  void end();
  size_t depth() const { return _open.size(); }
  value finish();

 private:
  struct frame {
    size_t start;
    std::vector<uint32_t> offsets;
  };
  void element_starts();
  void put_u32(uint32_t v) { _out.append(reinterpret_cast<const char*>(&v), 4); }
  std::string _out;
  std::vector<frame> _open;
  bool _key_pending = false;
};

struct json_limits {
  size_t depth_max = 64;
  size_t bytes_max = 16u << 20;
};

struct json_error {
  size_t offset;  // 0-based byte offset of the problem in the input
  std::string message;
};

// Parses exactly one JSON document (whitespace around it allowed).
std::variant<value, json_error> parse_json(std::string_view text, json_limits limits = {});

// Appends v as compact JSON text.
void write_json(std::string& out, value_ref v);
std::string to_json(value_ref v);

}  // namespace xerv::core
