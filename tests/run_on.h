#pragma once
// Test helper: runs one coroutine on shard 0 of a fresh runtime and returns its value.

#include "io/runtime.h"

namespace xerv::testing {

inline int run_on(unsigned shards, io::task<int> main, io::runtime_options opts = {}) {
  opts.shards = shards;
  io::runtime rt(opts);
  return rt.run(std::move(main));
}

}  // namespace xerv::testing
