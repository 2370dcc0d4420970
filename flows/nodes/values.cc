#include "flows/nodes/values.h"

#include <vector>

namespace xerv::flows::nodes {

std::optional<core::value_ref> read_path(const field_path& p, core::value_ref root, core::value& scratch) {
  if (!p.has_wildcard()) return p.resolve(root);
  std::vector<core::value_ref> all;
  p.collect(root, all);
  core::value_builder b;
  b.begin_array();
  for (core::value_ref v : all) b.add(v);
  b.end();
  scratch = b.finish();
  return scratch.ref();
}

core::value with_field(core::value_ref input, std::string_view key, core::value_ref v) {
  core::value_builder b;
  b.begin_object();
  if (input.type() == core::json_type::object) {
    for (uint32_t i = 0; i < input.size(); ++i) {
      if (input.key_at(i) == key) continue;
      b.key(input.key_at(i));
      b.add(input.value_at(i));
    }
  }
  b.key(key);
  b.add(v);
  b.end();
  return b.finish();
}

}  // namespace xerv::flows::nodes
