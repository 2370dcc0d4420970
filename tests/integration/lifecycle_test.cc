// Pipelines and traces across updates, deletes, concurrent deploys, restarts and
// shutdown, against the real binary (issue 9's regression tests; each names the
// bug it guards against).

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <set>
#include <thread>

#include "tests/integration/api_server.h"

using namespace xerv::testing;
using namespace std::chrono_literals;

namespace {

// A pipeline with two async webhooks, a delay, and a concurrency limit.
std::string slow_flow(const std::string& name, const std::string& version, int delay_ms, int max_concurrent,
                      bool second_trigger = true) {
  std::string f = "name: " + name + "\nversion: \"" + version + "\"\ntriggers:\n" +
                  "  - {id: a, type: webhook, params: {path: /" + name + "/a, respond: async}}\n";
  if (second_trigger) f += "  - {id: b, type: webhook, params: {path: /" + name + "/b, respond: async}}\n";
  f += "  - {id: manual, type: manual}\nnodes:\n  pause: {type: std::delay, config: {ms: " + std::to_string(delay_ms) +
       "}}\nedges:\n  - {from: a, to: pause}\n";
  if (second_trigger) f += "  - {from: b, to: pause}\n";
  f += "  - {from: manual, to: pause}\nsettings: {max_concurrent_executions: " + std::to_string(max_concurrent) +
       ", execution_timeout_ms: 120000, node_timeout_ms: 120000}\n";
  return f;
}

// Polls GET /traces/{id} until its status is `want` (or `limit` passes).
std::string wait_status(api& s, const std::string& id, const std::string& want, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  std::string body;
  while (std::chrono::steady_clock::now() < end) {
    body = s.get("/api/v1/traces/" + id).body;
    if (json_field(body, "status") == want) return body;
    std::this_thread::sleep_for(20ms);
  }
  return body;
}

std::string number_field(const std::string& body, const std::string& name) {
  std::string needle = "\"" + name + "\":";
  size_t at = body.find(needle);
  if (at == std::string::npos) return {};
  at += needle.size();
  return body.substr(at, body.find_first_of(",}", at) - at);
}

// Bug 1: a queued trace whose trigger an update removed used to dereference a
// null trigger when it started (the process died).
TEST(lifecycle, queued_trace_runs_on_the_version_it_was_admitted_with) {
  api s({"XERV_SHARDS=1"});
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("upd", "1", 300, 1)).status, 201);
  auto running = s.post("/upd/a", "{}");
  auto queued = s.post("/upd/b", R"({"via":"b"})");
  ASSERT_EQ(running.status, 202);
  ASSERT_EQ(queued.status, 202);
  ASSERT_NE(s.get("/api/v1/pipelines/upd").body.find(R"("pending_traces":1)"), std::string::npos);
  // Version 2 has no trigger b; the queued trace still runs version 1.
  auto updated = s.method("PUT", "/api/v1/pipelines/upd", slow_flow("upd", "2", 300, 1, false));
  ASSERT_EQ(updated.status, 200) << updated.body;
  std::string id = json_field(queued.body, "trace_id");
  std::string t = wait_status(s, id, "completed", 5s);
  EXPECT_EQ(json_field(t, "status"), "completed") << t << s.proc->log();
  EXPECT_EQ(json_field(t, "version"), "1") << t;
  EXPECT_EQ(json_field(t, "trigger"), "b") << t;
  EXPECT_NE(t.find(R"("output":{"via":"b"})"), std::string::npos) << t;
  EXPECT_EQ(s.get("/health").status, 200);
}

// Bug 2: deleting a pipeline and deploying it again while its old traces ran
// made their end decrement the new pipeline's slot count (underflow): it never
// admitted again.
TEST(lifecycle, redeploy_after_delete_while_old_traces_run_keeps_admitting) {
  api s({"XERV_SHARDS=1"});
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("again", "1", 300, 1)).status, 201);
  auto old = s.post("/again/a", "{}");
  ASSERT_EQ(old.status, 202);
  ASSERT_EQ(s.method("DELETE", "/api/v1/pipelines/again").status, 200);
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("again", "2", 10, 1)).status, 201);
  std::string t = wait_status(s, json_field(old.body, "trace_id"), "completed", 5s);
  ASSERT_EQ(json_field(t, "status"), "completed") << t;
  // The old trace's end freed nothing of the new deployment: it admits and runs.
  for (int i = 0; i < 3; ++i) {
    auto r = s.post("/api/v1/traces", R"({"pipeline_id":"again","input":{},"wait":true})", 5000);
    ASSERT_EQ(r.status, 200) << i << " " << r.body;
    EXPECT_EQ(json_field(r.body, "status"), "completed");
  }
  auto p = s.get("/api/v1/pipelines/again");
  EXPECT_NE(p.body.find(R"("traces_started":3,"traces_completed":3,"traces_failed":0,"active_traces":0,"pending_traces":0)"),
            std::string::npos)
      << p.body;
}

// Bug 3: cross-shard requests in flight during SIGTERM used the engine of a
// shard that had already stopped (a null pointer): the process crashed instead
// of exiting 0.
TEST(lifecycle, sigterm_during_cross_shard_requests_exits_0) {
  for (int round = 0; round < 5; ++round) {
    api s({"XERV_SHARDS=2", "XERV_SHUTDOWN_TIMEOUT_MS=2000"});
    for (int i = 0; i < 100; ++i)
      ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("p" + std::to_string(i), "1", 1, 10)).status, 201) << i;
    std::atomic<bool> stop{false};
    std::atomic<int> answered{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
      clients.emplace_back([&, c] {
        const char* paths[] = {"/api/v1/pipelines", "/api/v1/traces?limit=5", "/api/v1/pipelines/p7", "/health"};
        for (int i = 0; !stop; ++i) {
          auto r = request(s.port, "GET", paths[(i + c) % 4], "", 2000);
          if (r.complete) ++answered;
        }
      });
    std::this_thread::sleep_for(300ms);
    s.proc->signal(SIGTERM);
    auto code = s.proc->wait_exit(15s);
    stop = true;
    for (auto& t : clients) t.join();
    EXPECT_GT(answered.load(), 0);
    ASSERT_EQ(code, 0) << "round " << round << "\n" << s.proc->log();
    EXPECT_NE(s.proc->log().find("xerv stopped"), std::string::npos);
  }
}

// Bug 4: deploys started on different shards were applied in different orders
// on different shards, so shards ended on different versions.
TEST(lifecycle, concurrent_deploys_end_on_one_version_everywhere) {
  api s({"XERV_SHARDS=2"});
  s.keep_dir = true;
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("race", "0", 1, 10)).status, 201);
  constexpr int writers = 8;
  for (int round = 0; round < 10; ++round) {
    // Each writer connects first, then all send at once: connections spread
    // over both shards (SO_REUSEPORT), so deploys start on both.
    std::barrier go(writers);
    std::vector<std::thread> ts;
    std::atomic<int> ok{0};
    for (int w = 0; w < writers; ++w)
      ts.emplace_back([&, w] {
        client c(s.port);
        std::string v = std::to_string(round) + "." + std::to_string(w);
        std::string req = "PUT /api/v1/pipelines/race HTTP/1.1\r\nHost: t\r\nContent-Length: ";
        std::string body = slow_flow("race", v, 1, 10);
        req += std::to_string(body.size()) + "\r\n\r\n" + body;
        go.arrive_and_wait();
        c.send(req);
        if (c.read_response(10000).status == 200) ++ok;
      });
    for (auto& t : ts) t.join();
    ASSERT_EQ(ok.load(), writers);
    std::set<std::string> seen;
    for (int i = 0; i < 24; ++i) seen.insert(json_field(s.get("/api/v1/pipelines/race").body, "version"));
    ASSERT_EQ(seen.size(), 1u) << "round " << round << ": shards disagree on the version";
  }
  // What is stored is what runs: a restart serves the same version.
  std::string running = json_field(s.get("/api/v1/pipelines/race").body, "version");
  s.kill9();
  s.start();
  EXPECT_EQ(json_field(s.get("/api/v1/pipelines/race").body, "version"), running);
  s.keep_dir = false;
}

// Bug 5: right after start the API answered before the pipelines were loaded:
// /health said healthy while the pipeline and its webhooks were 404. Now the
// pipelines come first; while the WAL replays, admissions and unknown traces
// answer 503 (never 404) and /ready is 503.
TEST(lifecycle, nothing_answers_404_for_a_configured_pipeline_during_recovery) {
  auto flows = std::filesystem::temp_directory_path() / ("xerv-flows-rec-" + std::to_string(getpid()));
  std::filesystem::create_directories(flows);
  std::ofstream(flows / "rec.yaml") << slow_flow("rec", "1", 120000, 1000000);
  api s({"XERV_PIPELINES_DIR=" + flows.string()});
  s.keep_dir = true;
  // Enough unfinished traces that replaying them takes a while; pipelined on
  // two connections, one per shard at least most of the time.
  std::string id;
  for (int c = 0; c < 4; ++c) {
    client conn(s.port);
    std::string input = R"({"pad":")" + std::string(512, 'x') + R"("})";
    std::string batch;
    for (int i = 0; i < 500; ++i) batch += post("/rec/a", input);
    for (int r = 0; r < 10; ++r) {
      ASSERT_TRUE(conn.send(batch));
      for (int i = 0; i < 500; ++i) {
        auto resp = conn.read_response(10000);
        ASSERT_EQ(resp.status, 202) << resp.body;
        id = json_field(resp.body, "trace_id");
      }
    }
  }
  s.kill9();
  uint16_t port = free_port();
  ASSERT_NE(port, 0);
  xerv_process again({"XERV_SHARDS=2", "XERV_DATA_DIR=" + s.dir.string(), "XERV_PIPELINES_DIR=" + flows.string(),
                      "XERV_API_PORT=" + std::to_string(port)});
  // The first moment /health answers, everything else must already make sense.
  auto end = std::chrono::steady_clock::now() + 20s;
  client::response h;
  while (std::chrono::steady_clock::now() < end && h.status != 200) {
    h = request(port, "GET", "/health", "", 1000);
    if (again.exited()) break;
  }
  ASSERT_EQ(h.status, 200) << again.log();
  auto p = request(port, "GET", "/api/v1/pipelines/rec");
  EXPECT_EQ(p.status, 200) << p.body;
  auto hook = request(port, "POST", "/rec/a", "{}");
  EXPECT_TRUE(hook.status == 202 || (hook.status == 503 && json_field(hook.body, "error") == "unavailable"))
      << hook.status << " " << hook.body;
  auto t = request(port, "GET", "/api/v1/traces/" + id);
  EXPECT_TRUE(t.status == 200 || (t.status == 503 && json_field(t.body, "error") == "unavailable"))
      << t.status << " " << t.body;
  bool saw_recovering = false;
  // Until the replay is done, /ready is 503; then the traces are all there.
  client::response ready;
  while (std::chrono::steady_clock::now() < end) {
    ready = request(port, "GET", "/ready", "", 1000);
    if (ready.status == 200) break;
    saw_recovering |= ready.body.find("recovering") != std::string::npos;
    auto again_p = request(port, "GET", "/api/v1/pipelines/rec");
    EXPECT_EQ(again_p.status, 200);
  }
  ASSERT_EQ(ready.status, 200) << ready.body;
  auto recovered = request(port, "GET", "/api/v1/traces/" + id);
  EXPECT_EQ(recovered.status, 200) << recovered.body;
  EXPECT_EQ(json_field(recovered.body, "status"), "running") << recovered.body;
  auto health = request(port, "GET", "/health");
  EXPECT_NE(health.body.find(R"("recovered_traces":20000)"), std::string::npos) << health.body;
  std::cout << "recovery was " << (saw_recovering ? "" : "not ") << "seen in progress by /ready\n";
  std::filesystem::remove_all(flows);
  s.keep_dir = false;
}

// Bug 7: two processes on one data directory corrupted the WAL.
TEST(lifecycle, a_second_server_on_the_same_data_dir_exits_1) {
  api s;
  auto [code, out] = run_xerv_expect_exit({"XERV_SHARDS=2", "XERV_DATA_DIR=" + s.dir.string()});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("is in use by another xerv process (pid " + std::to_string(s.proc->pid()) + ")"),
            std::string::npos)
      << out;
  EXPECT_EQ(s.get("/health").status, 200);
  // A killed holder is no holder: a restart right away waits for the kernel to
  // release the lock (its rings' last writes), then serves.
  s.keep_dir = true;
  s.kill9();
  s.start();
  EXPECT_EQ(s.get("/health").status, 200) << s.proc->log();
  s.keep_dir = false;
}

// Bug 9: a restart with a pipeline missing journaled every recovered trace of it
// as failed, for ever. Now they wait, pending, until it comes back (or an
// operator discards them).
TEST(lifecycle, recovered_traces_wait_for_their_pipeline_until_it_is_deployed) {
  api s({"XERV_SHARDS=1"});
  s.keep_dir = true;
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("gone", "1", 60000, 10)).status, 201);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(json_field(s.post("/gone/a", "{}").body, "trace_id"));
  s.kill9();
  std::filesystem::remove(s.dir / "pipelines" / "gone.yaml");  // started without it
  for (int restart = 0; restart < 2; ++restart) {
    s.start({"XERV_SHARDS=1"});
    auto pending = s.get("/api/v1/traces?status=pending&pipeline_id=gone");
    EXPECT_NE(pending.body.find(R"("total":4)"), std::string::npos) << restart << " " << pending.body;
    auto one = s.get("/api/v1/traces/" + ids[0]);
    EXPECT_EQ(json_field(one.body, "status"), "pending") << one.body;
    EXPECT_EQ(json_field(one.body, "waiting_for"), "pipeline 'gone' is not deployed") << one.body;
    auto health = s.get("/health");
    EXPECT_NE(health.body.find(R"("waiting_traces":4)"), std::string::npos) << health.body;
    EXPECT_NE(s.get("/metrics").body.find("xerv_traces_waiting_for_pipeline 4"), std::string::npos);
    s.kill9();
  }
  s.start({"XERV_SHARDS=1"});
  // An operator discards one, and then deploys the pipeline: the rest resume.
  auto discarded = s.post("/api/v1/traces/" + ids[0] + "/discard", "");
  EXPECT_EQ(discarded.status, 200) << discarded.body;
  EXPECT_NE(discarded.body.find(R"("code":"discarded")"), std::string::npos) << discarded.body;
  EXPECT_EQ(s.post("/api/v1/traces/" + ids[0] + "/discard", "").status, 409);
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("gone", "2", 10, 10)).status, 201);
  for (size_t i = 1; i < ids.size(); ++i) {
    std::string t = wait_status(s, ids[i], "completed", 5s);
    EXPECT_EQ(json_field(t, "status"), "completed") << t;
  }
  EXPECT_NE(s.get("/health").body.find(R"("waiting_traces":0)"), std::string::npos);
  // Journaled: after a restart the discarded one is failed, the others completed.
  s.kill9();
  s.start({"XERV_SHARDS=1"});
  EXPECT_EQ(json_field(s.get("/api/v1/traces/" + ids[0]).body, "status"), "failed");
  EXPECT_EQ(json_field(s.get("/api/v1/traces/" + ids[1]).body, "status"), "completed");
  s.keep_dir = false;
}

TEST(lifecycle, discard_every_waiting_trace_of_a_pipeline) {
  api s({"XERV_SHARDS=2"});
  s.keep_dir = true;
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("bulk", "1", 60000, 10)).status, 201);
  for (int i = 0; i < 6; ++i) ASSERT_EQ(s.post("/bulk/a", "{}").status, 202);
  s.kill9();
  std::filesystem::remove(s.dir / "pipelines" / "bulk.yaml");
  s.start();
  EXPECT_EQ(s.post("/api/v1/traces/discard", R"({"pipeline":"bulk"})").status, 400);
  auto r = s.post("/api/v1/traces/discard", R"({"pipeline_id":"bulk"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(number_field(r.body, "discarded"), "6") << r.body;
  EXPECT_NE(s.get("/api/v1/traces?status=failed&pipeline_id=bulk").body.find(R"("total":6)"), std::string::npos);
  s.kill9();
  s.start();
  EXPECT_NE(s.get("/api/v1/traces?status=pending").body.find(R"("total":0)"), std::string::npos);
  s.keep_dir = false;
}

// SPEC §4: draining waits for in-flight traces, whichever shard is asked.
TEST(lifecycle, drain_reports_draining_until_the_trace_in_flight_ends) {
  api s({"XERV_SHARDS=2"});
  ASSERT_EQ(s.post("/api/v1/pipelines", slow_flow("dr", "1", 700, 10)).status, 201);
  auto t = s.post("/dr/a", "{}");
  ASSERT_EQ(t.status, 202);
  auto drained = s.post("/api/v1/pipelines/dr/drain", "");
  EXPECT_EQ(json_field(drained.body, "state"), "draining") << drained.body;
  for (int i = 0; i < 8; ++i)  // connections land on both shards
    EXPECT_EQ(json_field(s.get("/api/v1/pipelines/dr").body, "state"), "draining") << i;
  EXPECT_EQ(json_field(s.post("/dr/a", "{}").body, "error"), "pipeline_not_running");
  wait_status(s, json_field(t.body, "trace_id"), "completed", 5s);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(json_field(s.get("/api/v1/pipelines/dr").body, "state"), "stopped") << i;
}

// SPEC §3, §8: a timed-out trace is `timed_out` with error code `timeout`.
TEST(lifecycle, timed_out_trace_has_error_code_timeout) {
  api s;
  std::string f = slow_flow("late", "1", 2000, 10);
  f.replace(f.find("execution_timeout_ms: 120000"), 28, "execution_timeout_ms: 100");
  ASSERT_EQ(s.post("/api/v1/pipelines", f).status, 201);
  auto r = s.post("/api/v1/traces", R"({"pipeline_id":"late","input":{},"wait":true})");
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_NE(r.body.find(R"("status":"timed_out","code":"timeout")"), std::string::npos) << r.body;
  std::string id = json_field(r.body, "trace_id");
  auto t = s.get("/api/v1/traces/" + id);
  EXPECT_EQ(json_field(t.body, "status"), "timed_out");
  EXPECT_NE(t.body.find(R"x("error":{"code":"timeout","message":"trace exceeded execution_timeout_ms (100 ms)")x"),
            std::string::npos)
      << t.body;
  // The code is journaled with the end.
  s.keep_dir = true;
  s.kill9();
  s.start();
  EXPECT_NE(s.get("/api/v1/traces/" + id).body.find(R"("error":{"code":"timeout")"), std::string::npos);
  s.keep_dir = false;
}

// SPEC §7, §10: the backend is what was configured; an unknown or unbuilt one
// stops start-up; xerv_raft_leader is always exported.
TEST(lifecycle, dispatch_backend_setting_and_raft_leader_metric) {
  auto [code, out] = run_xerv_expect_exit({"XERV_DISPATCH_BACKEND=redis"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("XERV_DISPATCH_BACKEND"), std::string::npos) << out;
  EXPECT_NE(out.find("not built yet"), std::string::npos) << out;
  auto [code2, out2] = run_xerv_expect_exit({"XERV_DISPATCH_BACKEND=kafka"});
  EXPECT_EQ(code2, 2);
  EXPECT_NE(out2.find("expected memory, raft, redis or nats"), std::string::npos) << out2;
  api s({"XERV_DISPATCH_BACKEND=memory"});
  EXPECT_NE(s.get("/health").body.find(R"("backend":"memory")"), std::string::npos);
  EXPECT_NE(s.get("/metrics").body.find("\nxerv_raft_leader 0\n"), std::string::npos);
}

// Test hygiene: the suite's server helpers never use the default /tmp/xerv, so
// `scripts/run` (which fills it, here with more shards than a test runs) and then
// `scripts/test` both work.
TEST(hygiene, test_servers_ignore_a_populated_default_data_dir) {
  const std::filesystem::path def = "/tmp/xerv";
  bool made = !std::filesystem::exists(def);
  if (made) {
    for (int s = 0; s < 4; ++s) {
      auto d = def / "wal" / ("shard-" + std::to_string(s));
      std::filesystem::create_directories(d);
      std::ofstream(d / "00000000000000000001.wal") << "not a real segment";
    }
  }
  auto listing = [&def] {
    std::string out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(def)) {
      out += e.path().string() + " " + std::to_string(e.last_write_time().time_since_epoch().count());
      if (e.is_regular_file()) out += " " + std::to_string(e.file_size());
      out += "\n";
    }
    return out;
  };
  std::string before = listing();
  {
    api s({"XERV_SHARDS=1"});
    EXPECT_EQ(s.get("/health").status, 200);
    xerv_process plain({"XERV_SHARDS=1"});
    EXPECT_NE(plain.wait_ready(), 0) << plain.log();
    EXPECT_FALSE(plain.own_data_dir().empty());
    EXPECT_NE(plain.own_data_dir(), def.string());
  }
  EXPECT_EQ(listing(), before);
  if (made) std::filesystem::remove_all(def);
}

}  // namespace

namespace {

// Issue 9's spec deviations of the node library, through the API: std::switch
// matches is RE2 (a pattern it refuses is a deploy error with its position; no
// subject cap), json_dynamic merge combines both branches, and std::http's
// retries end with code http_error.
TEST(spec, node_fixes_through_the_api) {
  api s;
  std::string bad = "name: re\ntriggers: [{id: t, type: manual}]\nnodes:\n"
                    "  s: {type: std::switch, config: {condition: {type: matches, field: x, value: \"(a\"}}}\n"
                    "edges:\n  - {from: t, to: s}\n";
  auto refused = s.post("/api/v1/pipelines", bad);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json_field(refused.body, "error"), "invalid_flow");
  EXPECT_NE(refused.body.find(R"("line":4,"column":)"), std::string::npos) << refused.body;

  std::string joined = R"(name: joined
triggers: [{id: hook, type: webhook, params: {path: /joined, respond: sync}}]
nodes:
  check: {type: std::switch, config: {condition: {type: matches, field: s, value: "^(a|aa)*b$"}}}
  left: {type: std::json_dynamic, config: {operation: set, path: lx, value: 1}}
  right: {type: std::json_dynamic, config: {operation: set, path: ry, value: 2}}
  both: {type: std::json_dynamic, config: {operation: merge}}
  tail: {type: std::json_dynamic, config: {operation: extract, fields: [lx, ry]}}
edges:
  - {from: hook, to: check}
  - {from: check.false, to: left}
  - {from: check.false, to: right}
  - {from: left, to: both}
  - {from: right, to: both}
  - {from: both, to: tail}
)";
  auto deployed = s.post("/api/v1/pipelines", joined);
  ASSERT_EQ(deployed.status, 201) << deployed.body;
  // 100 KiB of 'a' without the final 'b': std::regex recursed per character
  // (and had a 1 KiB cap); RE2 answers false in linear time.
  auto r = s.post("/joined", R"({"s":")" + std::string(100 << 10, 'a') + R"("})");
  EXPECT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_EQ(r.body, R"({"lx":1,"ry":2})");

  std::string calls = R"(name: calls
triggers: [{id: hook, type: webhook, params: {path: /calls, respond: sync}}]
nodes:
  call: {type: std::http, config: {url: "http://127.0.0.1:PORT/"}, retry: {max_attempts: 3, backoff_ms: 100}}
edges:
  - {from: hook, to: call}
)";
  calls.replace(calls.find("PORT"), 4, std::to_string(free_port()));  // nothing listens there
  ASSERT_EQ(s.post("/api/v1/pipelines", calls).status, 201);
  auto t0 = std::chrono::steady_clock::now();
  auto failed = s.post("/calls", "{}");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(failed.status, 500) << failed.body;
  EXPECT_NE(failed.body.find(R"("status":"failed","code":"http_error","node":"call")"), std::string::npos)
      << failed.body;
  EXPECT_GE(took, 200ms);  // two backoffs between three attempts
}

}  // namespace
