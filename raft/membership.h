#pragma once
// Cluster membership (§4): the voters, whose majority decides elections and
// commits, and the learners, who receive the log but do not count. A change
// is one log entry of kind config that takes effect as soon as a node holds
// it, committed or not (§4.1); one server changes at a time, so any two
// majorities of the old and new configuration overlap.

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/types.h"

namespace xerv::raft {

struct configuration {
  std::vector<node_id> voters, learners;  // sorted, disjoint

  bool is_voter(node_id n) const { return std::binary_search(voters.begin(), voters.end(), n); }
  bool is_learner(node_id n) const { return std::binary_search(learners.begin(), learners.end(), n); }
  bool is_member(node_id n) const { return is_voter(n) || is_learner(n); }
  size_t quorum() const { return voters.size() / 2 + 1; }
  bool operator==(const configuration&) const = default;

  // "voters=1,2,3;learners=4" (the entry's data).
  std::string encode() const {
    std::string out = "voters=";
    for (size_t i = 0; i < voters.size(); ++i) out += (i ? "," : "") + std::to_string(voters[i].value);
    out += ";learners=";
    for (size_t i = 0; i < learners.size(); ++i) out += (i ? "," : "") + std::to_string(learners[i].value);
    return out;
  }
  static std::optional<configuration> decode(std::string_view s) {
    configuration c;
    auto list = [](std::string_view text, std::vector<node_id>& out) {
      while (!text.empty()) {
        size_t comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        uint64_t v = 0;
        auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        if (ec != std::errc() || p != item.data() + item.size() || v == 0) return false;
        out.push_back(node_id(v));
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
      }
      std::sort(out.begin(), out.end());
      return true;
    };
    size_t semi = s.find(";learners=");
    if (!s.starts_with("voters=") || semi == std::string_view::npos) return std::nullopt;
    if (!list(s.substr(7, semi - 7), c.voters) || !list(s.substr(semi + 10), c.learners)) return std::nullopt;
    return c;
  }
};

}  // namespace xerv::raft
