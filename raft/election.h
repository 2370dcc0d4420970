#pragma once
// One round of votes (§3.4) or pre-votes (§9.6): who answered what, and whether
// a majority of the voters has decided it.

#include <algorithm>
#include <map>
#include <vector>

#include "raft/types.h"

namespace xerv::raft {

class vote_round {
 public:
  enum class outcome { pending, won, lost };

  vote_round(std::vector<node_id> voters, node_id self) : _voters(std::move(voters)) { record(self, true); }
  // A second answer from the same node does not count again, nor one from a non-voter.
  outcome record(node_id from, bool granted) {
    if (std::find(_voters.begin(), _voters.end(), from) != _voters.end()) _answers.emplace(from, granted);
    size_t yes = 0, no = 0;
    for (const auto& [id, g] : _answers) (g ? yes : no)++;
    size_t quorum = _voters.size() / 2 + 1;
    if (yes >= quorum) return outcome::won;
    if (no > _voters.size() - quorum) return outcome::lost;
    return outcome::pending;
  }

 private:
  std::vector<node_id> _voters;
  std::map<node_id, bool> _answers;
};

}  // namespace xerv::raft
