// The REST API of SPEC §8 against the real xerv binary: pipelines, traces, logs and
// their SSE stream, triggers, webhooks, lifecycle, errors and restarts.

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/integration/api_server.h"

using namespace xerv::testing;
using namespace std::chrono_literals;

namespace {

const char* k_flow = R"(name: greet
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/greet, method: POST, respond: sync}}
  - {id: later, type: webhook, params: {path: /hooks/greet-async, respond: async}}
  - {id: manual, type: manual}
nodes:
  hello: {type: std::log, config: {message: "hello ${input.name}"}}
  pause: {type: std::delay, config: {ms: DELAY}}
  bye: {type: std::log, config: {message: "bye ${hello.name}"}}
edges:
  - {from: hook, to: hello}
  - {from: later, to: hello}
  - {from: manual, to: hello}
  - {from: hello, to: pause}
  - {from: pause, to: bye}
settings: {max_concurrent_executions: MAXC}
)";

std::string flow(int delay_ms = 1, int max_concurrent = 100) {
  std::string f = k_flow;
  f.replace(f.find("DELAY"), 5, std::to_string(delay_ms));
  f.replace(f.find("MAXC"), 4, std::to_string(max_concurrent));
  return f;
}

TEST(api, deploy_list_get_validate_update_delete) {
  api s;
  auto created = s.post("/api/v1/pipelines", flow());
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(json_field(created.body, "state"), "running");
  EXPECT_NE(created.body.find(R"("nodes":[{"name":"hello","type":"std::log"})"), std::string::npos) << created.body;

  auto list = s.get("/api/v1/pipelines");
  EXPECT_EQ(list.status, 200);
  EXPECT_NE(list.body.find(R"("count":1)"), std::string::npos) << list.body;

  auto one = s.get("/api/v1/pipelines/greet");
  EXPECT_EQ(one.status, 200);
  EXPECT_NE(one.body.find(R"("traces_started":0)"), std::string::npos) << one.body;

  auto valid = s.post("/api/v1/pipelines/validate", flow());
  EXPECT_EQ(valid.status, 200);
  EXPECT_NE(valid.body.find(R"("valid":true)"), std::string::npos);
  auto invalid = s.post("/api/v1/pipelines/validate", "name: x\ntriggers: [{id: t, type: manual}]\nnodes:\n  a: {type: std::nope}\nedges:\n  - {from: t, to: b}\n");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(json_field(invalid.body, "error"), "invalid_flow");
  EXPECT_NE(invalid.body.find(R"({"line":4,"column":13,"message":"node 'a': unknown node type 'std::nope')"), std::string::npos)
      << invalid.body;
  EXPECT_NE(invalid.body.find(R"("line":6)"), std::string::npos) << invalid.body;  // every problem, not the first

  auto updated = s.method("PUT", "/api/v1/pipelines/greet", flow(2));
  EXPECT_EQ(updated.status, 200) << updated.body;
  std::string other = flow();
  other.replace(other.find("name: greet"), 11, "name: other");
  auto mismatch = s.method("PUT", "/api/v1/pipelines/greet", other);
  EXPECT_EQ(mismatch.status, 400);

  auto gone = s.method("DELETE", "/api/v1/pipelines/greet");
  EXPECT_EQ(gone.status, 200);
  auto missing = s.get("/api/v1/pipelines/greet");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json_field(missing.body, "error"), "pipeline_not_found");
  EXPECT_EQ(s.method("DELETE", "/api/v1/pipelines/greet").status, 404);
}

TEST(api, webhooks_sync_and_async) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
  auto sync = s.post("/hooks/greet", R"({"name":"ada"})");
  EXPECT_EQ(sync.status, 200) << sync.body;
  EXPECT_EQ(sync.body, R"({"name":"ada"})");  // the trace output itself
  EXPECT_FALSE(sync.headers["x-xerv-trace-id"].empty());

  auto async = s.post("/hooks/greet-async", R"({"name":"bob"})");
  EXPECT_EQ(async.status, 202);
  std::string id = json_field(async.body, "trace_id");
  ASSERT_EQ(id.size(), 36u) << async.body;
  EXPECT_EQ(async.headers["x-xerv-trace-id"], id);
  client::response t;
  for (int i = 0; i < 100; ++i) {
    t = s.get("/api/v1/traces/" + id);
    if (json_field(t.body, "status") == "completed") break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(json_field(t.body, "status"), "completed") << t.body;
  EXPECT_NE(t.body.find(R"("output":{"name":"bob"})"), std::string::npos) << t.body;
  EXPECT_NE(t.body.find(R"("hello":{"status":"completed","port":"out")"), std::string::npos) << t.body;
  EXPECT_NE(t.body.find(R"("hook":{"status":"skipped")"), std::string::npos) << t.body;

  auto bad = s.post("/hooks/greet", R"({"name": oops})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json_field(bad.body, "error"), "invalid_payload");
  EXPECT_NE(bad.body.find(R"("details":{"offset":9})"), std::string::npos) << bad.body;
  EXPECT_EQ(s.post("/hooks/none", "{}").status, 404);
}

TEST(api, post_traces_with_and_without_wait) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
  auto waited = s.post("/api/v1/traces", R"({"pipeline_id":"greet","input":{"name":"cy"},"wait":true})");
  EXPECT_EQ(waited.status, 200) << waited.body;
  EXPECT_EQ(json_field(waited.body, "status"), "completed");
  EXPECT_NE(waited.body.find(R"("output":{"name":"cy"})"), std::string::npos);
  auto queued = s.post("/api/v1/traces", R"({"pipeline_id":"greet","input":{"name":"di"}})");
  EXPECT_EQ(queued.status, 202);
  EXPECT_EQ(json_field(queued.body, "trace_id").size(), 36u);
  EXPECT_EQ(s.post("/api/v1/traces", R"({"pipeline_id":"nope"})").status, 404);
  EXPECT_EQ(s.post("/api/v1/traces", R"({"input":1})").status, 400);
  EXPECT_EQ(s.get("/api/v1/traces/00000000-0000-0000-0000-000000000000").status, 404);
  auto bad_id = s.get("/api/v1/traces/not-an-id");
  EXPECT_EQ(bad_id.status, 404);
  EXPECT_EQ(json_field(bad_id.body, "error"), "trace_not_found");
}

TEST(api, trace_list_filters_and_pages) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
  for (int i = 0; i < 7; ++i)
    ASSERT_EQ(s.post("/api/v1/traces", R"({"pipeline_id":"greet","input":{"name":"n"},"wait":true})").status, 200);
  auto all = s.get("/api/v1/traces?pipeline_id=greet&status=completed&limit=3&offset=2");
  EXPECT_EQ(all.status, 200);
  EXPECT_NE(all.body.find(R"("total":7,"offset":2,"limit":3)"), std::string::npos) << all.body;
  size_t n = 0;
  for (size_t p = all.body.find("\"trace_id\""); p != std::string::npos; p = all.body.find("\"trace_id\"", p + 1)) ++n;
  EXPECT_EQ(n, 3u);
  EXPECT_NE(s.get("/api/v1/traces?pipeline_id=other").body.find(R"("total":0)"), std::string::npos);
  EXPECT_EQ(s.get("/api/v1/traces?limit=5000").status, 400);
  EXPECT_EQ(s.get("/api/v1/traces?status=weird").status, 400);
}

TEST(api, finished_traces_beyond_the_store_cap_go_oldest_first_running_ones_stay) {
  api s({"XERV_SHARDS=1", "XERV_TRACE_STORE_MAX=3"});
  ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
  std::string slow = flow(5000);
  for (size_t at; (at = slow.find("greet")) != std::string::npos;) slow.replace(at, 5, "slow");
  ASSERT_EQ(s.post("/api/v1/pipelines", slow).status, 201);
  auto running = s.post("/api/v1/traces", R"({"pipeline_id":"slow","input":{"name":"s"}})");
  ASSERT_EQ(running.status, 202);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = s.post("/api/v1/traces", R"({"pipeline_id":"greet","input":{"name":"n"},"wait":true})");
    ASSERT_EQ(r.status, 200) << r.body;
    ids.push_back(json_field(r.body, "trace_id"));
  }
  EXPECT_NE(s.get("/api/v1/traces?pipeline_id=greet").body.find(R"("total":3)"), std::string::npos);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.get("/api/v1/traces/" + ids[i]).status, i < 2 ? 404 : 200) << i;
  auto still = s.get("/api/v1/traces/" + json_field(running.body, "trace_id"));
  EXPECT_EQ(still.status, 200);
  EXPECT_EQ(json_field(still.body, "status"), "running");
}

TEST(api, logs_and_live_log_stream) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flow(300)).status, 201);
  auto started = s.post("/api/v1/traces", R"({"pipeline_id":"greet","input":{"name":"eve"}})");
  std::string id = json_field(started.body, "trace_id");
  ASSERT_FALSE(id.empty());
  // Subscribe while the trace waits in std::delay: the second line arrives live.
  client c(s.port);
  c.send(get("/api/v1/traces/" + id + "/logs/stream"));
  auto stream = c.read_response(5000);
  ASSERT_TRUE(stream.complete) << c.buffer();
  EXPECT_EQ(stream.headers["content-type"], "text/event-stream");
  EXPECT_NE(stream.body.find(R"("node":"hello","message":"hello eve")"), std::string::npos) << stream.body;
  EXPECT_NE(stream.body.find(R"("node":"bye","message":"bye eve")"), std::string::npos) << stream.body;
  EXPECT_NE(stream.body.find("event: end\ndata: {\"status\":\"completed\"}"), std::string::npos) << stream.body;
  auto logs = s.get("/api/v1/traces/" + id + "/logs");
  EXPECT_EQ(logs.status, 200);
  // SPEC §8: RFC 3339 UTC with milliseconds, e.g. 2026-01-31T12:00:00.123Z.
  const std::string head = R"({"logs":[{"timestamp":")";
  ASSERT_EQ(logs.body.rfind(head, 0), 0u) << logs.body;
  std::string ts = logs.body.substr(head.size(), 24);
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  for (size_t i = 0; i < shape.size(); ++i)
    EXPECT_TRUE(shape[i] == 'd' ? isdigit(static_cast<unsigned char>(ts[i])) != 0 : ts[i] == shape[i]) << ts;
  EXPECT_EQ(logs.body.substr(head.size() + 24, 9), R"(","level")") << logs.body;
  EXPECT_NE(logs.body.find(R"("level":"info","node":"bye","message":"bye eve"})"), std::string::npos) << logs.body;
  std::string other = id.substr(0, 35) + (id.back() == 'f' ? "e" : "f");  // never the same id
  EXPECT_EQ(s.get("/api/v1/traces/" + other + "/logs/stream").status, 404);
}

TEST(api, lifecycle_states_and_errors) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
  EXPECT_EQ(json_field(s.post("/api/v1/pipelines/greet/pause", "").body, "state"), "paused");
  auto refused = s.post("/hooks/greet", "{}");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(json_field(refused.body, "error"), "pipeline_not_running");
  EXPECT_NE(refused.body.find(R"("state":"paused")"), std::string::npos);
  EXPECT_EQ(json_field(s.post("/api/v1/pipelines/greet/resume", "").body, "state"), "running");
  EXPECT_EQ(s.post("/hooks/greet", "{}").status, 200);
  EXPECT_EQ(json_field(s.post("/api/v1/pipelines/greet/drain", "").body, "state"), "stopped");  // nothing in flight
  EXPECT_EQ(s.post("/hooks/greet", "{}").status, 503);
  EXPECT_EQ(json_field(s.post("/api/v1/pipelines/greet/start", "").body, "state"), "running");
  EXPECT_EQ(json_field(s.post("/api/v1/pipelines/greet/stop", "").body, "state"), "stopped");
  EXPECT_EQ(s.post("/api/v1/pipelines/nope/start", "").status, 404);
}

TEST(api, triggers_list_and_fire) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
  auto list = s.get("/api/v1/triggers");
  EXPECT_EQ(list.status, 200);
  EXPECT_NE(list.body.find(R"("id":"greet.hook","pipeline_id":"greet","trigger":"hook","type":"webhook","path":"/hooks/greet","method":"POST","respond":"sync")"),
            std::string::npos)
      << list.body;
  auto fired = s.post("/api/v1/triggers/greet.manual/fire", R"({"payload":{"name":"fay"}})");
  EXPECT_EQ(fired.status, 202) << fired.body;
  EXPECT_EQ(s.post("/api/v1/triggers/greet.nothing/fire", "{}").status, 404);
}

// Idempotency-Key on POST /traces (with wait: the original result) and on a
// trigger fire; a key is per pipeline and per endpoint's pipeline alike.
TEST(api, idempotency_key_on_post_traces_and_trigger_fire) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
  auto post = [&](const std::string& body, const std::string& key) {
    return s.call(xerv::testing::post("/api/v1/traces", body, "Idempotency-Key: " + key + "\r\n"));
  };
  auto first = post(R"({"pipeline_id":"greet","input":{"name":"cy"},"wait":true})", "t-1");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.headers.count("idempotency-replayed"), 0u);
  auto again = post(R"({"pipeline_id":"greet","input":{"name":"other"},"wait":true})", "t-1");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, first.body);  // the original result, not a run with the new input
  EXPECT_EQ(again.headers["idempotency-replayed"], "true");
  auto async = post(R"({"pipeline_id":"greet","input":{"name":"x"}})", "t-1");
  EXPECT_EQ(async.status, 202);
  EXPECT_EQ(json_field(async.body, "trace_id"), json_field(first.body, "trace_id"));
  auto fire = [&](const std::string& key) {
    return s.call(xerv::testing::post("/api/v1/triggers/greet.manual/fire", R"({"payload":{"name":"fay"}})",
                                      "Idempotency-Key: " + key + "\r\n"));
  };
  auto f1 = fire("f-1");
  ASSERT_EQ(f1.status, 202) << f1.body;
  auto f2 = fire("f-1");
  EXPECT_EQ(json_field(f2.body, "trace_id"), json_field(f1.body, "trace_id"));
  EXPECT_EQ(f2.headers["idempotency-replayed"], "true");
  EXPECT_NE(json_field(fire("f-2").body, "trace_id"), json_field(f1.body, "trace_id"));
  auto bad = s.call(xerv::testing::post("/api/v1/traces", R"({"pipeline_id":"greet"})", "Idempotency-Key: a b\r\n"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json_field(bad.body, "error"), "invalid_payload");
  // Three traces in all: t-1, f-1, f-2.
  auto listed = s.get("/api/v1/traces?pipeline_id=greet");
  EXPECT_NE(listed.body.find("\"total\":3"), std::string::npos) << listed.body.substr(0, 300);
}

TEST(api, failed_sync_webhook_is_500_execution_failed) {
  api s;
  std::string f = R"(name: fails
triggers: [{id: hook, type: webhook, params: {path: /fail, respond: sync}}]
nodes:
  each: {type: std::split, config: {field: $.items}}
  body: {type: std::log}
edges:
  - {from: hook, to: each}
  - {from: each.out, to: body}
)";
  ASSERT_EQ(s.post("/api/v1/pipelines", f).status, 201);
  auto r = s.post("/fail", R"({"items":"not a list"})");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(json_field(r.body, "error"), "execution_failed");
  EXPECT_NE(r.body.find(R"("status":"failed","code":"invalid_input","node":"each")"), std::string::npos) << r.body;
  EXPECT_FALSE(r.headers["x-xerv-trace-id"].empty());
}

TEST(api, pending_queue_beyond_max_concurrent_executions) {
  api s({"XERV_SHARDS=1"});
  ASSERT_EQ(s.post("/api/v1/pipelines", flow(200, 1)).status, 201);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.post("/hooks/greet-async", "{}").status, 202);
  auto p = s.get("/api/v1/pipelines/greet");
  EXPECT_NE(p.body.find(R"("active_traces":1,"pending_traces":2)"), std::string::npos) << p.body;
  auto m = s.get("/metrics");
  EXPECT_NE(m.body.find("xerv_pending_traces{pipeline=\"greet\"} 2"), std::string::npos) << m.body;
  std::this_thread::sleep_for(900ms);
  auto after = s.get("/api/v1/pipelines/greet");
  EXPECT_NE(after.body.find(R"("traces_completed":3)"), std::string::npos) << after.body;
  auto m2 = s.get("/metrics");
  EXPECT_NE(m2.body.find("xerv_completed_traces_total 3"), std::string::npos) << m2.body;
  EXPECT_NE(m2.body.find("xerv_nodes_executed_total 9"), std::string::npos) << m2.body;
  EXPECT_NE(m2.body.find("xerv_trace_duration_seconds_count{pipeline=\"greet\"} 3"), std::string::npos);
  EXPECT_NE(m2.body.find("xerv_node_execution_seconds_count{node_type=\"std::delay\"} 3"), std::string::npos);
}

// Starts xerv again on `dir` (then removes it) and reads pipeline greet's state.
std::string state_after_restart(const std::filesystem::path& dir, int shards) {
  xerv_process again({"XERV_SHARDS=" + std::to_string(shards), "XERV_DATA_DIR=" + dir.string()});
  uint16_t port = again.wait_ready();
  EXPECT_NE(port, 0) << again.log();
  std::string state;
  if (port) {
    client c(port);
    c.send(get("/api/v1/pipelines/greet"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200) << r.body;
    state = json_field(r.body, "state");
  }
  std::filesystem::remove_all(dir);
  return state;
}

// A drain is stored as draining (so that other nodes drain too); a restart in
// the middle of one comes back stopped, where the drain was going.
TEST(api, a_drain_cut_short_by_kill_9_comes_back_stopped) {
  std::filesystem::path dir;
  {
    api s({"XERV_SHARDS=1"});
    s.keep_dir = true;
    dir = s.dir;
    ASSERT_EQ(s.post("/api/v1/pipelines", flow(3000)).status, 201);
    ASSERT_EQ(s.post("/hooks/greet-async", "{}").status, 202);
    auto drained = s.post("/api/v1/pipelines/greet/drain", "");
    ASSERT_EQ(drained.status, 200) << drained.body;
    EXPECT_EQ(json_field(drained.body, "state"), "draining") << drained.body;
    s.proc->signal(SIGKILL);
  }
  EXPECT_EQ(state_after_restart(dir, 1), "stopped");
}

TEST(api, deployed_pipelines_and_their_state_survive_a_restart) {
  std::filesystem::path dir;
  {
    api s;
    s.keep_dir = true;
    dir = s.dir;
    ASSERT_EQ(s.post("/api/v1/pipelines", flow()).status, 201);
    ASSERT_EQ(s.post("/api/v1/pipelines/greet/pause", "").status, 200);
    s.proc->signal(SIGKILL);  // no graceful stop: the data dir must already hold it
  }
  EXPECT_EQ(state_after_restart(dir, 2), "paused");
}

TEST(api, pipelines_dir_is_loaded_at_start) {
  auto dir = std::filesystem::temp_directory_path() / ("xerv-flows-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "greet.yaml") << flow();
  }
  api s({"XERV_PIPELINES_DIR=" + dir.string()});
  EXPECT_EQ(s.post("/hooks/greet", R"({"name":"gus"})").status, 200);
  // A broken flow there stops start-up with file:line:column.
  {
    std::ofstream(dir / "broken.yaml") << "name: broken\ntriggers: []\n";
  }
  auto [code, out] = run_xerv_expect_exit({"XERV_PIPELINES_DIR=" + dir.string(), "XERV_DATA_DIR=" + (dir / "data").string()});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("broken.yaml:1:1: at least one trigger is required"), std::string::npos) << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
