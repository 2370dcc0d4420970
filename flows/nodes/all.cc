#include "flows/nodes/all.h"

namespace xerv::flows::nodes {

std::vector<node_type> standard_node_types() {
  return {
      log_node(),
      merge_node(),
      split_node(),
      loop_node(),
      delay_node(),
      switch_node(),
      map_node(),
      concat_node(),
      aggregate_node(),
      json_dynamic_node(),
      http_node(),
      wait_node(),
      enqueue_node(),
  };
}

}  // namespace xerv::flows::nodes
