#pragma once
// The memory backend's pipeline store: pipeline definitions and states as files
// under one directory (DATA_DIR/pipelines): NAME.yaml, the flow as deployed, and
// NAME.state, "STATE REVISION" (a file of only "STATE", written before
// revisions existed, is revision 1). Every file is replaced atomically and
// synced before publish() completes, so a change answered 2xx survives kill -9.
//
// The control log (seq) is in memory: this process is the only writer, and its
// watchers are all in this process. Lives on the control shard (shard 0).

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/change_feed.h"
#include "core/dispatch.h"
#include "io/event.h"

namespace xerv::backends::memory {

class pipeline_store final : public core::pipeline_store {
 public:
  // What `dir` holds, read with plain file calls: call before the runtime
  // runs. Unreadable or malformed files are reported in `problems`.
  struct stored_state {
    core::pipeline_state state = core::pipeline_state::running;
    uint64_t revision = 1;
    std::vector<std::string> disabled;
  };
  struct stored {
    std::vector<core::pipeline_change> pipelines;  // as deploys, by name
    // State files without a flow: pipelines from XERV_PIPELINES_DIR an operator
    // paused, stopped or started, or whose triggers they switched off.
    std::map<std::string, stored_state> states;
    std::vector<std::string> problems;  // the start fails on these
    std::vector<std::string> warnings;  // and goes on after these
  };
  static stored read_dir(const std::string& dir);

  // `dir` empty: nothing is stored (tests); `initial` and `states` are what
  // read_dir found (the states' revisions continue for pipelines loaded from
  // XERV_PIPELINES_DIR).
  pipeline_store(std::string dir, std::vector<core::pipeline_change> initial,
                 const std::map<std::string, stored_state>& states = {});
  ~pipeline_store() override;

  io::task<io::result<std::vector<core::pipeline_change>>> load() override;
  io::task<io::result<core::pipeline_change>> publish(core::pipeline_change c, uint64_t expected_revision) override;
  std::unique_ptr<core::pipeline_watch> watch() override;

 private:
  struct current {
    uint64_t revision = 0;
    core::pipeline_state state = core::pipeline_state::running;
    bool persist = true;
    std::vector<std::string> disabled;
  };
  io::task<io::result<void>> store(const core::pipeline_change& c);
  io::task<io::result<void>> unstore(std::string name);

  std::string _dir;
  std::vector<core::pipeline_change> _initial;
  std::map<std::string, current, std::less<>> _current;
  uint64_t _seq = 0;
  change_feed _feed;
};

}  // namespace xerv::backends::memory
