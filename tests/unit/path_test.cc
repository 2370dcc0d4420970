// flows/path: field paths and ${...} selectors (typed single selector vs text).

#include "flows/path.h"

#include <gtest/gtest.h>

using namespace xerv;
using flows::field_path;
using flows::template_string;

namespace {

core::value json(std::string_view t) { return std::get<core::value>(core::parse_json(t)); }

std::string resolve(std::string_view path, std::string_view doc) {
  std::string err;
  auto p = field_path::parse(path, &err);
  EXPECT_TRUE(p) << err;
  if (!p) return "<bad>";
  core::value v = json(doc);
  if (p->has_wildcard()) {
    std::vector<core::value_ref> all;
    p->collect(v.ref(), all);
    std::string out = "[";
    for (size_t i = 0; i < all.size(); ++i) out += (i ? "," : "") + core::to_json(all[i]);
    return out + "]";
  }
  auto r = p->resolve(v.ref());
  return r ? core::to_json(*r) : "<missing>";
}

TEST(path, forms_and_resolution) {
  const char* doc = R"({"amount":5,"items":[{"sku":"a","price":1.5},{"sku":"b","price":2}],"n":{"m":{"k":true}}})";
  EXPECT_EQ(resolve("amount", doc), "5");
  EXPECT_EQ(resolve("$.amount", doc), "5");
  EXPECT_EQ(resolve("$.items[0].sku", doc), R"("a")");
  EXPECT_EQ(resolve("items[1]", doc), R"({"sku":"b","price":2})");
  EXPECT_EQ(resolve("$.items[*].price", doc), "[1.5,2]");
  EXPECT_EQ(resolve("n.m.k", doc), "true");
  EXPECT_EQ(resolve("$", doc), doc);
  EXPECT_EQ(resolve("missing.deeper", doc), "<missing>");
  EXPECT_EQ(resolve("items[7].sku", doc), "<missing>");
  EXPECT_EQ(resolve("amount[0]", doc), "<missing>");
  EXPECT_EQ(field_path::parse("$.items[0].sku", nullptr)->last_name(), "sku");
}

TEST(path, malformed_paths_are_errors) {
  for (const char* bad : {"a..b", "a.", "items[", "items[x]", "items[0]x", ".", "a[-1]"}) {
    std::string err;
    EXPECT_FALSE(field_path::parse(bad, &err)) << bad;
    EXPECT_NE(err.find("invalid path"), std::string::npos) << bad << ": " << err;
  }
}

struct source final : flows::selector_source {
  core::value node0 = json(R"({"order_id":"A-1","score":0.9,"tags":["x","y"]})");
  core::value input = json(R"({"vip":true,"n":3})");
  core::value config = json(R"({"currency":"EUR"})");
  bool node0_done = true;
  std::optional<core::value_ref> node_output(uint32_t node) const override {
    if (node == 0 && node0_done) return node0.ref();
    return std::nullopt;
  }
  core::value_ref trace_input() const override { return input.ref(); }
  core::value_ref pipeline_config() const override { return config.ref(); }
  std::string_view trace_id() const override { return "t-1"; }
};

flows::node_lookup lookup = [](std::string_view name) -> std::optional<uint32_t> {
  if (name == "check") return 0;
  return std::nullopt;
};

std::string render(std::string_view text, const source& src) {
  std::string err;
  auto t = template_string::compile(text, lookup, &err);
  EXPECT_TRUE(t) << err;
  return t ? core::to_json(t->render(src).ref()) : "<bad>";
}

TEST(selectors, a_single_selector_keeps_its_type) {
  source src;
  EXPECT_EQ(render("${check.score}", src), "0.9");
  EXPECT_EQ(render("${check.tags}", src), R"(["x","y"])");
  EXPECT_EQ(render("${input.vip}", src), "true");
  EXPECT_EQ(render("${input}", src), R"({"vip":true,"n":3})");
  EXPECT_EQ(render("${pipeline.config.currency}", src), R"("EUR")");
  EXPECT_EQ(render("${trace_id}", src), R"("t-1")");
  EXPECT_EQ(render("${check.tags[*]}", src), R"(["x","y"])");
  EXPECT_EQ(render("${check.nothing}", src), "null");
  src.node0_done = false;  // skipped or not yet run
  EXPECT_EQ(render("${check.score}", src), "null");
}

TEST(selectors, selectors_in_longer_strings_render_as_text) {
  source src;
  EXPECT_EQ(render("order ${check.order_id} scored ${check.score}", src), R"("order A-1 scored 0.9")");
  EXPECT_EQ(render("tags=${check.tags} vip=${input.vip}", src), R"("tags=[\"x\",\"y\"] vip=true")");
  EXPECT_EQ(render("no selectors", src), R"("no selectors")");
  EXPECT_EQ(render("missing:${check.nope}.", src), R"("missing:.")");
}

TEST(selectors, unknown_roots_and_malformed_selectors_fail_at_compile) {
  std::string err;
  EXPECT_FALSE(template_string::compile("${nobody.x}", lookup, &err));
  EXPECT_NE(err.find("unknown selector root 'nobody'"), std::string::npos) << err;
  EXPECT_FALSE(template_string::compile("${check.x", lookup, &err));
  EXPECT_NE(err.find("unterminated"), std::string::npos) << err;
  EXPECT_FALSE(template_string::compile("${check..x}", lookup, &err));
  EXPECT_NE(err.find("invalid path"), std::string::npos) << err;
  auto t = template_string::compile("a ${check.x} b ${input.y}", lookup, &err);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->is_single_selector());
  EXPECT_EQ(t->selectors().size(), 2u);
}

}  // namespace
