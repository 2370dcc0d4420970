// The circuit breaker (SPEC §4) through the real binary on 2 shards: failures
// counted over both shards open it, 503 circuit_open while open, half-open
// after XERV_CIRCUIT_OPEN (shortened here), closed after 3 successful trials,
// open again after a failed one. Each request is a new connection, so the
// traces spread over both shards.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/api_server.h"

using namespace xerv::testing;
using namespace std::chrono_literals;

namespace {

// Fails when "items" is not an array.
std::string flaky(const std::string& threshold = "0.05") {
  return "name: flaky\nsettings: {circuit_breaker_threshold: " + threshold + "}\n"
         "triggers: [{id: hook, type: webhook, params: {path: /flaky, respond: sync}}]\n"
         "nodes:\n  each: {type: std::split, config: {field: $.items}}\n  body: {type: std::log}\n"
         "edges:\n  - {from: hook, to: each}\n  - {from: each.out, to: body}\n";
}
const std::string bad = R"({"items":"not a list"})";
const std::string good = R"({"items":[1]})";

std::string circuit_state(api& s) {
  auto r = s.get("/api/v1/pipelines/flaky");
  size_t at = r.body.find("\"circuit\":{\"state\":\"");
  if (at == std::string::npos) return "missing in " + r.body;
  at += 20;
  return r.body.substr(at, r.body.find('"', at) - at);
}

std::string gauge(api& s) {
  auto m = s.get("/metrics").body;
  std::string needle = "xerv_circuit_state{pipeline=\"flaky\"} ";
  size_t at = m.find(needle);
  return at == std::string::npos ? "missing" : m.substr(at + needle.size(), 1);
}

void open_it(api& s) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.post("/flaky", bad).status, 500) << "failure " << i;
}

}  // namespace

TEST(circuit_breaker, five_failures_over_both_shards_open_it_and_three_trials_close_it) {
  api s({"XERV_CIRCUIT_OPEN=500ms"});
  ASSERT_EQ(s.post("/api/v1/pipelines", flaky()).status, 201);
  EXPECT_EQ(circuit_state(s), "closed");
  ASSERT_EQ(s.post("/flaky", good).status, 200);
  open_it(s);
  // The sixth is refused, whichever shard it reaches, and so is every other way in.
  for (int i = 0; i < 4; ++i) {
    auto r = s.post("/flaky", good);
    ASSERT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(json_field(r.body, "error"), "circuit_open") << r.body;
    EXPECT_NE(r.body.find("\"retry_after_secs\":1"), std::string::npos) << r.body;
    EXPECT_EQ(r.headers["retry-after"], "1");
  }
  auto api_trace = s.post("/api/v1/traces", R"({"pipeline_id":"flaky","input":{"items":[1]}})");
  EXPECT_EQ(api_trace.status, 503);
  EXPECT_EQ(json_field(api_trace.body, "error"), "circuit_open");
  EXPECT_EQ(circuit_state(s), "open");
  EXPECT_EQ(gauge(s), "1");
  EXPECT_NE(s.get("/metrics").body.find("xerv_circuit_opened_total{pipeline=\"flaky\"} 1"), std::string::npos);

  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(circuit_state(s), "half_open");
  EXPECT_EQ(gauge(s), "2");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s.post("/flaky", good).status, 200) << "trial " << i;
  EXPECT_EQ(circuit_state(s), "closed");
  EXPECT_EQ(gauge(s), "0");
  // Closed with a fresh window: one failure is one failure.
  EXPECT_EQ(s.post("/flaky", bad).status, 500);
  EXPECT_EQ(s.post("/flaky", good).status, 200);
}

TEST(circuit_breaker, a_failed_trial_opens_it_again) {
  api s({"XERV_CIRCUIT_OPEN=500ms"});
  ASSERT_EQ(s.post("/api/v1/pipelines", flaky()).status, 201);
  open_it(s);
  std::this_thread::sleep_for(600ms);
  ASSERT_EQ(circuit_state(s), "half_open");
  EXPECT_EQ(s.post("/flaky", good).status, 200);
  EXPECT_EQ(s.post("/flaky", bad).status, 500);
  auto r = s.post("/flaky", good);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(json_field(r.body, "error"), "circuit_open");
  EXPECT_EQ(circuit_state(s), "open");
  // An update keeps the breaker; a delete and a new deploy start closed.
  ASSERT_EQ(s.method("PUT", "/api/v1/pipelines/flaky", flaky()).status, 200);
  EXPECT_EQ(circuit_state(s), "open");
  ASSERT_EQ(s.method("DELETE", "/api/v1/pipelines/flaky").status, 200);
  ASSERT_EQ(s.post("/api/v1/pipelines", flaky()).status, 201);
  EXPECT_EQ(circuit_state(s), "closed");
  EXPECT_EQ(s.post("/flaky", good).status, 200);
}

TEST(circuit_breaker, failures_under_the_threshold_ratio_keep_it_closed) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flaky("0.5")).status, 201);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(s.post("/flaky", good).status, 200);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.post("/flaky", bad).status, 500);  // 5 of 15: a third
  EXPECT_EQ(s.post("/flaky", good).status, 200);
  auto p = s.get("/api/v1/pipelines/flaky").body;
  EXPECT_NE(p.find(R"("circuit":{"state":"closed","window_failed":5,"window_traces":16})"), std::string::npos) << p;
  for (int i = 0; i < 6; ++i) ASSERT_EQ(s.post("/flaky", bad).status, 500);  // 11 of 22: a half
  EXPECT_EQ(s.post("/flaky", good).status, 200) << "a ratio equal to the threshold does not open it";
  EXPECT_EQ(s.post("/flaky", bad).status, 500);  // 12 of 24: a half again
  EXPECT_EQ(s.post("/flaky", good).status, 200);
  EXPECT_EQ(s.post("/flaky", bad).status, 500);  // 13 of 26: a half
  EXPECT_EQ(s.post("/flaky", bad).status, 500);  // 14 of 27: over a half
  EXPECT_EQ(s.post("/flaky", good).status, 503);
}
