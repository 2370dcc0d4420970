#pragma once
// The standard node library: one file per node type in this folder, each exposing
// a `node_type xxx_node()` listed in all.cc.

#include <vector>

#include "flows/node.h"

namespace xerv::flows::nodes {

std::vector<node_type> standard_node_types();

node_type log_node();
node_type merge_node();
node_type split_node();
node_type loop_node();
node_type delay_node();
node_type enqueue_node();
node_type switch_node();
node_type map_node();
node_type concat_node();
node_type aggregate_node();
node_type json_dynamic_node();
node_type http_node();
node_type wait_node();

}  // namespace xerv::flows::nodes
