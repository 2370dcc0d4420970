// The control plane on shard 0 (issue 10) through the REST API of the real
// binary: concurrent deploys get one order (revisions 1..N), the last-ordered
// version is what every shard shows and runs, an overtaken deploy that named
// its revision is refused with 409, and revisions survive a restart.

#include <gtest/gtest.h>

#include <barrier>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/integration/api_server.h"

using namespace xerv::testing;
using namespace std::chrono_literals;

namespace {

std::string flow(const std::string& version) {
  return "name: race\nversion: \"" + version + "\"\ntriggers:\n  - {id: manual, type: manual}\n"
         "nodes:\n  tag: {type: std::concat, config: {output_field: v, parts: [\"" + version + "\"]}}\n"
         "edges:\n  - {from: manual, to: tag}\n";
}

uint64_t number_field(const std::string& body, const std::string& name) {
  std::string needle = "\"" + name + "\":";
  size_t at = body.find(needle);
  if (at == std::string::npos) return 0;
  return std::stoull(body.substr(at + needle.size()));
}

// The shard a trace id names: the third group of its text (bits 0-15 of the high half).
unsigned shard_of(const std::string& trace_id) { return unsigned(std::stoul(trace_id.substr(14, 4), nullptr, 16)); }

TEST(control_plane, fifty_concurrent_deploys_leave_every_shard_on_the_last_ordered_version) {
  api s({"XERV_SHARDS=2"});
  constexpr int writers = 50;
  std::barrier go(writers);
  std::mutex m;
  std::map<uint64_t, std::string> version_at;  // revision -> version that got it
  std::vector<int> statuses;
  std::vector<std::thread> ts;
  for (int w = 0; w < writers; ++w)
    ts.emplace_back([&, w] {
      // Connect first, then all send at once: the connections spread over both
      // shards (SO_REUSEPORT), so the deploys start on both.
      client c(s.port);
      std::string v = "v" + std::to_string(w);
      std::string body = flow(v);
      std::string req = "POST /api/v1/pipelines HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
      go.arrive_and_wait();
      c.send(req);
      auto r = c.read_response(20000);
      std::lock_guard lock(m);
      statuses.push_back(r.status);
      if (r.status == 200 || r.status == 201) {
        EXPECT_EQ(json_field(r.body, "version"), v) << "a deploy answered with another deploy's version";
        version_at[number_field(r.body, "revision")] = v;
      }
    });
  for (auto& t : ts) t.join();
  // One create, the rest updates, each with its own place in one order.
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 201), 1);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), writers - 1);
  ASSERT_EQ(version_at.size(), size_t(writers)) << "two deploys got the same revision";
  EXPECT_EQ(version_at.begin()->first, 1u);
  EXPECT_EQ(version_at.rbegin()->first, uint64_t(writers));
  std::string last = version_at.rbegin()->second;

  // Every shard shows it...
  for (int i = 0; i < 20; ++i) {
    auto r = s.get("/api/v1/pipelines/race");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(json_field(r.body, "version"), last);
    EXPECT_EQ(number_field(r.body, "revision"), uint64_t(writers));
  }
  // ...and runs it: traces admitted on both shards run the last version.
  std::set<unsigned> shards;
  for (int i = 0; i < 40; ++i) {
    auto r = s.post("/api/v1/traces", "{\"pipeline_id\":\"race\",\"wait\":true}");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("\"v\":\"" + last + "\""), std::string::npos) << r.body;
    std::string id = json_field(r.body, "trace_id");
    shards.insert(shard_of(id));
    EXPECT_EQ(json_field(s.get("/api/v1/traces/" + id).body, "version"), last);
  }
  EXPECT_EQ(shards.size(), 2u) << "every trace ran on one shard; the test did not reach both";
}

TEST(control_plane, a_deploy_naming_an_overtaken_revision_is_refused_with_409) {
  api s({"XERV_SHARDS=2"});
  s.keep_dir = true;
  auto first = s.post("/api/v1/pipelines", flow("a"));
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(number_field(first.body, "revision"), 1u);
  // Two clients read revision 1; the first update wins, the second is refused.
  auto win = s.method("PUT", "/api/v1/pipelines/race?revision=1", flow("b"));
  EXPECT_EQ(win.status, 200) << win.body;
  EXPECT_EQ(number_field(win.body, "revision"), 2u);
  auto lose = s.method("PUT", "/api/v1/pipelines/race?revision=1", flow("c"));
  EXPECT_EQ(lose.status, 409) << lose.body;
  EXPECT_EQ(json_field(lose.body, "error"), "conflict") << lose.body;
  EXPECT_EQ(json_field(s.get("/api/v1/pipelines/race").body, "version"), "b");
  EXPECT_EQ(s.method("PUT", "/api/v1/pipelines/race?revision=zero", flow("c")).status, 400);
  // State changes keep the revision; a restart keeps both.
  auto paused = s.post("/api/v1/pipelines/race/pause", "");
  EXPECT_EQ(paused.status, 200);
  EXPECT_EQ(number_field(paused.body, "revision"), 2u);
  s.kill9();
  s.start();
  auto after = s.get("/api/v1/pipelines/race");
  EXPECT_EQ(number_field(after.body, "revision"), 2u);
  EXPECT_EQ(json_field(after.body, "state"), "paused");
  EXPECT_EQ(s.method("PUT", "/api/v1/pipelines/race?revision=2", flow("d")).status, 200);
  EXPECT_EQ(number_field(s.get("/api/v1/pipelines/race").body, "revision"), 3u);
  s.keep_dir = false;
}

}  // namespace
