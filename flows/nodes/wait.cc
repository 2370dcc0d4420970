// std::wait: suspends the trace until a resume (or its expiry) decides (SPEC §5).
// The executor parks it (flows/executor.cc); this file only compiles its config.

#include "flows/nodes/all.h"
#include "flows/nodes/structural.h"

namespace xerv::flows::nodes {

const char* to_string(wait_decision d) {
  switch (d) {
    case wait_decision::approve: return "approve";
    case wait_decision::reject: return "reject";
    case wait_decision::escalate: return "escalate";
  }
  return "reject";
}

std::optional<wait_decision> parse_wait_decision(std::string_view s) {
  if (s == "approve") return wait_decision::approve;
  if (s == "reject") return wait_decision::reject;
  if (s == "escalate") return wait_decision::escalate;
  return std::nullopt;
}

namespace {

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<wait_impl>();
  if (YAML::Node h = c.config()["hook_id"]; h) impl->hook_id = c.templ(h);
  if (auto t = c.integer("timeout_secs", false, 0, 0, 365ll * 86400)) impl->timeout_secs = uint64_t(*t);
  if (auto a = c.string("timeout_action", false, "reject")) {
    if (auto d = parse_wait_decision(*a)) impl->timeout_action = *d;
    else c.error(c.config()["timeout_action"], "config.timeout_action must be approve, reject or escalate");
  }
  if (YAML::Node m = c.config()["metadata_fields"]; m) {
    if (!m.IsSequence()) c.error(m, "config.metadata_fields must be a list of input field names or paths");
    else
      for (const auto& f : m)
        if (auto p = c.path(f)) {
          std::string key(p->last_name());
          impl->metadata_fields.emplace_back(key.empty() ? p->text() : key, std::move(*p));
        }
  }
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type wait_node() { return {"std::wait", {"out", "rejected", "escalated"}, node_shape::wait, compile}; }

}  // namespace xerv::flows::nodes
