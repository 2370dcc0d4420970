// Three real `xerv serve` processes in a Raft group on loopback (random ports,
// their own data dirs): every node serves every call, a deploy on one reaches
// all, kill -9 of the leader under webhook load elects a new one within two
// election timeouts and loses no acknowledged trace, a dead node's traces
// finish on the live nodes after the lease, /ready follows the quorum, the CLI
// adds, transfers to and removes nodes, a restarted follower catches up by log
// and by snapshot, and a rolling restart under load loses nothing.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/xerv_process.h"

using namespace std::chrono_literals;
using namespace xerv::testing;

namespace {

const char* k_flow = R"(name: greet
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/greet, method: POST, respond: sync}}
  - {id: later, type: webhook, params: {path: /hooks/greet-async, respond: async}}
nodes:
  pause: {type: std::delay, config: {ms: DELAY}}
  hello: {type: std::log, config: {message: "hello ${input.name}"}}
edges:
  - {from: hook, to: hello}
  - {from: later, to: pause}
  - {from: pause, to: hello}
)";

std::string flow(int delay_ms) {
  std::string f = k_flow;
  f.replace(f.find("DELAY"), 5, std::to_string(delay_ms));
  return f;
}

struct node {
  uint64_t id = 0;
  uint16_t raft_port = 0;
  uint16_t port = 0;  // the API's, once serving
  std::string dir;
  std::unique_ptr<xerv_process> proc;
};

struct cluster {
  explicit cluster(size_t n, std::vector<std::string> extra = {}) : env_extra(std::move(extra)) {
    char tmpl[] = "/tmp/xerv-raft-cluster-XXXXXX";
    root = mkdtemp(tmpl);
    for (size_t i = 0; i < n; ++i) {
      node x;
      x.id = i + 1;
      x.raft_port = free_port();
      x.dir = root + "/node-" + std::to_string(x.id);
      nodes.push_back(std::move(x));
    }
  }
  ~cluster() {
    for (auto& n : nodes) n.proc.reset();
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  std::string root;
  std::vector<node> nodes;
  std::vector<std::string> env_extra;

  node& at(uint64_t id) { return nodes[id - 1]; }

  void spawn(uint64_t id) {
    node& x = at(id);
    std::string peers;
    for (const auto& o : nodes)
      if (o.id != id) peers += (peers.empty() ? "" : ",") + std::to_string(o.id) + ":127.0.0.1:" + std::to_string(o.raft_port);
    std::vector<std::string> env = {"XERV_SHARDS=2",
                                    "XERV_DATA_DIR=" + x.dir,
                                    "XERV_DISPATCH_BACKEND=raft",
                                    "XERV_DISPATCH_RAFT_NODE_ID=" + std::to_string(id),
                                    "XERV_DISPATCH_RAFT_LISTEN_ADDR=127.0.0.1:" + std::to_string(x.raft_port),
                                    "XERV_DISPATCH_RAFT_PEERS=" + peers,
                                    "XERV_DISPATCH_RAFT_ELECTION_TIMEOUT_MS=500",
                                    "XERV_DISPATCH_RAFT_HEARTBEAT_MS=50",
                                    "XERV_DISPATCH_LEASE_MS=1500"};
    for (auto& e : env_extra) env.push_back(e);
    x.port = 0;
    x.proc = std::make_unique<xerv_process>(env);
  }
  // A node waits for a quorum before it serves: spawn them all, then wait.
  bool start_all() {
    for (auto& n : nodes) spawn(n.id);
    bool ok = true;
    for (auto& n : nodes) ok &= wait_serving(n.id);
    return ok;
  }
  bool wait_serving(uint64_t id) {
    node& x = at(id);
    x.port = x.proc->wait_ready(20s);
    EXPECT_NE(x.port, 0) << x.proc->log();
    return x.port != 0;
  }
  void kill9(uint64_t id) {
    node& x = at(id);
    x.proc->signal(SIGKILL);
    x.proc->wait_exit(10s);
    x.port = 0;
  }
  std::vector<uint64_t> live() const {
    std::vector<uint64_t> out;
    for (const auto& n : nodes)
      if (n.port) out.push_back(n.id);
    return out;
  }
  client::response call(uint64_t id, const std::string& method, const std::string& path, const std::string& body = "") {
    client::response r = request(at(id).port, method, path, body);
    // No answer at all: say why, if the node died.
    if (r.status == 0 && at(id).proc && at(id).proc->wait_exit(3s)) {
      std::string log = at(id).proc->log();
      ADD_FAILURE() << "node " << id << " exited; its log ends:\n" << log.substr(log.size() > 30000 ? log.size() - 30000 : 0);
    }
    return r;
  }
  // The leader every live node names (0 after `limit`).
  uint64_t leader(std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      std::set<long long> named;
      for (uint64_t id : live()) named.insert(json_number(call(id, "GET", "/health").body, "leader_id"));
      if (named.size() == 1 && *named.begin() > 0) return uint64_t(*named.begin());
      std::this_thread::sleep_for(20ms);
    }
    return 0;
  }
  uint64_t follower() {
    uint64_t l = leader();
    for (uint64_t id : live())
      if (id != l) return id;
    return 0;
  }
  // Polls until `pred(response)` holds (false after `limit`).
  template <class Pred>
  bool eventually(uint64_t id, const std::string& path, Pred pred, std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred(call(id, "GET", path))) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
};

double metric(const std::string& metrics, const std::string& series) {
  auto at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + series.size() + 2));
}

std::string trace_status(cluster& c, uint64_t id, const std::string& trace) {
  return json_field(c.call(id, "GET", "/api/v1/traces/" + trace).body, "status");
}

}  // namespace

// Every node takes every call: a deploy through one is installed on all, and a
// webhook on any node runs; /health and /metrics name one leader.
TEST(raft_cluster, every_node_serves_every_call) {
  cluster c(3);
  ASSERT_TRUE(c.start_all());
  uint64_t l = c.leader();
  ASSERT_NE(l, 0u);
  uint64_t f = c.follower();
  auto deployed = c.call(f, "POST", "/api/v1/pipelines", flow(10));
  ASSERT_EQ(deployed.status, 201) << deployed.body;
  for (uint64_t id : c.live()) {
    EXPECT_TRUE(c.eventually(id, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }))
        << "node " << id;
    auto r = c.call(id, "POST", "/hooks/greet", R"({"name":"ada"})");
    EXPECT_EQ(r.status, 200) << "node " << id << ": " << r.body;
    auto h = c.call(id, "GET", "/health").body;
    EXPECT_NE(h.find(R"("backend":"raft")"), std::string::npos) << h;
    EXPECT_NE(h.find(R"("members":[1,2,3])"), std::string::npos) << h;
    EXPECT_EQ(json_number(h, "leader_id"), (long long)l);
    EXPECT_EQ(json_field(h, "role"), id == l ? "leader" : "follower") << h;
    EXPECT_EQ(c.call(id, "GET", "/ready").status, 200);
    EXPECT_EQ(metric(c.call(id, "GET", "/metrics").body, "xerv_raft_leader"), id == l ? 1 : 0) << "node " << id;
  }
  // An update through another node: one revision, everywhere.
  auto updated = c.call(l, "PUT", "/api/v1/pipelines/greet", flow(20));
  ASSERT_EQ(updated.status, 200) << updated.body;
  for (uint64_t id : c.live())
    EXPECT_TRUE(c.eventually(id, "/api/v1/pipelines/greet",
                             [](const client::response& r) { return json_number(r.body, "revision") == 2; }))
        << "node " << id;
}

// kill -9 of the leader while clients post webhooks to every node: a new
// leader within 2 × the election timeout, and every admission any node
// acknowledged (202 async, 200 sync) completes, checked per trace id.
TEST(raft_cluster, leader_kill9_under_load_fails_over_and_keeps_acknowledged_traces) {
  // Ticks of 100 ms: a follower's randomized timeout ends 500..900 ms after
  // the last heartbeat it heard.
  constexpr auto election = 500ms;
  cluster c(3, {"XERV_DISPATCH_RAFT_ELECTION_TIMEOUT_MS=500", "XERV_DISPATCH_RAFT_HEARTBEAT_MS=100"});
  ASSERT_TRUE(c.start_all());
  uint64_t l = c.leader();
  ASSERT_NE(l, 0u);
  ASSERT_EQ(c.call(l, "POST", "/api/v1/pipelines", flow(200)).status, 201);
  for (uint64_t id : c.live())
    ASSERT_TRUE(c.eventually(id, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }));

  // Raw requests: a refused connection to the dead leader is expected here.
  std::vector<uint16_t> ports;
  for (const auto& n : c.nodes) ports.push_back(n.port);
  std::atomic<bool> stop{false};
  constexpr int clients = 4;
  std::vector<std::vector<std::string>> acked(clients);
  std::vector<std::thread> load;
  for (int k = 0; k < clients; ++k)
    load.emplace_back([&, k] {
      for (size_t i = size_t(k); !stop; ++i) {
        bool sync = i % 4 == 0;
        auto r = request(ports[i % ports.size()], "POST", sync ? "/hooks/greet" : "/hooks/greet-async",
                         R"({"name":"load"})");
        if (sync && r.status == 200) acked[k].push_back(r.headers["x-xerv-trace-id"]);
        if (!sync && r.status == 202) acked[k].push_back(json_field(r.body, "trace_id"));
      }
    });
  std::this_thread::sleep_for(1s);
  auto killed = std::chrono::steady_clock::now();
  c.kill9(l);
  // The survivors name a new leader.
  uint64_t now = 0;
  while (!now && std::chrono::steady_clock::now() - killed < 10s) {
    for (uint64_t id : c.live()) {
      long long named = json_number(request(c.at(id).port, "GET", "/health").body, "leader_id");
      if (named > 0 && uint64_t(named) != l) now = uint64_t(named);
    }
    if (!now) std::this_thread::sleep_for(5ms);
  }
  auto elected = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed);
  std::this_thread::sleep_for(1500ms);  // load goes on with the new leader
  stop = true;
  for (auto& t : load) t.join();
  std::string healths;
  for (uint64_t id : c.live()) healths += "\nnode " + std::to_string(id) + ": " + c.call(id, "GET", "/health").body;
  ASSERT_NE(now, 0u) << "no new leader" << healths;
  EXPECT_LT(elected, 2 * election) << "a new leader took " << elected.count() << " ms" << healths;

  // Every acknowledged trace completes: those the dead leader ran after the
  // lease, on a survivor.
  std::set<std::string> ids;
  for (auto& a : acked) ids.insert(a.begin(), a.end());
  printf("node %llu led %lld ms after the kill; %zu admissions acknowledged\n", static_cast<unsigned long long>(now),
         static_cast<long long>(elected.count()), ids.size());
  EXPECT_GT(ids.size(), 50u);
  EXPECT_EQ(ids.count(""), 0u) << "an acknowledgement without a trace id";
  uint64_t f = c.live().front();
  for (const auto& id : ids)
    EXPECT_TRUE(c.eventually(f, "/api/v1/traces/" + id,
                             [](const client::response& r) { return json_field(r.body, "status") == "completed"; }, 15s))
        << id << ": " << trace_status(c, f, id);
}

// A node killed with traces in flight: after the lease the leader moves them to
// the live nodes, where each completes once.
TEST(raft_cluster, dead_nodes_traces_finish_on_live_nodes) {
  cluster c(3);
  ASSERT_TRUE(c.start_all());
  uint64_t f = c.follower();
  ASSERT_EQ(c.call(f, "POST", "/api/v1/pipelines", flow(3000)).status, 201);
  ASSERT_TRUE(c.eventually(f, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }));
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = c.call(f, "POST", "/hooks/greet-async", R"({"name":"z"})");
    ASSERT_EQ(r.status, 202) << r.body;
    ids.push_back(json_field(r.body, "trace_id"));
  }
  c.kill9(f);
  std::vector<uint64_t> others = c.live();
  ASSERT_EQ(others.size(), 2u);
  for (const auto& id : ids) {
    // Each node answers: the one that ran it from its engine, the other
    // from the replicated state.
    bool done = false;
    auto end = std::chrono::steady_clock::now() + 20s;
    while (!done && std::chrono::steady_clock::now() < end) {
      done = true;
      for (uint64_t o : others) done &= trace_status(c, o, id) == "completed";
      if (!done) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(done) << id << ": " << c.call(others[0], "GET", "/api/v1/traces/" + id).body;
  }
  double completed = 0;
  for (uint64_t o : others) completed += metric(c.call(o, "GET", "/metrics").body, "xerv_completed_traces_total");
  EXPECT_EQ(completed, 5) << "each moved trace runs once";
}

// Without a quorum /ready answers 503 (and /health still answers); with one
// again, the restarted node has its pipelines from disk and serves.
TEST(raft_cluster, ready_follows_the_quorum_and_a_restart_keeps_state) {
  cluster c(3);
  ASSERT_TRUE(c.start_all());
  ASSERT_EQ(c.call(1, "POST", "/api/v1/pipelines", flow(10)).status, 201);
  for (uint64_t id : c.live())
    ASSERT_TRUE(c.eventually(id, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }));
  c.kill9(2);
  c.kill9(3);
  EXPECT_TRUE(c.eventually(1, "/ready", [](const client::response& r) { return r.status == 503; }, 5s));
  auto h = c.call(1, "GET", "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(json_number(h.body, "leader_id"), 0) << h.body;
  c.spawn(3);
  ASSERT_TRUE(c.wait_serving(3));
  EXPECT_TRUE(c.eventually(1, "/ready", [](const client::response& r) { return r.status == 200; }, 10s));
  EXPECT_EQ(c.call(3, "GET", "/api/v1/pipelines/greet").status, 200);
  auto r = c.call(3, "POST", "/hooks/greet", R"({"name":"back"})");
  EXPECT_EQ(r.status, 200) << r.body;
}

// Every node starts with the same pipelines directory: the group deploys
// each pipeline once (revision 1), whichever node comes first.
TEST(raft_cluster, a_shared_pipelines_directory_deploys_once) {
  char tmpl[] = "/tmp/xerv-raft-flows-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  {
    FILE* f = fopen((dir + "/greet.yaml").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::string yaml = flow(10);
    fwrite(yaml.data(), 1, yaml.size(), f);
    fclose(f);
  }
  cluster c(3, {"XERV_PIPELINES_DIR=" + dir});
  ASSERT_TRUE(c.start_all());
  for (uint64_t id : c.live())
    EXPECT_TRUE(c.eventually(id, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }))
        << "node " << id;
  std::this_thread::sleep_for(500ms);  // a second deploy would have reached every node by now
  for (uint64_t id : c.live())
    EXPECT_EQ(json_number(c.call(id, "GET", "/api/v1/pipelines/greet").body, "revision"), 1) << "node " << id;
  // A restarted node keeps the group's version too.
  c.kill9(2);
  c.spawn(2);
  ASSERT_TRUE(c.wait_serving(2));
  std::this_thread::sleep_for(300ms);
  for (uint64_t id : c.live())
    EXPECT_EQ(json_number(c.call(id, "GET", "/api/v1/pipelines/greet").body, "revision"), 1) << "node " << id;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// A drain through one node drains the pipeline on every node: each runs the
// traces it had admitted but not started (max_concurrent_executions: 1),
// then stops, as on a single node (SPEC §4).
TEST(raft_cluster, a_drain_through_one_node_runs_what_every_node_had_admitted) {
  cluster c(3, {"XERV_SHARDS=1"});
  ASSERT_TRUE(c.start_all());
  std::string f = flow(800) + "settings: {max_concurrent_executions: 1}\n";
  ASSERT_EQ(c.call(1, "POST", "/api/v1/pipelines", f).status, 201);
  for (uint64_t id : c.live())
    ASSERT_TRUE(c.eventually(id, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }));
  std::vector<std::string> ids;
  for (int i = 0; i < 9; ++i) {
    auto r = c.call(1 + i % 3, "POST", "/hooks/greet-async", R"({"name":"d"})");
    ASSERT_EQ(r.status, 202) << r.body;
    ids.push_back(json_field(r.body, "trace_id"));
  }
  auto drained = c.call(1, "POST", "/api/v1/pipelines/greet/drain");
  ASSERT_EQ(drained.status, 200) << drained.body;
  for (const auto& id : ids)
    EXPECT_TRUE(c.eventually(1, "/api/v1/traces/" + id,
                             [](const client::response& r) { return json_field(r.body, "status") == "completed"; }, 15s))
        << id << ": " << trace_status(c, 1, id);
  for (uint64_t id : c.live())
    EXPECT_TRUE(c.eventually(id, "/api/v1/pipelines/greet", [](const client::response& r) {
      return json_field(r.body, "state") == "stopped";
    })) << "node " << id << ": " << c.call(id, "GET", "/api/v1/pipelines/greet").body;
}

namespace {

std::pair<int, std::string> run_cli(const std::string& args) {
  std::string cmd = std::string(xerv_binary()) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string url(cluster& c, uint64_t id) { return " --url http://127.0.0.1:" + std::to_string(c.at(id).port); }

}  // namespace

// `xerv cluster`: a fourth node joins as a learner and becomes a voter,
// leadership moves to it, then a node leaves and stops taking admissions.
TEST(raft_cluster, cli_adds_transfers_and_removes) {
  cluster c(4);
  // Nodes 1-3 found the group (node 4 hidden while they start, so their
  // peers are 1-3); node 4 starts later, joining it.
  node fourth = std::move(c.nodes.back());
  c.nodes.pop_back();
  ASSERT_TRUE(c.start_all());
  c.nodes.push_back(std::move(fourth));
  c.env_extra.push_back("XERV_DISPATCH_RAFT_JOIN=true");
  c.spawn(4);
  c.env_extra.pop_back();
  uint64_t f = c.follower();
  auto [code, out] = run_cli("cluster add 4 127.0.0.1:" + std::to_string(c.at(4).raft_port) + url(c, f));
  EXPECT_EQ(code, 0) << out;
  ASSERT_TRUE(c.wait_serving(4));
  EXPECT_TRUE(c.eventually(4, "/health", [](const client::response& r) {
    return r.body.find(R"("members":[1,2,3,4])") != std::string::npos;
  })) << c.call(4, "GET", "/health").body;
  auto [scode, status] = run_cli("cluster status" + url(c, 4));
  EXPECT_EQ(scode, 0) << status;
  EXPECT_NE(status.find(R"("node_id":4)"), std::string::npos) << status;
  // Leadership to node 4.
  auto [tcode, tout] = run_cli("cluster transfer 4" + url(c, f));
  EXPECT_EQ(tcode, 0) << tout;
  EXPECT_EQ(c.leader(5s), 4u);
  ASSERT_EQ(c.call(4, "POST", "/api/v1/pipelines", flow(10)).status, 201);
  ASSERT_TRUE(c.eventually(1, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }));
  // Node 1 leaves; it answers /ready 503 and refuses admissions.
  auto [rcode, rout] = run_cli("cluster remove 1" + url(c, 2));
  EXPECT_EQ(rcode, 0) << rout;
  EXPECT_TRUE(c.eventually(1, "/ready", [](const client::response& r) { return r.status == 503; }, 5s));
  EXPECT_NE(c.call(1, "GET", "/ready").body.find("removed"), std::string::npos);
  EXPECT_TRUE(c.eventually(4, "/health", [](const client::response& r) {
    return r.body.find(R"("members":[2,3,4])") != std::string::npos;
  }));
  EXPECT_TRUE(c.eventually(2, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }));
  EXPECT_EQ(c.call(2, "POST", "/hooks/greet", R"({"name":"n"})").status, 200);
  EXPECT_EQ(c.call(1, "POST", "/hooks/greet", R"({"name":"n"})").status, 503);
  auto [bcode, bout] = run_cli("cluster remove 9" + url(c, 2));
  EXPECT_NE(bcode, 0);
  EXPECT_NE(bout.find("404"), std::string::npos) << bout;
}

// A follower down while the others take more entries than a snapshot's worth
// catches up (by snapshot) when it comes back, and so does one down briefly
// (by log).
TEST(raft_cluster, restarted_follower_catches_up_by_log_and_by_snapshot) {
  cluster c(3, {"XERV_DISPATCH_RAFT_SNAPSHOT_ENTRIES=10"});
  ASSERT_TRUE(c.start_all());
  uint64_t l = c.leader();
  ASSERT_EQ(c.call(l, "POST", "/api/v1/pipelines", flow(10)).status, 201);
  uint64_t f = c.follower();
  for (int round = 0; round < 2; ++round) {
    c.kill9(f);
    int n = round == 0 ? 5 : 60;  // under, then over a snapshot's worth
    for (int i = 0; i < n; ++i) ASSERT_EQ(c.call(l, "POST", "/hooks/greet", R"({"name":"s"})").status, 200);
    long long target = json_number(c.call(l, "GET", "/health").body, "commit_index");
    c.spawn(f);
    ASSERT_TRUE(c.wait_serving(f));
    EXPECT_TRUE(c.eventually(f, "/health", [target](const client::response& r) {
      return json_number(r.body, "applied_index") >= target;
    })) << c.call(f, "GET", "/health").body;
    EXPECT_EQ(c.call(f, "POST", "/hooks/greet", R"({"name":"back"})").status, 200);
  }
  EXPECT_GE(std::distance(std::filesystem::directory_iterator(c.at(f).dir + "/raft/snap"),
                          std::filesystem::directory_iterator{}),
            1);
}

// Every node restarted in turn (SIGTERM, then start) under webhook load:
// every admission answered 202 completes.
TEST(raft_cluster, rolling_restart_under_load_loses_nothing) {
  cluster c(3);
  ASSERT_TRUE(c.start_all());
  ASSERT_EQ(c.call(1, "POST", "/api/v1/pipelines", flow(50)).status, 201);
  for (uint64_t id : c.live())
    ASSERT_TRUE(c.eventually(id, "/api/v1/pipelines/greet", [](const client::response& r) { return r.status == 200; }));
  std::vector<std::string> acked;
  auto load = [&](std::chrono::milliseconds d) {
    auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end)
      for (uint64_t id : c.live()) {
        auto r = c.call(id, "POST", "/hooks/greet-async", R"({"name":"r"})");
        if (r.status == 202) acked.push_back(json_field(r.body, "trace_id"));
      }
  };
  for (uint64_t id = 1; id <= 3; ++id) {
    load(500ms);
    c.at(id).proc->signal(SIGTERM);
    c.at(id).port = 0;
    load(300ms);
    EXPECT_TRUE(c.at(id).proc->wait_exit(30s).has_value());
    c.spawn(id);
    ASSERT_TRUE(c.wait_serving(id));
  }
  load(500ms);
  EXPECT_GT(acked.size(), 30u);
  for (const auto& t : acked) {
    bool done = false;
    auto end = std::chrono::steady_clock::now() + 20s;
    while (!done && std::chrono::steady_clock::now() < end) {
      done = trace_status(c, 1, t) == "completed";
      if (!done) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(done) << t << ": " << c.call(1, "GET", "/api/v1/traces/" + t).body;
  }
}
