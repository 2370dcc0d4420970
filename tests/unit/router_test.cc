// The router: literal and `{param}` segments, trailing slashes, 404 vs 405 with
// Allow, HEAD as GET, and which of several matching routes wins.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>

#include "http/parser.h"
#include "http/router.h"

using namespace xerv;
using http::router;

namespace {

// A parsed request for `method target`, owned with its parser (requests can only be
// made by parsing).
struct parsed {
  std::unique_ptr<http::request_parser> parser = std::make_unique<http::request_parser>();
  http::request& req() { return parser->current(); }
};

parsed make(std::string_view method, std::string_view target) {
  parsed p;
  std::string in = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  auto out = p.parser->feed(in.data(), in.size());
  EXPECT_EQ(out.event, http::parse_event::message_done) << in;
  return p;
}

struct found {
  bool matched;
  int status;
  std::string allow, route;
};

found lookup(const router& r, std::string_view method, std::string_view target) {
  parsed p = make(method, target);
  router::match m = r.find(p.req());
  return {m.target != nullptr, m.status, m.allow, std::string(p.req().route)};
}

// Handlers are never run here; empty ones are enough to tell routes apart by
// pattern.
router flows_api() {
  router r;
  r.add("GET", "/health", {});
  r.add("GET", "/api/v1/flows", {});
  r.add("POST", "/api/v1/flows", {});
  r.add("GET", "/api/v1/flows/{id}", {});
  r.add("DELETE", "/api/v1/flows/{id}", {});
  r.add("PUT", "/api/v1/flows/{id}", {});
  r.add("GET", "/api/v1/flows/{id}/runs/{run}", {});
  r.add("POST", "/api/v1/debug/echo", {});
  r.add("GET", "/", {});
  return r;
}

}  // namespace

TEST(router, literal_routes) {
  router r = flows_api();
  EXPECT_EQ(r.size(), 9u);
  found f = lookup(r, "GET", "/health");
  EXPECT_TRUE(f.matched);
  EXPECT_EQ(f.status, 0);
  EXPECT_EQ(f.route, "/health");
  EXPECT_TRUE(lookup(r, "GET", "/api/v1/flows").matched);
  EXPECT_EQ(lookup(r, "POST", "/api/v1/flows").route, "/api/v1/flows");
  EXPECT_EQ(lookup(r, "GET", "/").route, "/");
  EXPECT_EQ(lookup(r, "POST", "/api/v1/debug/echo").route, "/api/v1/debug/echo");
}

TEST(router, query_string_is_ignored) {
  router r = flows_api();
  found f = lookup(r, "GET", "/health?verbose=1&x=/y");
  EXPECT_TRUE(f.matched);
  EXPECT_EQ(f.route, "/health");
}

TEST(router, literal_segments_must_match_exactly) {
  router r = flows_api();
  EXPECT_EQ(lookup(r, "GET", "/Health").status, 404);
  EXPECT_EQ(lookup(r, "GET", "/healthz").status, 404);
  EXPECT_EQ(lookup(r, "GET", "/health/extra").status, 404);
  EXPECT_EQ(lookup(r, "GET", "/api/v1").status, 404);
  EXPECT_EQ(lookup(r, "GET", "/api/v2/flows").status, 404);
}

TEST(router, params_are_bound) {
  router r = flows_api();
  parsed p = make("GET", "/api/v1/flows/order-7/runs/123?x=1");
  router::match m = r.find(p.req());
  ASSERT_NE(m.target, nullptr);
  EXPECT_EQ(p.req().route, "/api/v1/flows/{id}/runs/{run}");
  ASSERT_EQ(p.req().params.size(), 2u);
  EXPECT_EQ(p.req().params[0].first, "id");
  EXPECT_EQ(p.req().params[0].second, "order-7");
  EXPECT_EQ(p.req().params[1].first, "run");
  EXPECT_EQ(p.req().param("run"), "123");
}

TEST(router, params_match_one_non_empty_segment) {
  router r = flows_api();
  EXPECT_EQ(lookup(r, "GET", "/api/v1/flows/a%2Fb").route, "/api/v1/flows/{id}");  // no decoding
  EXPECT_EQ(lookup(r, "GET", "/api/v1/flows/a/b").status, 404);
  EXPECT_EQ(lookup(r, "GET", "/api/v1/flows//runs/1").status, 404);  // empty {id}
}

TEST(router, finding_twice_does_not_duplicate_params) {
  router r = flows_api();
  parsed p = make("GET", "/api/v1/flows/f1");
  ASSERT_NE(r.find(p.req()).target, nullptr);
  ASSERT_NE(r.find(p.req()).target, nullptr);
  ASSERT_EQ(p.req().params.size(), 1u);
  EXPECT_EQ(p.req().param("id"), "f1");
}

TEST(router, no_params_bound_on_404_or_405) {
  router r = flows_api();
  parsed p = make("PATCH", "/api/v1/flows/f1");
  router::match m = r.find(p.req());
  EXPECT_EQ(m.target, nullptr);
  EXPECT_EQ(m.status, 405);
  EXPECT_TRUE(p.req().params.empty());
  EXPECT_EQ(p.req().route, "");
}

TEST(router, trailing_slash_is_ignored) {
  // Observed rule: one empty trailing segment is dropped, in paths and in patterns,
  // so "/health/" is "/health"; an empty segment anywhere else must match literally.
  router r = flows_api();
  EXPECT_EQ(lookup(r, "GET", "/health/").route, "/health");
  EXPECT_EQ(lookup(r, "GET", "/api/v1/flows/").route, "/api/v1/flows");
  EXPECT_EQ(lookup(r, "GET", "/api/v1/flows/x/").route, "/api/v1/flows/{id}");
  EXPECT_EQ(lookup(r, "GET", "/health//").status, 404);
  EXPECT_EQ(lookup(r, "GET", "//health").status, 404);
  EXPECT_EQ(lookup(r, "GET", "/api//v1/flows").status, 404);

  router s;
  s.add("GET", "/slash/", {});
  EXPECT_EQ(lookup(s, "GET", "/slash").route, "/slash/");
  EXPECT_EQ(lookup(s, "GET", "/slash/").route, "/slash/");
}

TEST(router, root_only_matches_root) {
  router r;
  r.add("GET", "/", {});
  EXPECT_TRUE(lookup(r, "GET", "/").matched);
  EXPECT_EQ(lookup(r, "GET", "/x").status, 404);
  EXPECT_EQ(lookup(r, "GET", "//").status, 404);
}

TEST(router, non_origin_targets_are_404) {
  router r = flows_api();
  EXPECT_EQ(lookup(r, "OPTIONS", "*").status, 404);
  EXPECT_EQ(lookup(r, "GET", "http://example.com/health").status, 404);
}

TEST(router, unknown_path_is_404) {
  router r = flows_api();
  found f = lookup(r, "GET", "/nope");
  EXPECT_FALSE(f.matched);
  EXPECT_EQ(f.status, 404);
  EXPECT_EQ(f.allow, "");

  router empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(lookup(empty, "GET", "/").status, 404);
}

TEST(router, known_path_with_other_method_is_405_with_allow) {
  router r = flows_api();
  found f = lookup(r, "DELETE", "/api/v1/flows");
  EXPECT_FALSE(f.matched);
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.allow, "GET, POST");  // registration order

  f = lookup(r, "POST", "/api/v1/flows/f1");
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.allow, "GET, DELETE, PUT");

  f = lookup(r, "GET", "/api/v1/debug/echo");
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.allow, "POST");
}

TEST(router, allow_lists_methods_from_every_matching_pattern) {
  // A literal and a parameter route both match /items/special.
  router r;
  r.add("GET", "/items/{id}", {});
  r.add("POST", "/items/special", {});
  r.add("PUT", "/items/{id}", {});
  found f = lookup(r, "DELETE", "/items/special");
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.allow, "GET, POST, PUT");
  f = lookup(r, "DELETE", "/items/other");
  EXPECT_EQ(f.allow, "GET, PUT");
}

// Regression (fixed in http/router.cc): when two patterns with the same method both
// match a path, router::find appends that method to `allow` once per pattern, so a
// 405 carries "Allow: GET, GET".
TEST(router, allow_lists_each_method_once) {
  router r;
  r.add("GET", "/items/{id}", {});
  r.add("GET", "/items/special", {});
  found f = lookup(r, "POST", "/items/special");
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.allow, "GET");
}

TEST(router, head_matches_get) {
  router r = flows_api();
  found f = lookup(r, "HEAD", "/health");
  EXPECT_TRUE(f.matched);
  EXPECT_EQ(f.route, "/health");

  parsed p = make("HEAD", "/api/v1/flows/f9");
  ASSERT_NE(r.find(p.req()).target, nullptr);
  EXPECT_EQ(p.req().param("id"), "f9");

  // HEAD on a path without GET is 405; the Allow list names the registered
  // methods only (HEAD is implied by GET and not listed).
  f = lookup(r, "HEAD", "/api/v1/debug/echo");
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.allow, "POST");
  f = lookup(r, "PATCH", "/health");
  EXPECT_EQ(f.allow, "GET");
}

TEST(router, explicit_head_route_wins_only_when_registered_first) {
  router r;
  r.add("HEAD", "/h", {});
  r.add("GET", "/h", {});
  r.add("GET", "/g", {});
  r.add("HEAD", "/g", {});
  parsed p = make("HEAD", "/h");
  router::match m = r.find(p.req());
  ASSERT_NE(m.target, nullptr);
  // The first route in registration order that accepts HEAD wins.
  parsed q = make("HEAD", "/g");
  router::match n = r.find(q.req());
  ASSERT_NE(n.target, nullptr);
  parsed g = make("GET", "/g");
  router::match gm = r.find(g.req());
  EXPECT_EQ(n.target, gm.target);  // the GET route's handler answers HEAD /g
  EXPECT_NE(m.target, r.find(make("GET", "/h").req()).target);
}

TEST(router, registration_order_wins_over_specificity) {
  // Observed rule: routes are tried in the order they were added and the first
  // whose pattern and method match wins; a literal segment is not preferred over a
  // parameter. Register the more specific route first.
  router literal_first;
  literal_first.add("GET", "/flows/latest", {});
  literal_first.add("GET", "/flows/{id}", {});
  EXPECT_EQ(lookup(literal_first, "GET", "/flows/latest").route, "/flows/latest");
  EXPECT_EQ(lookup(literal_first, "GET", "/flows/other").route, "/flows/{id}");

  router param_first;
  param_first.add("GET", "/flows/{id}", {});
  param_first.add("GET", "/flows/latest", {});
  parsed p = make("GET", "/flows/latest");
  ASSERT_NE(param_first.find(p.req()).target, nullptr);
  EXPECT_EQ(p.req().route, "/flows/{id}");
  EXPECT_EQ(p.req().param("id"), "latest");
}

TEST(router, method_mismatch_on_an_earlier_route_does_not_hide_a_later_match) {
  router r;
  r.add("POST", "/flows/{id}", {});
  r.add("GET", "/flows/latest", {});
  found f = lookup(r, "GET", "/flows/latest");
  EXPECT_TRUE(f.matched);
  EXPECT_EQ(f.route, "/flows/latest");
}

TEST(router, methods_are_case_sensitive) {
  router r;
  r.add("get", "/lower", {});
  found f = lookup(r, "GET", "/lower");
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.allow, "get");
}
