#include "http/router.h"

#include <algorithm>

#include "io/assert.h"

namespace xerv::http {
namespace {

// Splits "/a/b/" into "a", "b" (an empty trailing segment is ignored).
template <class F>
bool for_each_segment(std::string_view path, F&& fn) {
  if (path.empty() || path.front() != '/') return false;
  path.remove_prefix(1);
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    if (!fn(seg)) return false;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return true;
}

}  // namespace

void router::add(std::string_view method, std::string_view pattern, handler h) {
  route r{std::string(method), std::string(pattern), {}, std::move(h)};
  bool ok = for_each_segment(pattern, [&](std::string_view seg) {
    r.segments.emplace_back(seg);
    return true;
  });
  ASSERT(ok, "route pattern %.*s must start with /", int(pattern.size()), pattern.data());
  _routes.push_back(std::move(r));
}

bool router::match_path(const route& r, std::string_view path, request* bind) {
  size_t i = 0;
  bool ok = for_each_segment(path, [&](std::string_view seg) {
    if (i >= r.segments.size()) return false;
    const std::string& want = r.segments[i++];
    if (want.size() >= 2 && want.front() == '{' && want.back() == '}') {
      if (seg.empty()) return false;
      if (bind) bind->params.emplace_back(std::string_view(want).substr(1, want.size() - 2), seg);
      return true;
    }
    return seg == want;
  });
  return ok && i == r.segments.size();
}

router::match router::find(request& req) const {
  std::string_view path = req.path();
  match m;
  for (const route& r : _routes) {
    if (!match_path(r, path, nullptr)) continue;
    if (r.method == req.method() || (r.method == "GET" && req.method() == "HEAD")) {
      req.params.clear();
      match_path(r, path, &req);
      req.route = r.pattern;
      m.target = &r.fn;
      return m;
    }
    if (std::find(m.allowed.begin(), m.allowed.end(), r.method) != m.allowed.end()) continue;  // listed once
    m.allowed.push_back(r.method);
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += r.method;
  }
  m.status = m.allow.empty() ? 404 : 405;
  return m;
}

}  // namespace xerv::http
