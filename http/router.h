#pragma once
// Routes: method + path pattern, where a `{name}` segment matches one path segment
// and binds it as a parameter. A path that matches some route but not the method
// gives 405 with an Allow header; no match at all gives 404 (both as JSON errors).
// Each shard builds its own router at start; after that it is only read.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/parser.h"
#include "http/response.h"
#include "io/task.h"

namespace xerv::http {

// The request outlives the handler's task: the connection owns it until the
// response is written.
using handler = std::function<io::task<response>(request&)>;

class router {
 public:
  void add(std::string_view method, std::string_view pattern, handler h);

  struct match {
    const handler* target = nullptr;  // null: see status
    int status = 0;                   // 404 or 405 when target is null
    std::string allow;                // for 405
    std::vector<std::string_view> allowed;
  };
  // Fills req.params and req.route on success.
  match find(request& req) const;

  size_t size() const { return _routes.size(); }

  // Consulted when no route matches the path (webhooks live at user-chosen paths).
  using fallback_fn = std::function<std::optional<io::task<response>>(request&)>;
  void set_fallback(fallback_fn f) { _fallback = std::move(f); }
  const fallback_fn& fallback() const { return _fallback; }

 private:
  struct route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{x}" marks a parameter
    handler fn;
  };
  static bool match_path(const route& r, std::string_view path, request* bind);
  std::vector<route> _routes;
  fallback_fn _fallback;
};

}  // namespace xerv::http
