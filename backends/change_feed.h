#pragma once
// The watches of a pipeline_store (core/dispatch.h): the store pushes every
// change it makes or learns of, in seq order, and each live watch hands them
// out in turn. A watch that outlives its feed ends: next() gives nullopt.
// One per store, on the store's shard.

#include <deque>
#include <memory>
#include <vector>

#include "core/dispatch.h"
#include "io/event.h"

namespace xerv::backends {

class change_feed {
 public:
  change_feed() = default;
  ~change_feed();
  change_feed(const change_feed&) = delete;
  change_feed& operator=(const change_feed&) = delete;

  // Sees the changes pushed from now on.
  std::unique_ptr<core::pipeline_watch> watch();
  void push(const core::pipeline_change& c);

 private:
  class watch_impl;
  std::vector<watch_impl*> _watches;
};

}  // namespace xerv::backends
