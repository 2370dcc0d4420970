// libFuzzer target: JSON payloads (core::parse_json, what every request body,
// webhook payload and trace input goes through) and the writer behind responses.
//
// The whole input is the JSON text; the limits are the defaults.
//
// Invariants (a broken one traps), on every input:
//   a failure has an offset <= the input's size and a non-empty message;
//   a success is a well-formed encoding: every container's size, offsets and
//   `total` stay inside the value, nesting is at most depth_max, and every
//   accessor agrees with the bytes;
//   write_json of it parses again, to an equal value, whose JSON text is
//   byte-identical to the first (the writer's output is a fixed point).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <variant>

#include "core/json.h"
#include "tests/fuzz/check.h"

namespace {

using namespace xerv;

// Walks an encoded value that must lie in [v, end): checks the layout json.h
// describes and returns its encoded size.
size_t check_encoding(core::value_ref v, const char* begin, const char* end, size_t depth, size_t depth_max) {
  const char* p = v.bytes().data();
  CHECK(p >= begin && p < end);
  const size_t room = size_t(end - p);
  const uint8_t tag = uint8_t(p[0]);
  CHECK(tag <= 7);
  const size_t n = v.encoded_size();
  CHECK(n >= 1 && n <= room);
  switch (v.type()) {
    case core::json_type::null:
    case core::json_type::boolean: CHECK(n == 1); break;
    case core::json_type::integer:
    case core::json_type::real:
      CHECK(n == 9);
      CHECK(v.as_double() == v.as_double());  // JSON has no NaN
      break;
    case core::json_type::string: CHECK(n == 5 + v.as_string().size()); break;
    case core::json_type::array:
    case core::json_type::object: {
      CHECK(depth < depth_max);
      const uint32_t count = v.size();
      CHECK(n >= 9 + 4 * size_t(count));
      const char* inner_end = p + n - 4 * size_t(count);  // the offset table follows the elements
      const char* next = p + 9;                            // elements follow each other
      const bool object = v.type() == core::json_type::object;
      for (uint32_t i = 0; i < count; ++i) {
        core::value_ref child;
        if (object) {
          std::string_view key = v.key_at(i);
          CHECK(key.data() == next + 4);
          CHECK(key.data() + key.size() <= inner_end);
          child = v.value_at(i);
          CHECK(child.bytes().data() == key.data() + key.size());
          auto found = v.find(key);
          CHECK(found.has_value());  // (the first value of that key)
        } else {
          child = v.at(i);
          CHECK(child.bytes().data() == next);
        }
        next = child.bytes().data() + check_encoding(child, p, inner_end, depth + 1, depth_max);
      }
      CHECK(next == inner_end);
      break;
    }
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const core::json_limits limits;
  auto parsed = core::parse_json(text, limits);
  if (auto* err = std::get_if<core::json_error>(&parsed)) {
    CHECK(err->offset <= size);
    CHECK(!err->message.empty());
    return 0;
  }
  const core::value& v = std::get<core::value>(parsed);
  const std::string& bytes = v.bytes();
  CHECK(check_encoding(v.ref(), bytes.data(), bytes.data() + bytes.size(), 0, limits.depth_max) == bytes.size());
  CHECK(core::equal(v.ref(), v.ref()));

  std::string first = core::to_json(v.ref());
  auto reparsed = core::parse_json(first, limits);
  auto* w = std::get_if<core::value>(&reparsed);
  if (!w) {
    const auto& e = std::get<core::json_error>(reparsed);
    fprintf(stderr, "write_json output does not parse: %s at %zu in %s\n", e.message.c_str(), e.offset, first.c_str());
  }
  CHECK(w != nullptr);
  CHECK(core::equal(v.ref(), w->ref()));
  CHECK(core::equal(w->ref(), v.ref()));
  std::string second = core::to_json(w->ref());
  if (second != first) fprintf(stderr, "first:  %s\nsecond: %s\n", first.c_str(), second.c_str());
  CHECK(second == first);
  return 0;
}
