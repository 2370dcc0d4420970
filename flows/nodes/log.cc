// std::log: logs a rendered message and passes its input through on `out`.

#include "flows/nodes/all.h"

namespace xerv::flows::nodes {
namespace {

struct log_impl : node_impl {
  std::optional<template_string> message;
  io::log_level level = io::log_level::info;

  node_result run(core::value_ref input, node_env& env) const override {
    std::string text;
    if (message) message->render_text(text, env.selectors());
    else core::write_json(text, input);
    env.log(level, text);
    // Also to the server's log, where operators look first.
    if (io::log_enabled(level)) {
      std::string_view id = env.selectors().trace_id(), node = env.node_name();
      io::log(level, "trace %.*s %.*s: %s", int(id.size()), id.data(), int(node.size()), node.data(), text.c_str());
    }
    return emit_ref(0, input);
  }
};

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<log_impl>();
  if (YAML::Node m = c.config()["message"]; m) impl->message = c.templ(m);
  if (auto level = c.string("level", false, "info")) {
    auto l = io::parse_log_level(*level);
    if (!l || level->find('=') != std::string::npos) c.error(c.config()["level"], "config.level must be debug, info, warn or error");
    else impl->level = *l;
  }
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type log_node() { return {"std::log", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
