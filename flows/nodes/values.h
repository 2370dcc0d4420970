#pragma once
// Small value helpers shared by the data nodes (map, concat, aggregate,
// json_dynamic, switch).

#include <optional>
#include <string_view>

#include "core/json.h"
#include "flows/path.h"

namespace xerv::flows::nodes {

// The value at `p` in `root`: a reference for plain paths (nullopt when missing),
// and for paths with [*] an array of every value reached (built in `scratch`,
// possibly empty).
std::optional<core::value_ref> read_path(const field_path& p, core::value_ref root, core::value& scratch);

// `input`'s fields except `key`, in order, then `key: v`. A non-object input gives
// an object holding just `key`.
core::value with_field(core::value_ref input, std::string_view key, core::value_ref v);

}  // namespace xerv::flows::nodes
