// std::wait over the REST API (SPEC §5): suspend, list, resume by hook id and
// by trace id, each decision's port, response_data as the wait node's output,
// metadata, 404/409/400, expiry per timeout_action, and the resume/expiry race.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/api_server.h"

using xerv::testing::api;
using xerv::testing::json_field;

namespace {

// hook → gate (std::wait) → ok | no | esc, each passing its input on: the
// trace's output is the wait node's output, i.e. response_data.
std::string approval(const std::string& name, const std::string& gate_config) {
  return "name: " + name + R"(
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /)" + name + R"(, method: POST, respond: sync}}
nodes:
  gate: {type: std::wait, config: )" + gate_config + R"(}
  ok: {type: std::log, config: {message: "ok"}}
  no: {type: std::log, config: {message: "no"}}
  esc: {type: std::log, config: {message: "esc"}}
edges:
  - {from: hook, to: gate}
  - {from: gate.out, to: ok}
  - {from: gate.rejected, to: no}
  - {from: gate.escalated, to: esc}
)";
}

std::string resume_body(const std::string& decision, const std::string& data = "") {
  return R"({"decision":")" + decision + "\"" + (data.empty() ? "" : R"(,"response_data":)" + data) + "}";
}

// The trace, once its status is `want` (about 10 s at most).
std::string trace_when(api& s, const std::string& id, const std::string& want) {
  std::string body;
  for (int i = 0; i < 500; ++i) {
    body = s.get("/api/v1/traces/" + id).body;
    if (json_field(body, "status") == want) return body;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return body;
}

TEST(suspensions, suspend_list_and_resume_by_hook_and_by_trace_id_down_each_port) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines",
                   approval("pay", R"({hook_id: "pay-${hook.id}", metadata_fields: [id, amount, $.who.name]})"))
                .status,
            201);
  ASSERT_EQ(s.post("/api/v1/pipelines", approval("other", "{}")).status, 201);
  std::map<std::string, std::string> ids;
  for (const char* n : {"a", "b", "c"}) {
    auto r = s.post("/pay", std::string(R"({"id":")") + n + R"(","amount":7,"who":{"name":"ann","age":3},"x":1})");
    ASSERT_EQ(r.status, 202) << r.body;  // a sync webhook of a suspended trace
    EXPECT_EQ(json_field(r.body, "status"), "suspended");
    EXPECT_EQ(json_field(r.body, "hook_id"), std::string("pay-") + n);
    ids[n] = json_field(r.body, "trace_id");
  }
  auto other = s.post("/other", "{}");
  ASSERT_EQ(other.status, 202);
  std::string other_id = json_field(other.body, "trace_id");
  EXPECT_EQ(json_field(other.body, "hook_id"), other_id);  // no hook_id: the trace id

  // GET /traces/{id}: the wait node is suspended, with its hook.
  auto t = s.get("/api/v1/traces/" + ids["a"]);
  EXPECT_EQ(json_field(t.body, "status"), "suspended");
  EXPECT_NE(t.body.find(R"("gate":{"status":"suspended")"), std::string::npos) << t.body;
  EXPECT_NE(t.body.find(R"("hook_id":"pay-a")"), std::string::npos) << t.body;

  auto all = s.get("/api/v1/suspensions");
  EXPECT_EQ(all.status, 200);
  EXPECT_NE(all.body.find(R"("count":4)"), std::string::npos) << all.body;
  auto pay = s.get("/api/v1/suspensions?pipeline_id=pay&limit=2&offset=1");
  EXPECT_NE(pay.body.find(R"("count":3)"), std::string::npos) << pay.body;
  EXPECT_EQ(pay.body.find("pay-a"), std::string::npos) << pay.body;  // oldest first, offset 1
  EXPECT_NE(pay.body.find("pay-b"), std::string::npos);
  EXPECT_NE(pay.body.find("pay-c"), std::string::npos);
  // Exactly the named fields; a missing one is left out.
  EXPECT_NE(pay.body.find(R"("metadata":{"id":"b","amount":7,"name":"ann"})"), std::string::npos) << pay.body;
  EXPECT_NE(pay.body.find(R"("node":"gate")"), std::string::npos);
  EXPECT_NE(pay.body.find(R"("expires_at":null)"), std::string::npos);
  EXPECT_NE(s.get("/metrics").body.find("xerv_suspended_traces{pipeline=\"pay\"} 3"), std::string::npos);

  // By hook id, by trace id, by the default hook; each decision its port.
  struct step { std::string target, decision, id, port; };
  for (const step& st : {step{"pay-a", "approve", ids["a"], "ok"}, step{ids["b"], "reject", ids["b"], "no"},
                         step{"pay-c", "escalate", ids["c"], "esc"}, step{other_id, "approve", other_id, "ok"}}) {
    SCOPED_TRACE(st.target);
    auto r = s.post("/api/v1/suspensions/" + st.target + "/resume", resume_body(st.decision, R"({"by":"bob"})"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json_field(r.body, "trace_id"), st.id);
    auto done = trace_when(s, st.id, "completed");
    EXPECT_EQ(json_field(done, "status"), "completed") << done;
    EXPECT_NE(done.find(R"("output":{"by":"bob"})"), std::string::npos) << done;
    EXPECT_NE(done.find("\"" + st.port + R"(":{"status":"completed")"), std::string::npos) << done;
    EXPECT_NE(done.find(R"("gate":{"status":"completed","port":")"), std::string::npos) << done;
    // A second resume, by hook or by id: 409.
    auto again = s.post("/api/v1/suspensions/" + st.target + "/resume", resume_body("approve"));
    EXPECT_EQ(again.status, 409) << again.body;
    EXPECT_EQ(json_field(again.body, "error"), "not_suspended");
  }
  EXPECT_NE(s.get("/api/v1/suspensions").body.find(R"("count":0)"), std::string::npos);
  EXPECT_NE(s.get("/metrics").body.find("xerv_resumes_total{decision=\"approve\"} 2"), std::string::npos);

  // Unknown ids, bad decisions.
  EXPECT_EQ(s.post("/api/v1/suspensions/no-such-hook/resume", resume_body("approve")).status, 404);
  EXPECT_EQ(s.post("/api/v1/suspensions/00000000-0000-0000-0000-000000000000/resume", resume_body("approve")).status,
            404);
  auto r = s.post("/pay", R"({"id":"d"})");
  ASSERT_EQ(r.status, 202);
  for (const std::string& bad : {std::string(R"({"decision":"later"})"), std::string("{}"), std::string("[1]"),
                                 std::string(R"({"decision":1})")}) {
    auto b = s.post("/api/v1/suspensions/pay-d/resume", bad);
    EXPECT_EQ(b.status, 400) << bad;
    EXPECT_EQ(json_field(b.body, "error"), "invalid_payload");
  }
  // Without response_data the wait node's output is {}.
  ASSERT_EQ(s.post("/api/v1/suspensions/pay-d/resume", resume_body("approve")).status, 200);
  EXPECT_NE(trace_when(s, json_field(r.body, "trace_id"), "completed").find(R"("output":{})"), std::string::npos);
}

// A suspended trace keeps only a small entry in memory: the trace store's
// limit does not evict it, and GET /traces shows it from its suspended record
// (input, the nodes before the wait, logs).
TEST(suspensions, a_suspended_trace_outlives_the_trace_store_and_shows_its_record) {
  api s({"XERV_TRACE_STORE_MAX=1"});
  ASSERT_EQ(s.post("/api/v1/pipelines", R"(name: long
version: "7"
triggers:
  - {id: hook, type: webhook, params: {path: /long, method: POST}}
nodes:
  note: {type: std::log, config: {message: "before the wait"}}
  gate: {type: std::wait, config: {hook_id: "long-${hook.n}"}}
  ok: {type: std::log, config: {message: "after"}}
edges:
  - {from: hook, to: note}
  - {from: note, to: gate}
  - {from: gate.out, to: ok}
)").status,
            201);
  ASSERT_EQ(s.post("/api/v1/pipelines", approval("quick", "{}")).status, 201);
  auto r = s.post("/long", R"({"n":1})");
  ASSERT_EQ(r.status, 202) << r.body;
  std::string id = json_field(r.body, "trace_id");
  ASSERT_EQ(json_field(trace_when(s, id, "suspended"), "status"), "suspended");
  // Finished traces of another pipeline push everything else out of the store.
  for (int i = 0; i < 6; ++i) {
    std::string q = json_field(s.post("/quick", "{}").body, "trace_id");
    ASSERT_EQ(s.post("/api/v1/suspensions/" + q + "/resume", resume_body("approve")).status, 200);
    trace_when(s, q, "completed");
  }
  auto t = s.get("/api/v1/traces/" + id);
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(json_field(t.body, "status"), "suspended");
  EXPECT_EQ(json_field(t.body, "version"), "7");
  EXPECT_NE(t.body.find(R"("input":{"n":1})"), std::string::npos) << t.body;
  EXPECT_NE(t.body.find(R"("note":{"status":"completed","port":"out")"), std::string::npos) << t.body;
  EXPECT_NE(t.body.find(R"("gate":{"status":"suspended")"), std::string::npos) << t.body;
  EXPECT_NE(t.body.find(R"("hook_id":"long-1")"), std::string::npos) << t.body;
  auto logs = s.get("/api/v1/traces/" + id + "/logs");
  EXPECT_NE(logs.body.find("before the wait"), std::string::npos) << logs.body;
  // Listed with the others (newest first), and by status.
  auto suspended = s.get("/api/v1/traces?status=suspended");
  EXPECT_NE(suspended.body.find(id), std::string::npos) << suspended.body;
  EXPECT_NE(suspended.body.find(R"("total":1)"), std::string::npos) << suspended.body;
  EXPECT_NE(s.get("/api/v1/traces?pipeline_id=long").body.find(R"("hook_id":"long-1")"), std::string::npos);
  EXPECT_EQ(s.get("/api/v1/traces?pipeline_id=quick&status=suspended").body.find(id), std::string::npos);
  // And it resumes from that record.
  ASSERT_EQ(s.post("/api/v1/suspensions/long-1/resume", resume_body("approve", R"({"k":2})")).status, 200);
  auto done = trace_when(s, id, "completed");
  EXPECT_NE(done.find(R"("ok":{"status":"completed")"), std::string::npos) << done;
  EXPECT_NE(done.find(R"("note":{"status":"completed")"), std::string::npos) << done;
  EXPECT_NE(s.get("/api/v1/traces/" + id + "/logs").body.find("before the wait"), std::string::npos);
}

// A replayed Idempotency-Key of a suspended sync webhook answers as the first
// call did (202 suspended, with its hook), not with a bare trace id.
TEST(suspensions, an_idempotency_key_replays_the_suspended_answer) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", approval("idem", R"({hook_id: "idem-${hook.n}"})")).status, 201);
  auto call = [&] {
    return s.call(xerv::testing::post("/idem", R"({"n":1})", "Idempotency-Key: order-7\r\n"));
  };
  auto first = call();
  ASSERT_EQ(first.status, 202) << first.body;
  EXPECT_EQ(json_field(first.body, "status"), "suspended");
  auto again = call();
  EXPECT_EQ(again.status, 202) << again.body;
  EXPECT_EQ(again.headers["idempotency-replayed"], "true");
  EXPECT_EQ(json_field(again.body, "trace_id"), json_field(first.body, "trace_id"));
  EXPECT_EQ(json_field(again.body, "status"), "suspended") << again.body;
  EXPECT_EQ(json_field(again.body, "hook_id"), "idem-1") << again.body;
}

// Two waits in a row: the trace suspends again on the second hook after the
// first resume; each hook resumes its own wait once.
TEST(suspensions, a_trace_with_two_waits_suspends_twice) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", R"(name: twice
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /twice, method: POST}}
nodes:
  first: {type: std::wait, config: {hook_id: "one-${hook.n}"}}
  second: {type: std::wait, config: {hook_id: "two-${hook.n}"}}
  done: {type: std::log, config: {message: "both"}}
edges:
  - {from: hook, to: first}
  - {from: first.out, to: second}
  - {from: second.out, to: done}
)").status,
            201);
  std::string id = json_field(s.post("/twice", R"({"n":4})").body, "trace_id");
  ASSERT_EQ(json_field(trace_when(s, id, "suspended"), "hook_id"), "one-4");
  EXPECT_EQ(s.post("/api/v1/suspensions/two-4/resume", resume_body("approve")).status, 404);
  ASSERT_EQ(s.post("/api/v1/suspensions/one-4/resume", resume_body("approve")).status, 200);
  std::string body;
  for (int i = 0; i < 500 && json_field(body, "hook_id") != "two-4"; ++i) {
    body = s.get("/api/v1/traces/" + id).body;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(json_field(body, "status"), "suspended") << body;
  EXPECT_NE(body.find(R"("first":{"status":"completed","port":"out")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("second":{"status":"suspended")"), std::string::npos) << body;
  EXPECT_NE(s.post("/api/v1/suspensions/one-4/resume", resume_body("approve")).status, 200);
  ASSERT_EQ(s.post("/api/v1/suspensions/two-4/resume", resume_body("approve")).status, 200);
  auto done = trace_when(s, id, "completed");
  EXPECT_NE(done.find(R"("done":{"status":"completed")"), std::string::npos) << done;
  EXPECT_EQ(s.post("/api/v1/suspensions/two-4/resume", resume_body("approve")).status, 409);
}

TEST(suspensions, two_traces_on_one_hook_are_resumed_by_trace_id) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", approval("twice", R"({hook_id: "same"})")).status, 201);
  std::string a = json_field(s.post("/twice", "{}").body, "trace_id");
  std::string b = json_field(s.post("/twice", "{}").body, "trace_id");
  auto r = s.post("/api/v1/suspensions/same/resume", resume_body("approve"));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(json_field(r.body, "error"), "conflict");
  EXPECT_NE(r.body.find(a), std::string::npos);
  EXPECT_NE(r.body.find(b), std::string::npos);
  EXPECT_EQ(s.post("/api/v1/suspensions/" + a + "/resume", resume_body("approve")).status, 200);
  // Now one is left on the hook.
  EXPECT_EQ(s.post("/api/v1/suspensions/same/resume", resume_body("reject")).status, 200);
  EXPECT_NE(trace_when(s, b, "completed").find(R"("no":{"status":"completed")"), std::string::npos);
}

TEST(suspensions, expiry_takes_the_timeout_action) {
  api s;
  std::map<std::string, std::string> ids;
  for (const char* action : {"approve", "reject", "escalate"}) {
    std::string name = std::string("exp_") + action;
    ASSERT_EQ(s.post("/api/v1/pipelines",
                     approval(name, std::string("{timeout_secs: 1, timeout_action: ") + action + "}"))
                  .status,
              201);
    auto r = s.post("/" + name, "{}");
    ASSERT_EQ(r.status, 202) << r.body;
    ids[action] = json_field(r.body, "trace_id");
  }
  auto listed = s.get("/api/v1/suspensions");
  EXPECT_EQ(listed.body.find(R"("expires_at":null)"), std::string::npos) << listed.body;
  for (auto [action, port] : {std::pair<std::string, std::string>{"approve", "ok"}, {"reject", "no"},
                              {"escalate", "esc"}}) {
    auto done = trace_when(s, ids[action], "completed");
    EXPECT_NE(done.find("\"" + port + R"(":{"status":"completed")"), std::string::npos) << action << ": " << done;
    EXPECT_NE(done.find(R"("output":{"expired":true})"), std::string::npos) << done;
    EXPECT_EQ(s.post("/api/v1/suspensions/" + ids[action] + "/resume", resume_body("approve")).status, 409);
  }
  EXPECT_NE(s.get("/metrics").body.find("xerv_suspension_expiries_total{pipeline=\"exp_reject\"} 1"),
            std::string::npos);
}

// A resume racing the expiry: exactly one decides.
TEST(suspensions, a_resume_racing_the_expiry_either_wins_or_gets_409) {
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", approval("race", "{timeout_secs: 1, timeout_action: escalate}")).status,
            201);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(json_field(s.post("/race", "{}").body, "trace_id"));
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  std::map<std::string, int> resumed;
  for (int round = 0; round < 30; ++round) {
    for (const auto& id : ids) {
      auto r = s.post("/api/v1/suspensions/" + id + "/resume", resume_body("approve"));
      if (r.status == 200) ++resumed[id];
      else {
        EXPECT_EQ(r.status, 409) << r.body;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const auto& id : ids) {
    auto done = trace_when(s, id, "completed");
    bool ok = done.find(R"("ok":{"status":"completed")") != std::string::npos;
    bool esc = done.find(R"("esc":{"status":"completed")") != std::string::npos;
    EXPECT_NE(ok, esc) << done;  // one branch, never both
    EXPECT_EQ(ok, resumed[id] == 1) << done;
    EXPECT_LE(resumed[id], 1);
  }
}

TEST(suspensions, wait_inside_a_split_body_is_refused) {
  api s;
  auto r = s.post("/api/v1/pipelines", R"(name: bad
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /bad, method: POST}}
nodes:
  each: {type: std::split, config: {field: $.items}}
  gate: {type: std::wait}
edges:
  - {from: hook, to: each}
  - {from: each.out, to: gate}
)");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("std::wait cannot run inside the body of 'each'"), std::string::npos) << r.body;
}

}  // namespace
