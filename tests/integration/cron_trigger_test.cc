// Cron triggers over the REST API (SPEC §3): an every-second schedule fires
// about once a second with the documented input, GET /triggers shows its
// state, overlap: skip drops instants while a trace runs, and bad params are
// invalid flows.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/api_server.h"

using xerv::testing::api;
using xerv::testing::json_field;
using xerv::testing::json_number;

namespace {

std::string cron_flow(const std::string& name, const std::string& params, const std::string& node) {
  return "name: " + name + R"(
version: "1"
triggers:
  - {id: every, type: cron, params: {)" + params + R"(}}
nodes:
  work: )" + node + R"(
edges:
  - {from: every, to: work}
)";
}

size_t total(api& s, const std::string& pipeline) {
  auto r = s.get("/api/v1/traces?pipeline_id=" + pipeline + "&limit=1000");
  long long t = json_number(r.body, "total");
  EXPECT_GE(t, 0) << r.body;
  return size_t(std::max(t, 0ll));
}

TEST(cron_trigger, an_every_second_schedule_fires_about_once_a_second) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines",
                   cron_flow("tick", R"(schedule: "*/1 * * * * *", timezone: Europe/Berlin)",
                             R"({type: std::log, config: {message: "tick"}})"))
                .status,
            201);
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(4200));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t n = total(s, "tick");
  EXPECT_GE(n, size_t(secs) - 1);  // (the first instant comes up to a second after the deploy)
  EXPECT_LE(n, size_t(secs) + 1);
  // The input names the instant (a whole second), when it fired and the trigger.
  auto list = s.get("/api/v1/traces?pipeline_id=tick&limit=1");
  std::string id = json_field(list.body, "trace_id");
  auto t = s.get("/api/v1/traces/" + id);
  EXPECT_NE(t.body.find(R"("trigger":"tick.every")"), std::string::npos) << t.body;
  size_t at = t.body.find(R"("scheduled_at":")");
  ASSERT_NE(at, std::string::npos) << t.body;
  EXPECT_EQ(t.body.substr(at + 35, 5), ".000Z") << t.body;
  EXPECT_NE(t.body.find(R"("fired_at":")"), std::string::npos);
  auto triggers = s.get("/api/v1/triggers").body;
  EXPECT_NE(triggers.find(R"("schedule":"*/1 * * * * *","timezone":"Europe/Berlin","missed":"run_once","overlap":"allow")"),
            std::string::npos)
      << triggers;
  EXPECT_GE(json_number(triggers, "fire_count"), (long long)n) << triggers;
  EXPECT_LE(json_number(triggers, "fire_count"), (long long)n + 1) << triggers;  // (one may fire meanwhile)
  EXPECT_NE(json_field(triggers, "next_fire_at"), "");
  EXPECT_NE(json_field(triggers, "last_fired_at"), "");
  // Paused: no fires; deleted: none either.
  ASSERT_EQ(s.post("/api/v1/pipelines/tick/pause", "").status, 200);
  size_t paused = total(s, "tick");
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_LE(total(s, "tick"), paused + 1);  // (one may have been admitted as it paused)
}

TEST(cron_trigger, overlap_skip_drops_instants_while_a_trace_runs) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", cron_flow("slow", R"(schedule: "* * * * * *", overlap: skip)",
                                                  R"({type: std::delay, config: {ms: 2500}})"))
                .status,
            201);
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));
  size_t n = total(s, "slow");
  EXPECT_GE(n, 1u);
  EXPECT_LE(n, 2u);  // at most one every 2.5 s
  auto triggers = s.get("/api/v1/triggers").body;
  EXPECT_GE(json_number(triggers, "skipped_count"), 2) << triggers;
}

TEST(cron_trigger, bad_params_are_invalid_flows) {
  api s;
  auto r = s.post("/api/v1/pipelines", cron_flow("bad", R"(schedule: "* * * *", timezone: Nowhere/City)",
                                                 R"({type: std::log, config: {message: "x"}})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_field(r.body, "error"), "invalid_flow");
  EXPECT_NE(r.body.find("a schedule has 5 fields"), std::string::npos) << r.body;
  r = s.post("/api/v1/pipelines", cron_flow("bad", R"(schedule: "* * * * *", timezone: Nowhere/City)",
                                            R"({type: std::log, config: {message: "x"}})"));
  EXPECT_NE(r.body.find("unknown time zone 'Nowhere/City'"), std::string::npos) << r.body;
}

}  // namespace
