#pragma once
// Node types. A node type has a name ("std::log"), output ports (every node also
// has `error`), a shape the executor treats specially (merge, split, loop, wait) or not,
// and a compile function that checks the node's YAML config and returns an
// immutable implementation. Adding a node type is one file in flows/nodes/ plus
// one line in flows/nodes/all.cc.

#include <yaml-cpp/yaml.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/json.h"
#include "flows/path.h"
#include "io/cancel.h"
#include "io/log.h"
#include "io/task.h"

namespace xerv::flows {

struct flow_error {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;
};

// Handed to a node type's compile function: the config, error reporting with YAML
// positions, and selector compilation bound to the flow's node names.
class node_compiler {
 public:
  node_compiler(const YAML::Node& config, const YAML::Node& node_def, std::string node_name, node_lookup lookup,
                std::vector<flow_error>& errors)
      : _config(config), _def(node_def), _name(std::move(node_name)), _lookup(std::move(lookup)), _errors(errors) {}

  const YAML::Node& config() const { return _config; }
  const std::string& node_name() const { return _name; }
  bool failed() const { return _failed; }

  // Reports a problem at `at` (or at the node when `at` has no position).
  void error(const YAML::Node& at, const std::string& message);

  // Helpers that read config[key], report problems and return nullopt on error.
  // `required` reports a missing key.
  std::optional<std::string> string(const char* key, bool required, std::string fallback = {});
  std::optional<double> number(const char* key, bool required, double fallback = 0);
  std::optional<int64_t> integer(const char* key, bool required, int64_t fallback, int64_t min, int64_t max);
  std::optional<bool> boolean(const char* key, bool required, bool fallback);
  std::optional<field_path> path(const YAML::Node& n);
  std::optional<template_string> templ(const YAML::Node& n);
  // A YAML scalar/sequence/map as a JSON value (scalars typed like YAML 1.2 core).
  core::value to_value(const YAML::Node& n);
  const node_lookup& lookup() const { return _lookup; }

 private:
  std::optional<YAML::Node> present(const char* key, bool required, bool& fallback_used);
  // config[key] converted by `convert` (which reports its own errors), or
  // `fallback` when the key is absent and not required.
  template <class T, class Convert>
  std::optional<T> typed(const char* key, bool required, T fallback, Convert convert);
  YAML::Node _config;
  YAML::Node _def;
  std::string _name;
  node_lookup _lookup;
  std::vector<flow_error>& _errors;
  bool _failed = false;
};

struct node_output {
  uint16_t port = 0;  // index into the type's ports
  core::value value;
};

// Machine-readable error codes of failed nodes and traces; docs/flows.md lists
// them. A failure carries one in `code`; the trace outcome and the error port's
// `error` field repeat it.
namespace error_codes {
inline constexpr std::string_view node_failed = "node_failed";      // any other failure
inline constexpr std::string_view node_timeout = "node_timeout";    // an attempt exceeded its timeout
inline constexpr std::string_view timeout = "timeout";              // the trace exceeded execution_timeout_ms
inline constexpr std::string_view http_error = "http_error";        // std::http could not complete the request
inline constexpr std::string_view invalid_input = "invalid_input";  // the input has the wrong shape for the node
}  // namespace error_codes

struct node_failure {
  std::string message;
  std::string code = std::string(error_codes::node_failed);
};
using node_result = std::variant<node_output, node_failure>;

// What a running node may use from its trace.
// What std::enqueue's admission answered: the consumer's trace, or why not.
struct enqueued {
  std::string trace_id;
  std::string error;  // empty: admitted
  std::string code = std::string(error_codes::node_failed);
  bool stopping = false;  // refused because xerv is stopping: the trace resumes after the restart
};

class node_env {
 public:
  virtual ~node_env() = default;
  // std::enqueue: admits `payload` as a message of `queue`, durably, once per
  // node of the trace (a retry, or a re-run after a crash, answers the trace
  // the first message started). Not available by default.
  virtual io::task<enqueued> enqueue(std::string queue, core::value payload);
  virtual const selector_source& selectors() const = 0;
  virtual void log(io::log_level level, std::string_view message) = 0;
  virtual std::string_view node_name() const = 0;
  // Fires when the node times out or its trace ends early; pass it to every wait.
  virtual io::cancel_source* cancel() = 0;
  // Every active input of the node in arrival order (the first is the `input` it
  // runs on), for node types that combine them (std::json_dynamic merge). Empty
  // when the caller does not track inputs. The references stay valid until the
  // node's next suspension.
  virtual std::vector<core::value_ref> inputs() const { return {}; }
};

class node_impl {
 public:
  virtual ~node_impl() = default;
  // Most nodes compute synchronously; those that wait (timers, HTTP) say so and
  // implement run_async instead.
  virtual bool is_async() const { return false; }
  virtual node_result run(core::value_ref input, node_env& env) const;
  virtual io::task<node_result> run_async(core::value input, node_env& env) const;
};

enum class node_shape { plain, merge, split, loop, wait };

struct node_type {
  std::string name;
  std::vector<std::string> ports;  // without "error", which every node has
  node_shape shape = node_shape::plain;
  std::function<std::unique_ptr<node_impl>(node_compiler&)> compile;
};

const node_type* find_node_type(std::string_view name);
std::vector<std::string> node_type_names();

// Helpers for node implementations.
node_result emit(uint16_t port, core::value v);
node_result emit_ref(uint16_t port, core::value_ref v);
node_result fail(std::string message, std::string_view code = error_codes::node_failed);

}  // namespace xerv::flows
