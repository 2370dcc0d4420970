// Triggers over the REST API (SPEC §3): cron (an every-second schedule fires
// about once a second with the documented input, GET /triggers shows its
// state, overlap: skip drops instants while a trace runs, bad params are
// invalid flows), and switching triggers off and on at run time, durably.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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

const char* k_switch_flow = R"(name: sw
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /sw, method: POST}}
  - {id: by_hand, type: manual}
  - {id: tick, type: cron, params: {schedule: "* * * * * *"}}
nodes:
  note: {type: std::log, config: {message: "x"}}
edges:
  - {from: hook, to: note}
  - {from: by_hand, to: note}
  - {from: tick, to: note}
)";

// The "triggers" entry of `id` in GET /api/v1/triggers.
std::string trigger_entry(api& s, const std::string& id) {
  std::string body = s.get("/api/v1/triggers").body;
  size_t at = body.find(R"({"id":")" + id + "\"");
  if (at == std::string::npos) return {};
  return body.substr(at, body.find('}', at) - at + 1);
}

TEST(triggers, disabled_triggers_do_not_fire_and_stay_disabled_across_restarts) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", k_switch_flow).status, 201);
  EXPECT_EQ(s.post("/sw", "{}").status, 202);
  EXPECT_NE(trigger_entry(s, "sw.hook").find(R"("enabled":true,"state":"active","fire_count":1)"), std::string::npos)
      << trigger_entry(s, "sw.hook");
  for (const char* id : {"sw.hook", "sw.by_hand", "sw.tick"}) {
    auto r = s.post(std::string("/api/v1/triggers/") + id + "/disable", "");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, std::string(R"({"id":")") + id + R"(","enabled":false})");
  }
  auto refused = s.post("/sw", "{}");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(json_field(refused.body, "error"), "trigger_disabled");
  EXPECT_EQ(s.post("/api/v1/triggers/sw.by_hand/fire", R"({"payload":{}})").status, 503);
  EXPECT_EQ(s.post("/api/v1/traces", R"({"pipeline_id":"sw","trigger":"by_hand","input":{}})").status, 503);
  EXPECT_NE(trigger_entry(s, "sw.hook").find(R"("enabled":false,"state":"disabled")"), std::string::npos);
  size_t before = total(s, "sw");
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  EXPECT_EQ(total(s, "sw"), before);  // the cron trigger is off too
  // An update keeps them off; unknown ids are 404.
  auto update = s.method("PUT", "/api/v1/pipelines/sw", k_switch_flow);
  EXPECT_EQ(update.status, 200) << update.body;
  EXPECT_EQ(s.post("/sw", "{}").status, 503);
  EXPECT_EQ(json_field(s.post("/api/v1/triggers/sw.nope/disable", "").body, "error"), "trigger_not_found");
  EXPECT_EQ(json_field(s.post("/api/v1/triggers/none.hook/enable", "").body, "error"), "pipeline_not_found");
  // After a restart: still off, until switched on.
  s.start();
  EXPECT_EQ(s.post("/sw", "{}").status, 503);
  EXPECT_EQ(s.post("/api/v1/triggers/sw.hook/enable", "").status, 200);
  EXPECT_EQ(s.post("/sw", "{}").status, 202);
  EXPECT_EQ(s.post("/api/v1/triggers/sw.by_hand/fire", R"({"payload":{}})").status, 503);
  s.start();
  EXPECT_EQ(s.post("/sw", "{}").status, 202);
  EXPECT_NE(trigger_entry(s, "sw.by_hand").find(R"("enabled":false)"), std::string::npos);
  EXPECT_NE(trigger_entry(s, "sw.tick").find(R"("enabled":false)"), std::string::npos);
}

// A flow from XERV_PIPELINES_DIR keeps its switched-off triggers too.
TEST(triggers, a_pipelines_dir_flow_keeps_its_disabled_triggers) {
  auto dir = std::filesystem::temp_directory_path() / ("xerv-sw-flows-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "sw.yaml") << k_switch_flow;
  api s({"XERV_PIPELINES_DIR=" + dir.string()});
  EXPECT_EQ(s.post("/api/v1/triggers/sw.hook/disable", "").status, 200);
  s.start({"XERV_PIPELINES_DIR=" + dir.string()});
  EXPECT_EQ(s.post("/sw", "{}").status, 503);
  std::filesystem::remove_all(dir);
}

const char* k_consumer = R"(name: consumer
version: "1"
triggers:
  - {id: inbox, type: queue, params: {queue: orders, capacity: 3}}
nodes:
  slow: {type: std::delay, config: {ms: 1500}}
edges:
  - {from: inbox, to: slow}
settings: {max_concurrent_executions: 1}
)";

// A queue is its consumer's inbox: a message is a durable trace of it (202),
// its input the message; the depth counts messages no trace has taken yet,
// up to the capacity (then 503 queue_full).
TEST(triggers, queue_messages_start_traces_of_the_consumer_up_to_its_capacity) {
  api s({"XERV_SHARDS=1"});
  ASSERT_EQ(s.post("/api/v1/pipelines", k_consumer).status, 201);
  std::vector<std::string> ids;
  for (int n = 0; n < 4; ++n) {  // one runs, three wait
    auto r = s.post("/api/v1/queues/orders/messages", R"({"n":)" + std::to_string(n) + "}");
    ASSERT_EQ(r.status, 202) << r.body;
    ids.push_back(json_field(r.body, "trace_id"));
  }
  auto full = s.post("/api/v1/queues/orders/messages", R"({"n":9})");
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(json_field(full.body, "error"), "queue_full");
  EXPECT_EQ(json_number(full.body, "capacity"), 3);
  auto queues = s.get("/api/v1/queues").body;
  EXPECT_NE(queues.find(R"({"name":"orders","pipeline_id":"consumer","trigger":"inbox","depth":3,"capacity":3})"),
            std::string::npos)
      << queues;
  EXPECT_NE(s.get("/metrics").body.find("xerv_queue_depth{queue=\"orders\"} 3"), std::string::npos);
  EXPECT_NE(s.get("/api/v1/traces/" + ids[2]).body.find(R"("input":{"n":2})"), std::string::npos);
  EXPECT_NE(trigger_entry(s, "consumer.inbox").find(R"("queue":"orders","capacity":3)"), std::string::npos)
      << trigger_entry(s, "consumer.inbox");
  // Unknown queue; a second consumer of the same queue is refused.
  auto unknown = s.post("/api/v1/queues/nope/messages", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json_field(unknown.body, "error"), "queue_not_found");
  std::string second = k_consumer;
  second.replace(second.find("name: consumer"), 14, "name: another");
  auto dup = s.post("/api/v1/pipelines", second);
  EXPECT_EQ(dup.status, 400);
  EXPECT_NE(dup.body.find("queue 'orders' is already consumed by pipeline 'consumer'"), std::string::npos) << dup.body;
  auto bad = s.post("/api/v1/pipelines", std::string(k_consumer).replace(std::string(k_consumer).find("capacity: 3"), 11,
                                                                         "capacity: 0"));
  EXPECT_NE(bad.body.find("capacity must be an integer between 1 and 1000000"), std::string::npos) << bad.body;
  // As traces take them, the depth goes down and room comes back.
  std::string body;
  for (int i = 0; i < 200 && json_number(body, "depth") != 2; ++i) {
    body = s.get("/api/v1/queues").body;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(json_number(body, "depth"), 2) << body;
  EXPECT_EQ(s.post("/api/v1/queues/orders/messages", R"({"n":5})").status, 202);
}

// std::enqueue: one pipeline feeds another through a queue (the message is a
// durable trace of the consumer before the node completes).
TEST(triggers, std_enqueue_feeds_another_pipeline) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", R"(name: sink
version: "1"
triggers:
  - {id: inbox, type: queue, params: {queue: work}}
nodes:
  note: {type: std::log, config: {message: "got it"}}
edges:
  - {from: inbox, to: note}
)").status,
            201);
  ASSERT_EQ(s.post("/api/v1/pipelines", R"(name: source
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /source, method: POST, respond: sync}}
nodes:
  send: {type: std::enqueue, config: {queue: work, payload: $.order}}
  lost: {type: std::enqueue, config: {queue: nowhere}}
edges:
  - {from: hook, to: send}
  - {from: send, to: lost}
)").status,
            201);
  auto r = s.post("/source", R"({"order":{"id":7}})");
  // The second node fails (nobody consumes `nowhere`); the first one sent its message.
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_NE(r.body.find("std::enqueue to 'nowhere': no pipeline consumes it"), std::string::npos) << r.body;
  std::string consumer;
  for (int i = 0; i < 200 && consumer.empty(); ++i) {
    auto list = s.get("/api/v1/traces?pipeline_id=sink&limit=1").body;
    consumer = json_field(list, "trace_id");
    if (consumer.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(consumer.empty());
  EXPECT_NE(s.get("/api/v1/traces/" + consumer).body.find(R"("input":{"id":7})"), std::string::npos);
  EXPECT_EQ(total(s, "sink"), 1u);
  // Only top-level nodes: a message per node of a trace, not per item.
  auto bad = s.post("/api/v1/pipelines", R"(name: fanout
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /fanout, method: POST}}
nodes:
  each: {type: std::split, config: {field: $.items}}
  send: {type: std::enqueue, config: {queue: work}}
edges:
  - {from: hook, to: each}
  - {from: each.out, to: send}
)");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("std::enqueue cannot run inside the body of 'each'"), std::string::npos) << bad.body;
}

}  // namespace
