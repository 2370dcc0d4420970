#pragma once
// The commands besides `serve`: validate, deploy, list (talking to a running
// server over HTTP) and bench (running a flow in-process on every shard).

#include <string>
#include <vector>

namespace xerv::app {

int cmd_validate(const std::vector<std::string>& args);
int cmd_deploy(const std::vector<std::string>& args);
int cmd_list(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
// xerv cluster status|add ID ADDR|remove ID|transfer ID: the Raft group through any node's API.
int cmd_cluster(const std::vector<std::string>& args);
// Prints a trace's durable history (or every trace's, one JSON object per line,
// with --all) from the WAL files under --data-dir; no server needed.
int cmd_inspect(const std::vector<std::string>& args);

}  // namespace xerv::app
