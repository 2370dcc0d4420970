#pragma once
// A pipeline change for the store tests of every backend.

#include <string>

#include "core/dispatch.h"

namespace xerv::testing {

inline core::pipeline_change make_change(core::pipeline_change::kind k, std::string name, std::string source = "",
                                         core::pipeline_state s = core::pipeline_state::running) {
  core::pipeline_change c;
  c.what = k;
  c.name = std::move(name);
  c.source = std::move(source);
  c.state = s;
  return c;
}

}  // namespace xerv::testing
