#pragma once
// The Raft group's operations (XERV_DISPATCH_BACKEND=raft): the REST routes
// `xerv cluster` calls, and the status object /health shows.
//
//   GET    /api/v1/cluster                 this node's view of the group
//   POST   /api/v1/cluster/members         {"id":4,"addr":"10.0.0.4:5000"}: joins as a learner
//   DELETE /api/v1/cluster/members/{id}    leaves the group
//   POST   /api/v1/cluster/leader          {"id":2}: hands leadership over
//
// Any node takes them (a follower hands the change to the leader).

#include <string>

#include "backends/raft/replica.h"
#include "http/router.h"

namespace xerv::app {

// `"raft":{...}`'s object.
std::string raft_status_json(const backends::raft::replica_status& s);

// `replica` lives on shard 0; the routes run on any shard and call it there.
void add_cluster_routes(http::router& r, backends::raft::replica* replica);

}  // namespace xerv::app
