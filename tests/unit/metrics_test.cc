// The metrics registry: per-thread series, snapshots, merging, and the Prometheus
// text format. Families are process-global and registered once, so every test
// declares its own uniquely named families. Values live in thread-local storage:
// each test records its events on a fresh thread (like one shard) and takes that
// thread's snapshot, so tests do not depend on order or on --gtest_repeat.

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/metrics.h"

using namespace xerv;
using core::counter;
using core::gauge;
using core::histogram;

namespace {

// The lines rendered for one family: from its HELP line up to the next family.
std::string family_text(const std::string& all, const std::string& name) {
  std::string start = "# HELP " + name + " ";
  size_t from = all.find(start);
  if (from == std::string::npos) return {};
  size_t to = all.find("# HELP ", from + start.size());
  return all.substr(from, to == std::string::npos ? std::string::npos : to - from);
}

// Runs `events` on a new thread and returns that thread's snapshot.
template <class F>
core::metrics_snapshot snapshot_of(F events) {
  core::metrics_snapshot s;
  std::thread shard([&] {
    events();
    s = core::snapshot_this_thread();
  });
  shard.join();
  return s;
}

template <class F>
std::string render_of(F events) {
  return core::render_prometheus(snapshot_of(events));
}

const core::series_value* find_series(const core::metrics_snapshot& s, const core::metric_family& f,
                                      std::string_view key) {
  if (f.id() >= s.families.size()) return nullptr;
  auto it = s.families[f.id()].find(key);
  return it == s.families[f.id()].end() ? nullptr : &it->second;
}

counter t_plain_total("xerv_test_plain_total", "A counter without labels.");
counter t_labelled_total("xerv_test_labelled_total", "A counter with labels.", {"method", "code"});
gauge t_gauge("xerv_test_gauge", "A gauge.");
gauge t_labelled_gauge("xerv_test_labelled_gauge", "A gauge with a label.", {"shard"});
histogram t_hist("xerv_test_latency_seconds", "A histogram.", {0.1, 1, 10});
histogram t_labelled_hist("xerv_test_route_seconds", "A labelled histogram.", {0.5, 2}, {"route"});
counter t_untouched_total("xerv_test_untouched_total", "Never incremented.");
gauge t_untouched_gauge("xerv_test_untouched_gauge", "Never set.");
histogram t_untouched_hist("xerv_test_untouched_seconds", "Never observed.", {1, 2});
counter t_untouched_labelled_total("xerv_test_untouched_labelled_total", "Never incremented.", {"kind"});
gauge t_escape_gauge("xerv_test_escape_gauge", "Label escaping.", {"path"});
counter t_help_total("xerv_test_help_total", "Help with a backslash \\ and\na newline.");
counter t_help_quote_total("xerv_test_help_quote_total", "Help with \"quotes\".");
counter t_merge_total("xerv_test_merge_total", "Merged counter.", {"k"});
histogram t_merge_hist("xerv_test_merge_seconds", "Merged histogram.", {1, 5});
counter t_thread_total("xerv_test_thread_total", "Per-thread counter.");
counter t_long_total("xerv_test_long_labels_total", "Long label values.", {"a", "b"});
gauge t_number_gauge("xerv_test_number_gauge", "Number formatting.", {"v"});

}  // namespace

TEST(metrics, family_definitions) {
  EXPECT_EQ(t_labelled_total.def().name, "xerv_test_labelled_total");
  EXPECT_EQ(t_labelled_total.def().type, core::metric_type::counter);
  EXPECT_EQ(t_labelled_total.def().label_names, (std::vector<std::string>{"method", "code"}));
  EXPECT_EQ(t_hist.def().type, core::metric_type::histogram);
  EXPECT_EQ(t_hist.def().buckets, (std::vector<double>{0.1, 1, 10}));
  EXPECT_NE(t_plain_total.id(), t_labelled_total.id());
  auto b = core::latency_buckets();
  ASSERT_FALSE(b.empty());
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

TEST(metrics, counter_without_labels) {
  auto s = snapshot_of([] {
    t_plain_total.inc();
    t_plain_total.inc({}, 2);
  });
  const core::series_value* v = find_series(s, t_plain_total, "");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->value, 3);
  EXPECT_EQ(family_text(core::render_prometheus(s), "xerv_test_plain_total"),
            "# HELP xerv_test_plain_total A counter without labels.\n"
            "# TYPE xerv_test_plain_total counter\n"
            "xerv_test_plain_total 3\n");
}

TEST(metrics, counter_with_labels) {
  auto s = snapshot_of([] {
    t_labelled_total.inc({"GET", "200"});
    t_labelled_total.inc({"GET", "200"});
    t_labelled_total.inc({"POST", "404"}, 5);
  });
  const core::series_value* v = find_series(s, t_labelled_total, "GET\x1f" "200");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->value, 2);
  // Series render in label-key order.
  EXPECT_EQ(family_text(core::render_prometheus(s), "xerv_test_labelled_total"),
            "# HELP xerv_test_labelled_total A counter with labels.\n"
            "# TYPE xerv_test_labelled_total counter\n"
            "xerv_test_labelled_total{method=\"GET\",code=\"200\"} 2\n"
            "xerv_test_labelled_total{method=\"POST\",code=\"404\"} 5\n");
}

TEST(metrics, gauges_set_and_add) {
  std::string out = render_of([] {
    t_gauge.set(10);
    t_gauge.add(-3.5);
    t_labelled_gauge.set(1, {"0"});
    t_labelled_gauge.add(2, {"1"});
    t_labelled_gauge.add(2, {"1"});
  });
  EXPECT_EQ(family_text(out, "xerv_test_gauge"),
            "# HELP xerv_test_gauge A gauge.\n"
            "# TYPE xerv_test_gauge gauge\n"
            "xerv_test_gauge 6.5\n");
  EXPECT_EQ(family_text(out, "xerv_test_labelled_gauge"),
            "# HELP xerv_test_labelled_gauge A gauge with a label.\n"
            "# TYPE xerv_test_labelled_gauge gauge\n"
            "xerv_test_labelled_gauge{shard=\"0\"} 1\n"
            "xerv_test_labelled_gauge{shard=\"1\"} 4\n");
}

TEST(metrics, histogram_buckets_are_cumulative) {
  auto s = snapshot_of([] {
    for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 50.0}) t_hist.observe(v);
  });
  const core::series_value* v = find_series(s, t_hist, "");
  ASSERT_NE(v, nullptr);
  // Per-bucket (non-cumulative) counts; a value equal to a bound falls in it.
  EXPECT_EQ(v->buckets, (std::vector<uint64_t>{2, 2, 1, 1}));
  EXPECT_EQ(v->count, 6u);
  EXPECT_DOUBLE_EQ(v->sum, 56.65);
  EXPECT_EQ(family_text(core::render_prometheus(s), "xerv_test_latency_seconds"),
            "# HELP xerv_test_latency_seconds A histogram.\n"
            "# TYPE xerv_test_latency_seconds histogram\n"
            "xerv_test_latency_seconds_bucket{le=\"0.1\"} 2\n"
            "xerv_test_latency_seconds_bucket{le=\"1\"} 4\n"
            "xerv_test_latency_seconds_bucket{le=\"10\"} 5\n"
            "xerv_test_latency_seconds_bucket{le=\"+Inf\"} 6\n"
            "xerv_test_latency_seconds_sum 56.65\n"
            "xerv_test_latency_seconds_count 6\n");
}

TEST(metrics, histogram_with_labels) {
  std::string out = render_of([] {
    t_labelled_hist.observe(0.25, {"/a"});
    t_labelled_hist.observe(1, {"/a"});
    t_labelled_hist.observe(3, {"/b"});
  });
  EXPECT_EQ(family_text(out, "xerv_test_route_seconds"),
            "# HELP xerv_test_route_seconds A labelled histogram.\n"
            "# TYPE xerv_test_route_seconds histogram\n"
            "xerv_test_route_seconds_bucket{route=\"/a\",le=\"0.5\"} 1\n"
            "xerv_test_route_seconds_bucket{route=\"/a\",le=\"2\"} 2\n"
            "xerv_test_route_seconds_bucket{route=\"/a\",le=\"+Inf\"} 2\n"
            "xerv_test_route_seconds_sum{route=\"/a\"} 1.25\n"
            "xerv_test_route_seconds_count{route=\"/a\"} 2\n"
            "xerv_test_route_seconds_bucket{route=\"/b\",le=\"0.5\"} 0\n"
            "xerv_test_route_seconds_bucket{route=\"/b\",le=\"2\"} 0\n"
            "xerv_test_route_seconds_bucket{route=\"/b\",le=\"+Inf\"} 1\n"
            "xerv_test_route_seconds_sum{route=\"/b\"} 3\n"
            "xerv_test_route_seconds_count{route=\"/b\"} 1\n");
}

TEST(metrics, unlabelled_families_render_zero_before_any_event) {
  std::string out = render_of([] {});
  EXPECT_EQ(family_text(out, "xerv_test_untouched_total"),
            "# HELP xerv_test_untouched_total Never incremented.\n"
            "# TYPE xerv_test_untouched_total counter\n"
            "xerv_test_untouched_total 0\n");
  EXPECT_EQ(family_text(out, "xerv_test_untouched_gauge"),
            "# HELP xerv_test_untouched_gauge Never set.\n"
            "# TYPE xerv_test_untouched_gauge gauge\n"
            "xerv_test_untouched_gauge 0\n");
  EXPECT_EQ(family_text(out, "xerv_test_untouched_seconds"),
            "# HELP xerv_test_untouched_seconds Never observed.\n"
            "# TYPE xerv_test_untouched_seconds histogram\n"
            "xerv_test_untouched_seconds_bucket{le=\"+Inf\"} 0\n"
            "xerv_test_untouched_seconds_sum 0\n"
            "xerv_test_untouched_seconds_count 0\n");
  // A labelled family has no series to show until some label values are used.
  EXPECT_EQ(family_text(out, "xerv_test_untouched_labelled_total"),
            "# HELP xerv_test_untouched_labelled_total Never incremented.\n"
            "# TYPE xerv_test_untouched_labelled_total counter\n");
  // Also with an empty snapshot (no shard reported anything).
  std::string empty = core::render_prometheus(core::metrics_snapshot{});
  EXPECT_NE(empty.find("\nxerv_test_untouched_total 0\n"), std::string::npos);
  EXPECT_NE(empty.find("\nxerv_test_untouched_seconds_count 0\n"), std::string::npos);
}

TEST(metrics, label_values_are_escaped) {
  std::string out = render_of([] { t_escape_gauge.set(1, {"a\\b\"c\nd"}); });
  EXPECT_EQ(family_text(out, "xerv_test_escape_gauge"),
            "# HELP xerv_test_escape_gauge Label escaping.\n"
            "# TYPE xerv_test_escape_gauge gauge\n"
            "xerv_test_escape_gauge{path=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(metrics, help_escapes_backslash_and_newline) {
  EXPECT_EQ(family_text(render_of([] {}), "xerv_test_help_total"),
            "# HELP xerv_test_help_total Help with a backslash \\\\ and\\na newline.\n"
            "# TYPE xerv_test_help_total counter\n"
            "xerv_test_help_total 0\n");
}

// Regression (fixed in core/metrics.cc): render_prometheus escapes HELP text with the
// label-value escaper, so a `"` in a help string is written as `\"`. The text
// format (0.0.4) escapes only `\` and newline in HELP, and Prometheus parsers older
// than the UTF-8 work (prometheus/common expfmt before 2024) reject `\"` there
// with "invalid escape sequence", failing the whole scrape.
TEST(metrics, help_does_not_escape_quotes) {
  EXPECT_EQ(family_text(render_of([] {}), "xerv_test_help_quote_total"),
            "# HELP xerv_test_help_quote_total Help with \"quotes\".\n"
            "# TYPE xerv_test_help_quote_total counter\n"
            "xerv_test_help_quote_total 0\n");
}

TEST(metrics, snapshots_merge_by_summing) {
  // Two shards.
  core::metrics_snapshot first = snapshot_of([] {
    t_merge_total.inc({"x"}, 2);
    t_merge_total.inc({"y"}, 1);
    t_merge_hist.observe(0.5);
    t_merge_hist.observe(3);
  });
  core::metrics_snapshot second = snapshot_of([] {
    t_merge_total.inc({"x"}, 12);
    t_merge_total.inc({"y"}, 1);
    t_merge_total.inc({"z"}, 7);
    t_merge_hist.observe(0.5);
    t_merge_hist.observe(3);
    t_merge_hist.observe(100);
  });

  core::metrics_snapshot merged = first;
  merged.merge(second);
  ASSERT_NE(find_series(merged, t_merge_total, "x"), nullptr);
  EXPECT_EQ(find_series(merged, t_merge_total, "x")->value, 14);
  EXPECT_EQ(find_series(merged, t_merge_total, "y")->value, 2);
  EXPECT_EQ(find_series(merged, t_merge_total, "z")->value, 7);  // only in one side
  const core::series_value* h = find_series(merged, t_merge_hist, "");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->buckets, (std::vector<uint64_t>{2, 2, 1}));
  EXPECT_EQ(h->count, 5u);
  EXPECT_DOUBLE_EQ(h->sum, 107);

  std::string out = core::render_prometheus(merged);
  EXPECT_EQ(family_text(out, "xerv_test_merge_seconds"),
            "# HELP xerv_test_merge_seconds Merged histogram.\n"
            "# TYPE xerv_test_merge_seconds histogram\n"
            "xerv_test_merge_seconds_bucket{le=\"1\"} 2\n"
            "xerv_test_merge_seconds_bucket{le=\"5\"} 4\n"
            "xerv_test_merge_seconds_bucket{le=\"+Inf\"} 5\n"
            "xerv_test_merge_seconds_sum 107\n"
            "xerv_test_merge_seconds_count 5\n");
  EXPECT_NE(out.find("\nxerv_test_merge_total{k=\"x\"} 14\n"), std::string::npos);

  // Merging into an empty snapshot copies.
  core::metrics_snapshot empty;
  empty.merge(first);
  EXPECT_EQ(find_series(empty, t_merge_total, "x")->value, 2);
}

TEST(metrics, values_are_per_thread) {
  auto value_here = [] {
    auto s = core::snapshot_this_thread();
    const core::series_value* v = find_series(s, t_thread_total, "");
    return v ? v->value : 0.0;
  };
  double before = value_here();
  t_thread_total.inc({}, 3);
  core::metrics_snapshot other = snapshot_of([] { t_thread_total.inc({}, 40); });
  core::metrics_snapshot mine = core::snapshot_this_thread();
  EXPECT_EQ(value_here(), before + 3);
  EXPECT_EQ(find_series(other, t_thread_total, "")->value, 40);
  // The other thread never touched the other families: it has no series for them.
  EXPECT_EQ(find_series(other, t_plain_total, ""), nullptr);
  EXPECT_EQ(other.families.size(), mine.families.size());
  mine.merge(other);
  EXPECT_EQ(find_series(mine, t_thread_total, "")->value, before + 43);
}

TEST(metrics, long_label_values) {
  // Keys longer than the stack buffer take the allocating path; both must agree.
  std::string a(200, 'a'), b(100, 'b');
  std::string a255(255, 'c');
  auto s = snapshot_of([&] {
    t_long_total.inc({a, b});
    t_long_total.inc({a, b});
    t_long_total.inc({"s", "t"});
    t_long_total.inc({a255, ""});  // exactly 256 bytes with the separator
    t_long_total.inc({a255, ""});
  });
  ASSERT_NE(find_series(s, t_long_total, a + "\x1f" + b), nullptr);
  EXPECT_EQ(find_series(s, t_long_total, a + "\x1f" + b)->value, 2);
  EXPECT_EQ(find_series(s, t_long_total, "s\x1ft")->value, 1);
  ASSERT_NE(find_series(s, t_long_total, a255 + "\x1f"), nullptr);
  EXPECT_EQ(find_series(s, t_long_total, a255 + "\x1f")->value, 2);
  EXPECT_EQ(s.families[t_long_total.id()].size(), 3u);
  std::string out = family_text(core::render_prometheus(s), "xerv_test_long_labels_total");
  EXPECT_NE(out.find("xerv_test_long_labels_total{a=\"" + a + "\",b=\"" + b + "\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("xerv_test_long_labels_total{a=\"" + a255 + "\",b=\"\"} 2\n"), std::string::npos);
}

TEST(metrics, number_formatting) {
  std::string out = family_text(render_of([] {
                                  t_number_gauge.set(0.25, {"quarter"});
                                  t_number_gauge.set(-7, {"negative"});
                                  t_number_gauge.set(1e20, {"huge"});
                                  t_number_gauge.set(123456789, {"int"});
                                  t_number_gauge.set(std::numeric_limits<double>::infinity(), {"inf"});
                                }),
                                "xerv_test_number_gauge");
  EXPECT_NE(out.find("{v=\"quarter\"} 0.25\n"), std::string::npos) << out;
  EXPECT_NE(out.find("{v=\"negative\"} -7\n"), std::string::npos) << out;
  EXPECT_NE(out.find("{v=\"huge\"} 1e+20\n"), std::string::npos) << out;
  EXPECT_NE(out.find("{v=\"int\"} 123456789\n"), std::string::npos) << out;
  EXPECT_NE(out.find("{v=\"inf\"} +Inf\n"), std::string::npos) << out;
}
