// Durability under kill -9 (SPEC §6), with the real binary: webhook load against a
// flow of std::log → std::delay → std::log, SIGKILL at a random instant, then a
// restart on the same data dir. Checked against the WAL as it was at the crash
// (read offline with `xerv inspect --all`) and the second process's own log:
//   - every acknowledged trace (202, or 200 for the sync trigger) was durable and
//     completes after the restart; a 200 was only sent for a durably completed one;
//   - a node recorded completed at the crash does not run again (its side effect,
//     a log line naming the trace, is absent from the second process's log);
//     every other node of an unfinished trace runs exactly once;
//   - no trace is left half-done, and each trace's durable history holds every
//     node exactly once.
// The seed is printed; XERV_CRASH_SEED=N replays one; XERV_CRASH_ITERATIONS=N.
//
// The second test damages WAL files: a torn tail is cut with a warning, a corrupt
// middle stops start-up naming file and offset, --wal-skip-corrupt starts anyway.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>

#include "core/json.h"
#include "tests/integration/xerv_process.h"

namespace {

using xerv::testing::json_number;
using xerv::testing::client;
using xerv::testing::request;
using xerv::testing::xerv_process;
namespace fs = std::filesystem;

const char* k_flow = R"(name: crash_flow
version: "1"
triggers:
  - {id: async_hook, type: webhook, params: {path: /hooks/async, method: POST, respond: async}}
  - {id: sync_hook, type: webhook, params: {path: /hooks/sync, method: POST, respond: sync}}
nodes:
  first:  {type: std::log, config: {message: "effect"}}
  pause:  {type: std::delay, config: {ms: 120}}
  second: {type: std::log, config: {message: "effect"}}
edges:
  - {from: async_hook, to: first}
  - {from: sync_hook, to: first}
  - {from: first, to: pause}
  - {from: pause, to: second}
settings: {max_concurrent_executions: 10000}
)";

struct tmp_dir {
  fs::path path;
  explicit tmp_dir(const std::string& name) {
    path = fs::temp_directory_path() / (name + "-" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~tmp_dir() {
    if (!::testing::Test::HasFailure()) fs::remove_all(path);
  }
};

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// One trace as `xerv inspect --all` printed it.
struct durable_trace {
  std::string status;
  std::map<std::string, int> nodes;      // node → times recorded
  std::map<std::string, int> log_lines;  // node → journaled log lines
};

std::map<std::string, durable_trace> inspect_all(const fs::path& data_dir) {
  std::map<std::string, durable_trace> out;
  std::string text = run_capture(std::string(XERV_BINARY) + " inspect --all --data-dir " + data_dir.string() + " 2>&1");
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto parsed = xerv::core::parse_json(line);
    auto* v = std::get_if<xerv::core::value>(&parsed);
    EXPECT_NE(v, nullptr) << "xerv inspect printed: " << line;
    if (!v) continue;
    auto r = v->ref();
    durable_trace t;
    t.status = std::string(r.find("status")->as_string());
    auto nodes = *r.find("nodes");
    for (uint32_t i = 0; i < nodes.size(); ++i) ++t.nodes[std::string(nodes.at(i).find("node")->as_string())];
    auto logs = *r.find("logs");
    for (uint32_t i = 0; i < logs.size(); ++i) ++t.log_lines[std::string(logs.at(i).find("node")->as_string())];
    out[std::string(r.find("trace_id")->as_string())] = t;
  }
  return out;
}

// "trace ID NODE: effect" lines of a server log, counted per (trace, node).
std::map<std::pair<std::string, std::string>, int> effects(const std::string& log) {
  std::map<std::pair<std::string, std::string>, int> out;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    size_t at = line.find("trace ");
    if (at == std::string::npos || !line.ends_with(": effect")) continue;
    std::istringstream words(line.substr(at + 6));
    std::string id, node;
    words >> id >> node;
    if (node.ends_with(':')) node.pop_back();
    ++out[{id, node}];
  }
  return out;
}

std::vector<std::string> serve_env(const fs::path& data, const fs::path& flows) {
  return {"XERV_SHARDS=2",
          "XERV_DATA_DIR=" + data.string(),
          "XERV_PIPELINES_DIR=" + flows.string(),
          "XERV_LOG_FORMAT=compact",
          "XERV_WAL_SEGMENT_BYTES=256KiB",
          "XERV_ARENA_BYTES=4MiB",
          "XERV_DRAIN_TIMEOUT_MS=5000"};
}


// A trace's status as the API reports it (the first "status" of the reply is the
// trace's own; its nodes' come after), polled until `want` or about 10 s.
std::string wait_status(uint16_t port, const std::string& id, const std::string& want = "completed") {
  std::string status;
  for (int tries = 0; tries < 500 && status != want; ++tries) {
    auto r = request(port, "GET", "/api/v1/traces/" + id, "", 3000);
    size_t at = r.body.find("\"status\":\"");
    status = at == std::string::npos ? "" : r.body.substr(at + 10, r.body.find('"', at + 10) - at - 10);
    if (status != want) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

TEST(crash, kill_9_under_load_loses_nothing_acknowledged) {
  uint64_t seed = std::random_device{}();
  if (const char* s = getenv("XERV_CRASH_SEED")) seed = std::stoull(s);
  int iterations = 20;
  if (const char* s = getenv("XERV_CRASH_ITERATIONS")) iterations = std::stoi(s);
  printf("crash test seed %llu (replay with XERV_CRASH_SEED=%llu)\n", static_cast<unsigned long long>(seed),
         static_cast<unsigned long long>(seed));
  fflush(stdout);
  std::mt19937_64 rng(seed);
  tmp_dir root("xerv-crash");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "crash.yaml") << k_flow;

  size_t total_acked = 0, total_resumed_nodes = 0;
  for (int it = 0; it < iterations; ++it) {
    SCOPED_TRACE("iteration " + std::to_string(it) + ", seed " + std::to_string(seed));
    fs::path data = root.path / ("data-" + std::to_string(it));
    auto env = serve_env(data, root.path / "flows");

    // 1. Load, then kill -9 at a random instant.
    std::set<std::string> acked_async, acked_sync;
    {
      xerv_process p1(env);
      uint16_t port = p1.wait_ready();
      ASSERT_NE(port, 0) << p1.log();
      std::atomic<bool> stop{false};
      std::mutex mu;
      std::vector<std::thread> load;
      for (int c = 0; c < 6; ++c)
        load.emplace_back([&, c] {
          bool sync = c % 3 == 0;
          while (!stop) {
            auto r = request(port, "POST", sync ? "/hooks/sync" : "/hooks/async", R"({"n":1})", 3000);
            if (!r.complete) break;  // killed
            if (r.status != 200 && r.status != 202) continue;
            std::lock_guard lock(mu);
            (r.status == 200 ? acked_sync : acked_async).insert(r.headers["x-xerv-trace-id"]);
          }
        });
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 700));
      p1.signal(SIGKILL);
      stop = true;
      for (auto& t : load) t.join();
      ASSERT_TRUE(p1.wait_exit(std::chrono::milliseconds(5000)).has_value());
    }
    total_acked += acked_async.size() + acked_sync.size();

    // 2. What the WAL held at the crash. A killed process's in-flight ring writes
    // still reach the file after it is reaped (the kernel finishes them), so read
    // until two reads agree.
    auto at_crash = inspect_all(data);
    for (int tries = 0; tries < 50; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto again = inspect_all(data);
      bool same = again.size() == at_crash.size();
      for (auto a = again.begin(), b = at_crash.begin(); same && a != again.end(); ++a, ++b)
        same = a->first == b->first && a->second.status == b->second.status && a->second.nodes == b->second.nodes;
      at_crash = std::move(again);
      if (same) break;
    }
    for (const auto& id : acked_async) EXPECT_TRUE(at_crash.count(id)) << "acknowledged trace " << id << " was not durable";
    for (const auto& id : acked_sync) {
      ASSERT_TRUE(at_crash.count(id)) << "200 for trace " << id << " that was not durable";
      EXPECT_EQ(at_crash[id].status, "completed") << "200 sent before trace " << id << " durably completed";
    }

    // 3. Restart on the same data dir; every trace must complete.
    xerv_process p2(env);
    uint16_t port = p2.wait_ready();
    ASSERT_NE(port, 0) << p2.log();
    for (const auto& [id, t] : at_crash) EXPECT_EQ(wait_status(port, id), "completed") << "trace " << id << " after the restart";
    auto health = request(port, "GET", "/health", "", 3000);
    size_t unfinished = 0;
    for (const auto& [id, t] : at_crash) unfinished += t.status == "unfinished";
    EXPECT_NE(health.body.find("\"recovered_traces\":" + std::to_string(unfinished)), std::string::npos) << health.body;
    p2.signal(SIGTERM);
    ASSERT_EQ(p2.wait_exit(std::chrono::milliseconds(15000)), 0) << p2.log();

    // 4. Side effects in the second life: only the nodes not yet recorded ran.
    auto ran = effects(p2.log());
    for (const auto& [id, t] : at_crash) {
      for (const char* node : {"first", "second"}) {
        int expected = t.nodes.count(node) ? 0 : 1;
        total_resumed_nodes += expected;
        int runs = ran[std::make_pair(id, std::string(node))];
        EXPECT_EQ(runs, expected)
            << "trace " << id << " node " << node << (expected ? " should have run once after the restart"
                                                               : " was recorded completed but ran again");
      }
    }
    // 5. The durable history afterwards: every trace complete, each node once.
    auto after = inspect_all(data);
    EXPECT_EQ(after.size(), at_crash.size());
    for (const auto& [id, t] : after) {
      EXPECT_EQ(t.status, "completed") << id;
      for (const char* node : {"first", "pause", "second"})
        EXPECT_EQ(t.nodes.count(node) ? t.nodes.at(node) : 0, 1) << "trace " << id << " node " << node;
      for (const char* node : {"first", "second"})
        EXPECT_EQ(t.log_lines.count(node) ? t.log_lines.at(node) : 0, 1) << "trace " << id << " log of " << node;
    }
    if (HasFailure()) break;
    fs::remove_all(data);
  }
  printf("%d iterations: %zu traces acknowledged, %zu nodes resumed after kill -9\n", iterations, total_acked,
         total_resumed_nodes);
  EXPECT_GT(total_acked, size_t(0));
  EXPECT_GT(total_resumed_nodes, size_t(0)) << "no kill landed while traces were running: the test proved nothing";
}

// Where the written part of a preallocated segment ends (the rest reads as zeros).
size_t written_end(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t end = bytes.size();
  while (end > 0 && bytes[end - 1] == 0) --end;
  return end;
}

void flip(const fs::path& file, size_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x5a);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

TEST(crash, torn_tail_is_cut_and_corrupt_middle_stops_start) {
  tmp_dir root("xerv-corrupt");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "crash.yaml") << k_flow;
  fs::path data = root.path / "data";
  auto env = serve_env(data, root.path / "flows");
  env[0] = "XERV_SHARDS=1";
  fs::path wal = data / "wal" / "shard-0";
  auto segments = [&] {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(wal)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  };
  auto run_some = [&](int n) {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    for (int i = 0; i < n; ++i) EXPECT_EQ(request(port, "POST", "/hooks/sync", R"({"n":2})", 5000).status, 200);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
  };
  run_some(5);
  run_some(5);  // a second life: a second segment
  auto segs = segments();
  ASSERT_EQ(segs.size(), 2u);
  size_t before = inspect_all(data).size();
  ASSERT_EQ(before, 10u);

  // Torn tail: damage the last record of the newest segment.
  flip(segs.back(), written_end(segs.back()) - 3);
  {
    xerv_process p(env);
    ASSERT_NE(p.wait_ready(), 0) << p.log();
    EXPECT_NE(p.log().find("torn tail"), std::string::npos) << p.log();
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
  }
  auto after_tail = inspect_all(data);
  EXPECT_EQ(after_tail.size(), 10u);  // the last record was an end record: the trace itself stays
  size_t done = 0;
  for (const auto& [id, t] : after_tail) done += t.status == "completed";
  EXPECT_EQ(done, 10u) << "the trace whose end record was cut resumed and completed";

  // Corrupt middle: damage the oldest segment, which later segments follow.
  flip(segs.front(), 100);
  auto [code, log] = xerv::testing::run_xerv_expect_exit(env);
  EXPECT_EQ(code, 1) << log;
  EXPECT_NE(log.find(segs.front().string()), std::string::npos) << log;
  EXPECT_NE(log.find("corrupt record at offset "), std::string::npos) << log;
  EXPECT_NE(log.find("--wal-skip-corrupt"), std::string::npos) << log;

  xerv_process p(env, {"--wal-skip-corrupt"});
  ASSERT_NE(p.wait_ready(), 0) << p.log();
  EXPECT_NE(p.log().find("drops the rest of this segment"), std::string::npos) << p.log();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
}

}  // namespace

namespace {

// SIGTERM (SPEC §11): running traces get XERV_DRAIN_TIMEOUT_MS to finish; the
// ones that do are durably completed, the rest resume after the restart.
TEST(shutdown, sigterm_drains_short_traces_and_resumes_long_ones) {
  tmp_dir root("xerv-drain");
  fs::create_directories(root.path / "flows");
  std::string slow = k_flow;
  slow.replace(slow.find("name: crash_flow"), 16, "name: slow_flow");
  slow.replace(slow.find("/hooks/async"), 12, "/hooks/slow1");
  slow.replace(slow.find("/hooks/sync"), 11, "/hooks/slow2");
  slow.replace(slow.find("ms: 120"), 7, "ms: 4000");
  std::ofstream(root.path / "flows" / "crash.yaml") << k_flow;
  std::ofstream(root.path / "flows" / "slow.yaml") << slow;
  fs::path data = root.path / "data";
  auto env = serve_env(data, root.path / "flows");
  env.back() = "XERV_DRAIN_TIMEOUT_MS=1000";

  std::string quick_id, slow_id;
  {
    xerv_process p(env, {"--shutdown-timeout-ms", "1000"});
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    auto quick = request(port, "POST", "/hooks/async", "{}", 5000);
    auto long_one = request(port, "POST", "/hooks/slow1", "{}", 5000);
    ASSERT_EQ(quick.status, 202);
    ASSERT_EQ(long_one.status, 202);
    quick_id = quick.headers["x-xerv-trace-id"];
    slow_id = long_one.headers["x-xerv-trace-id"];
    // A sync caller waiting on a long trace must not hold the stop up.
    client::response sync_answer;
    std::thread sync_caller([&] { sync_answer = request(port, "POST", "/hooks/slow2", "{}", 10000); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // Running traces keep their input and outputs in the arena.
    auto metrics = request(port, "GET", "/metrics", "", 3000).body;
    size_t at = metrics.find("\nxerv_arena_size_bytes ");
    ASSERT_NE(at, std::string::npos) << metrics.substr(0, 3000);
    EXPECT_GT(std::stod(metrics.substr(at + 23)), 0.0) << metrics.substr(at, 60);
    auto t0 = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    sync_caller.join();
    EXPECT_EQ(sync_answer.status, 503) << sync_answer.body;
    EXPECT_NE(sync_answer.body.find("resumes after the restart"), std::string::npos) << sync_answer.body;
    ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(10000)), 0) << p.log();
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, std::chrono::milliseconds(3500)) << "the drain is bounded by XERV_DRAIN_TIMEOUT_MS";
    EXPECT_NE(p.log().find("waiting up to 1000 ms for"), std::string::npos) << p.log();
  }
  auto durable = inspect_all(data);
  EXPECT_EQ(durable[quick_id].status, "completed") << "a short trace finishes during the drain";
  EXPECT_EQ(durable[slow_id].status, "unfinished") << "a long one is left to resume, not failed";
  EXPECT_EQ(durable[slow_id].nodes.count("first"), 1u);

  xerv_process p(env);
  uint16_t port = p.wait_ready();
  ASSERT_NE(port, 0) << p.log();
  EXPECT_EQ(wait_status(port, slow_id), "completed");
  // Every trace has ended: the arena holds nothing.
  auto metrics = request(port, "GET", "/metrics", "", 3000).body;
  EXPECT_NE(metrics.find("\nxerv_arena_size_bytes 0\n"), std::string::npos) << metrics.substr(0, 3000);
  p.signal(SIGTERM);
  ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(10000)), 0) << p.log();
  auto ran = effects(p.log());
  EXPECT_EQ(ran[std::make_pair(slow_id, std::string("first"))], 0) << "recorded before the stop: not run again";
  EXPECT_EQ(ran[std::make_pair(slow_id, std::string("second"))], 1);
}

}  // namespace

namespace {

TEST(crash, refuses_fewer_shards_than_the_wal_was_written_by) {
  tmp_dir root("xerv-shards");
  fs::create_directories(root.path / "wal" / "shard-3");
  std::ofstream(root.path / "wal" / "shard-3" / "00000000000000000001.wal") << "x";
  auto [code, log] = xerv::testing::run_xerv_expect_exit({"XERV_SHARDS=2", "XERV_DATA_DIR=" + root.path.string()});
  EXPECT_EQ(code, 2) << log;
  EXPECT_NE(log.find("start with XERV_SHARDS=4 or more"), std::string::npos) << log;
}

}  // namespace

namespace {

// A trace whose result cannot fit in one WAL record fails with a clear message
// instead of bringing the server down, and a restart does not run it again.
TEST(crash, an_output_too_big_for_the_wal_fails_the_trace_not_the_server) {
  tmp_dir root("xerv-big");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "big.yaml") << R"(name: big
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/big, method: POST, respond: sync}}
nodes:
  grow: {type: std::loop, config: {max_iterations: 17}}
  twice: {type: std::concat, config: {parts: ["$.s", "$.s"], output_field: s}}
  done: {type: std::log, config: {message: "grown"}}
edges:
  - {from: hook, to: grow}
  - {from: grow.continue, to: twice}
  - {from: twice, to: grow}
  - {from: grow.exit, to: done}
settings: {execution_timeout_ms: 120000}
)";
  auto env = serve_env(root.path / "data", root.path / "flows");
  std::string id;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    auto r = request(port, "POST", "/hooks/big", R"({"s":")" + std::string(1024, 'x') + R"("})", 60000);
    ASSERT_TRUE(r.complete) << p.log().substr(0, 4000);
    EXPECT_EQ(r.status, 500) << r.body.substr(0, 500);
    EXPECT_NE(r.body.find("exceed what a write-ahead log record can hold"), std::string::npos) << r.body.substr(0, 500);
    id = r.headers["x-xerv-trace-id"];
    EXPECT_EQ(request(port, "GET", "/health", "", 3000).status, 200);
    p.signal(SIGKILL);
    p.wait_exit(std::chrono::milliseconds(5000));
  }
  xerv_process p(env);
  uint16_t port = p.wait_ready();
  ASSERT_NE(port, 0) << p.log();
  EXPECT_EQ(wait_status(port, id, "failed"), "failed");
  EXPECT_NE(request(port, "GET", "/health", "", 3000).body.find("\"recovered_traces\":0"), std::string::npos);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
}

}  // namespace

namespace {

const char* k_keyed_flows[][2] = {
    {"keyed.yaml", R"(name: keyed
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/keyed, method: POST}}
nodes:
  note: {type: std::log, config: {message: "keyed"}}
edges:
  - {from: hook, to: note}
)"},
    {"keyed_sync.yaml", R"(name: keyed_sync
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/keyed_sync, method: POST, respond: sync}}
nodes:
  note: {type: std::log, config: {message: "sync"}}
edges:
  - {from: hook, to: note}
)"}};

std::string key_header(const std::string& k) { return "Idempotency-Key: " + k + "\r\n"; }

size_t oldest_segment(const fs::path& shard_dir) {
  size_t oldest = SIZE_MAX;
  for (const auto& e : fs::directory_iterator(shard_dir))
    if (e.path().extension() == ".wal") oldest = std::min<size_t>(oldest, std::stoull(e.path().stem().string()));
  return oldest;
}

// The same Idempotency-Key never starts a second trace: on any connection
// (whatever shard takes it), concurrently, after kill -9, and after the WAL
// segment that first recorded it was deleted by retention (the key is written
// again before the segment goes).
TEST(crash, an_idempotency_key_keeps_its_trace_across_kill_9_and_segment_deletion) {
  tmp_dir root("xerv-idem");
  fs::create_directories(root.path / "flows");
  for (auto& [file, yaml] : k_keyed_flows) std::ofstream(root.path / "flows" / file) << yaml;
  auto env = serve_env(root.path / "data", root.path / "flows");
  env.push_back("XERV_TRACE_RETENTION=1s");
  std::string first, sync_first, sync_body;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    auto r = request(port, "POST", "/hooks/keyed", R"({"n":1})", 3000, key_header("order-1"));
    ASSERT_EQ(r.status, 202) << r.body;
    first = r.headers["x-xerv-trace-id"];
    EXPECT_EQ(r.headers.count("idempotency-replayed"), 0u);
    for (int i = 0; i < 8; ++i) {  // fresh connections: both shards answer
      auto again = request(port, "POST", "/hooks/keyed", R"({"n":2})", 3000, key_header("order-1"));
      EXPECT_EQ(again.status, 202) << again.body;
      EXPECT_EQ(again.headers["x-xerv-trace-id"], first);
      EXPECT_EQ(again.headers["idempotency-replayed"], "true");
    }
    // Same key, other pipeline: its own trace. Sync: the original result.
    auto s = request(port, "POST", "/hooks/keyed_sync", R"({"n":3})", 3000, key_header("order-1"));
    ASSERT_EQ(s.status, 200) << s.body;
    sync_first = s.headers["x-xerv-trace-id"];
    sync_body = s.body;
    EXPECT_NE(sync_first, first);
    auto s2 = request(port, "POST", "/hooks/keyed_sync", R"({"n":4})", 3000, key_header("order-1"));
    EXPECT_EQ(s2.status, 200);
    EXPECT_EQ(s2.headers["x-xerv-trace-id"], sync_first);
    EXPECT_EQ(s2.body, sync_body);
    // A bad key is refused, not ignored.
    EXPECT_EQ(request(port, "POST", "/hooks/keyed", "{}", 3000, key_header(std::string(300, 'k'))).status, 400);
    // Concurrent requests with one new key: one trace.
    std::mutex mu;
    std::set<std::string> ids;
    std::vector<std::thread> racers;
    for (int c = 0; c < 12; ++c)
      racers.emplace_back([&] {
        auto q = request(port, "POST", "/hooks/keyed", R"({"n":5})", 5000, key_header("race"));
        std::lock_guard lock(mu);
        ids.insert(q.status == 202 ? q.headers["x-xerv-trace-id"] : "status " + std::to_string(q.status));
      });
    for (auto& t : racers) t.join();
    EXPECT_EQ(ids.size(), 1u) << *ids.begin();
    auto listed = request(port, "GET", "/api/v1/traces?pipeline_id=keyed&limit=1000", "", 3000);
    // order-1 and race: two traces, whatever the requests.
    EXPECT_NE(listed.body.find("\"total\":2"), std::string::npos) << listed.body.substr(0, 400);
    // Enough unkeyed traces to fill several 256 KiB segments per shard, then
    // past retention: the segments holding the keys' first records go.
    // (Connections land on either shard: a dozen of them reach both.)
    for (int conn = 0; conn < 12; ++conn) {
      client c(port);
      for (int i = 0; i < 1000; ++i) {
        std::string body = R"({"n":)" + std::to_string(i) + "}";
        ASSERT_TRUE(c.send("POST /hooks/keyed HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body));
        ASSERT_EQ(c.read_response(5000).status, 202);
      }
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((oldest_segment(root.path / "data" / "wal" / "shard-0") == 1 ||
            oldest_segment(root.path / "data" / "wal" / "shard-1") == 1) &&
           std::chrono::steady_clock::now() < deadline) {
      // A shard that took few of the connections may still be writing its
      // first segment: more traffic, on a fresh connection (either shard).
      client c(port);
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(c.send("POST /hooks/keyed HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
        ASSERT_EQ(c.read_response(5000).status, 202);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ASSERT_GT(oldest_segment(root.path / "data" / "wal" / "shard-0"), 1u);
    ASSERT_GT(oldest_segment(root.path / "data" / "wal" / "shard-1"), 1u);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the relogged records' write
    p.signal(SIGKILL);
    ASSERT_TRUE(p.wait_exit(std::chrono::milliseconds(5000)).has_value());
  }
  xerv_process p(env);
  uint16_t port = p.wait_ready();
  ASSERT_NE(port, 0) << p.log();
  for (int i = 0; i < 4; ++i) {
    auto r = request(port, "POST", "/hooks/keyed", R"({"n":9})", 3000, key_header("order-1"));
    EXPECT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.headers["x-xerv-trace-id"], first);
    EXPECT_EQ(r.headers["idempotency-replayed"], "true");
    auto s = request(port, "POST", "/hooks/keyed_sync", R"({"n":9})", 3000, key_header("order-1"));
    EXPECT_EQ(s.headers["x-xerv-trace-id"], sync_first);
    EXPECT_EQ(s.headers["idempotency-replayed"], "true");
  }
  auto fresh = request(port, "POST", "/hooks/keyed", R"({"n":9})", 3000, key_header("order-2"));
  EXPECT_EQ(fresh.status, 202);
  EXPECT_NE(fresh.headers["x-xerv-trace-id"], first);
  EXPECT_EQ(fresh.headers.count("idempotency-replayed"), 0u);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
}

}  // namespace

namespace {

// hook → gate (std::wait) → slow (std::delay 1.5 s) → done ("effect" logged),
// or → expired (on timeout, escalate).
std::string wait_flow(const std::string& gate) {
  return R"(name: waits
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/waits, method: POST}}
nodes:
  gate: {type: std::wait, config: )" + gate + R"(}
  slow: {type: std::delay, config: {ms: 1500}}
  done: {type: std::log, config: {message: "effect"}}
  expired: {type: std::log, config: {message: "effect"}}
edges:
  - {from: hook, to: gate}
  - {from: gate.out, to: slow}
  - {from: slow, to: done}
  - {from: gate.escalated, to: expired}
)";
}

void kill9(xerv_process& p) {
  p.signal(SIGKILL);
  ASSERT_TRUE(p.wait_exit(std::chrono::milliseconds(5000)).has_value());
}

// Suspensions survive kill -9; a resume answered 200 before a kill -9 is
// neither lost nor applied twice (the trace goes on from its wait, its later
// node runs once); a second resume after the restart is 409.
TEST(crash, suspensions_and_acknowledged_resumes_survive_kill_9) {
  tmp_dir root("xerv-wait");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "waits.yaml") << wait_flow(R"({hook_id: "h-${hook.n}"})");
  auto env = serve_env(root.path / "data", root.path / "flows");
  std::vector<std::string> ids;
  std::string all_logs;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    for (int n = 0; n < 4; ++n) {
      auto r = request(port, "POST", "/hooks/waits", R"({"n":)" + std::to_string(n) + "}", 3000);
      ASSERT_EQ(r.status, 202) << r.body;
      ids.push_back(xerv::testing::json_field(r.body, "trace_id"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the suspended records are durable (202 async)
    kill9(p);
    all_logs += p.log();
  }
  auto inspect = [&](const std::string& id) {
    return run_capture(std::string(XERV_BINARY) + " inspect " + id + " --data-dir " + (root.path / "data").string());
  };
  std::string seen = inspect(ids[0]);
  EXPECT_NE(seen.find(R"("status":"suspended")"), std::string::npos) << seen;
  EXPECT_NE(seen.find(R"("suspension":{"hook_id":"h-0","node":"gate")"), std::string::npos) << seen;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    auto listed = request(port, "GET", "/api/v1/suspensions", "", 3000);
    EXPECT_NE(listed.body.find(R"("count":4)"), std::string::npos) << listed.body;
    EXPECT_EQ(wait_status(port, ids[0], "suspended"), "suspended");
    // Resume two (by hook and by id), then kill -9 while they sit in std::delay.
    auto a = request(port, "POST", "/api/v1/suspensions/h-0/resume", R"({"decision":"approve"})", 3000);
    EXPECT_EQ(a.status, 200) << a.body;
    auto b = request(port, "POST", "/api/v1/suspensions/" + ids[1] + "/resume", R"({"decision":"approve"})", 3000);
    EXPECT_EQ(b.status, 200) << b.body;
    kill9(p);
    all_logs += p.log();
  }
  seen = inspect(ids[1]);
  EXPECT_NE(seen.find(R"("status":"unfinished")"), std::string::npos) << seen;
  EXPECT_NE(seen.find(R"("decision":"approve","response_data":{})"), std::string::npos) << seen;
  xerv_process p(env);
  uint16_t port = p.wait_ready();
  ASSERT_NE(port, 0) << p.log();
  EXPECT_EQ(wait_status(port, ids[0]), "completed");
  EXPECT_EQ(wait_status(port, ids[1]), "completed");
  auto listed = request(port, "GET", "/api/v1/suspensions", "", 3000);
  EXPECT_NE(listed.body.find(R"("count":2)"), std::string::npos) << listed.body;
  // A second resume, by id or by hook, of a trace resumed before the kill: 409.
  for (const std::string& target : {ids[0], std::string("h-0"), std::string("h-1")}) {
    auto again = request(port, "POST", "/api/v1/suspensions/" + target + "/resume", R"({"decision":"approve"})", 3000);
    EXPECT_EQ(again.status, 409) << target << ": " << again.body;
  }
  // The other two resume to completion in this process.
  EXPECT_EQ(request(port, "POST", "/api/v1/suspensions/h-2/resume", R"({"decision":"approve"})", 3000).status, 200);
  EXPECT_EQ(request(port, "POST", "/api/v1/suspensions/h-3/resume", R"({"decision":"approve"})", 3000).status, 200);
  EXPECT_EQ(wait_status(port, ids[2]), "completed");
  EXPECT_EQ(wait_status(port, ids[3]), "completed");
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0);
  all_logs += p.log();
  auto fx = effects(all_logs);
  for (const auto& id : ids) {
    EXPECT_EQ((fx[{id, "done"}]), 1) << id;
    EXPECT_EQ((fx[{id, "expired"}]), 0) << id;
  }
}

// An expiry that passed while xerv was down fires right after recovery.
TEST(crash, a_suspension_that_expired_while_down_fires_after_recovery) {
  tmp_dir root("xerv-expire");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "waits.yaml") << wait_flow("{timeout_secs: 1, timeout_action: escalate}");
  auto env = serve_env(root.path / "data", root.path / "flows");
  std::string id;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    auto r = request(port, "POST", "/hooks/waits", R"({"n":1})", 3000);
    ASSERT_EQ(r.status, 202);
    id = xerv::testing::json_field(r.body, "trace_id");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    kill9(p);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past its expiry, while down
  xerv_process p(env);
  uint16_t port = p.wait_ready();
  ASSERT_NE(port, 0) << p.log();
  EXPECT_EQ(wait_status(port, id), "completed");
  auto t = request(port, "GET", "/api/v1/traces/" + id, "", 3000);
  EXPECT_NE(t.body.find(R"("expired":{"status":"completed")"), std::string::npos) << t.body;
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0);
}

// A suspension outlives the WAL segment it was recorded in: once that segment
// has expired, the suspended records are written again at the end of the log,
// so old segments are deleted; the suspensions still resume, before and after
// a kill -9.
TEST(crash, a_long_lived_suspension_does_not_keep_old_wal_segments) {
  tmp_dir root("xerv-wait-relog");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "waits.yaml") << wait_flow(R"({hook_id: "h-${hook.n}", metadata_fields: [n]})");
  std::ofstream(root.path / "flows" / "fill.yaml") << R"(name: fill
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/fill, method: POST}}
nodes:
  note: {type: std::log, config: {message: "filler"}}
edges:
  - {from: hook, to: note}
settings: {max_concurrent_executions: 10000}
)";
  auto env = serve_env(root.path / "data", root.path / "flows");
  env[0] = "XERV_SHARDS=1";
  env.push_back("XERV_TRACE_RETENTION=1s");
  fs::path wal = root.path / "data" / "wal" / "shard-0";
  std::vector<std::string> ids;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    for (int n = 0; n < 3; ++n) {
      auto r = request(port, "POST", "/hooks/waits", R"({"n":)" + std::to_string(n) + "}", 3000);
      ASSERT_EQ(r.status, 202) << r.body;
      ids.push_back(xerv::testing::json_field(r.body, "trace_id"));
    }
    // Enough traces to fill several 256 KiB segments; then, past retention,
    // every segment but the newest can go.
    client c(port);
    for (int i = 0; i < 4000; ++i) {
      std::string body = R"({"n":)" + std::to_string(i) + "}";
      ASSERT_TRUE(c.send("POST /hooks/fill HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\n\r\n" + body));
      ASSERT_EQ(c.read_response(5000).status, 202);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (oldest_segment(wal) == 1 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_GT(oldest_segment(wal), 1u) << "the segment holding the suspensions was never deleted";
    // Resumed from its copy.
    auto a = request(port, "POST", "/api/v1/suspensions/h-0/resume", R"({"decision":"approve"})", 3000);
    EXPECT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(wait_status(port, ids[0]), "completed");
    kill9(p);
  }
  xerv_process p(env);
  uint16_t port = p.wait_ready();
  ASSERT_NE(port, 0) << p.log();
  auto listed = request(port, "GET", "/api/v1/suspensions", "", 3000);
  EXPECT_NE(listed.body.find(R"("count":2)"), std::string::npos) << listed.body;
  EXPECT_NE(listed.body.find(R"("metadata":{"n":2})"), std::string::npos) << listed.body;
  auto t = request(port, "GET", "/api/v1/traces/" + ids[1], "", 3000);
  EXPECT_NE(t.body.find(R"("input":{"n":1})"), std::string::npos) << t.body;
  // (Each checked right away: a finished trace is kept for 1 s here.)
  EXPECT_EQ(request(port, "POST", "/api/v1/suspensions/" + ids[2] + "/resume", R"({"decision":"reject"})", 3000)
                .status,
            200);
  EXPECT_EQ(wait_status(port, ids[2]), "completed");
  EXPECT_EQ(request(port, "POST", "/api/v1/suspensions/h-1/resume", R"({"decision":"approve"})", 3000).status, 200);
  EXPECT_EQ(wait_status(port, ids[1]), "completed");
  EXPECT_NE(request(port, "GET", "/api/v1/traces/" + ids[1], "", 3000).body.find(R"("done":{"status":"completed")"),
            std::string::npos);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
}

// Every trace `xerv inspect --all` finds in `data`, parsed (a line that does
// not parse fails the test).
std::vector<xerv::core::value> inspected(const fs::path& data) {
  std::vector<xerv::core::value> out;
  std::string text = run_capture(std::string(XERV_BINARY) + " inspect --all --data-dir " + data.string() + " 2>&1");
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto parsed = xerv::core::parse_json(line);
    if (auto* v = std::get_if<xerv::core::value>(&parsed)) out.push_back(std::move(*v));
    else ADD_FAILURE() << "xerv inspect printed: " << line;
  }
  return out;
}

// "2026-12-03T09:50:32.123Z" → Unix ms.
int64_t rfc3339_ms(std::string_view t) {
  int y, mo, d, h, mi, sec, ms;
  if (sscanf(std::string(t).c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &y, &mo, &d, &h, &mi, &sec, &ms) != 7) return -1;
  struct tm tm{};
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
  return int64_t(timegm(&tm)) * 1000 + ms;
}

// Every second, with each missed policy: kill -9 while it fires, 5 s down,
// then a clean restart. Each instant fires at most once; after the restart
// run_all fires every instant it missed, run_once one, skip none.
TEST(crash, cron_fires_once_per_instant_across_kill_9_with_each_missed_policy) {
  tmp_dir root("xerv-cron");
  fs::create_directories(root.path / "flows");
  for (const char* policy : {"run_all", "run_once", "skip"})
    std::ofstream(root.path / "flows" / (std::string(policy) + ".yaml")) << "name: c_" << policy << R"(
version: "1"
triggers:
  - {id: every, type: cron, params: {schedule: "* * * * * *", missed: )" << policy << R"(}}
nodes:
  note: {type: std::log, config: {message: "tick"}}
edges:
  - {from: every, to: note}
)";
  fs::path data = root.path / "data";
  auto env = serve_env(data, root.path / "flows");
  {
    xerv_process p(env);
    ASSERT_NE(p.wait_ready(), 0) << p.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(2600));
    kill9(p);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(5000));  // about 4 instants missed, 1 still on time
  {
    xerv_process p(env);
    ASSERT_NE(p.wait_ready(), 0) << p.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(2600));
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
  }
  // Per pipeline: the instants fired for, and how late each fired.
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> fired;
  for (const auto& v : inspected(data)) {
    auto input = v.ref().find("input");
    ASSERT_TRUE(input && input->find("scheduled_at")) << xerv::core::to_json(v.ref());
    int64_t at = rfc3339_ms(input->find("scheduled_at")->as_string());
    int64_t late = rfc3339_ms(input->find("fired_at")->as_string()) - at;
    EXPECT_EQ(v.ref().find("status")->as_string(), "completed");
    fired[std::string(v.ref().find("pipeline_id")->as_string())].emplace_back(at / 1000, late);
  }
  for (auto& [pipeline, list] : fired) {
    SCOPED_TRACE(pipeline);
    std::sort(list.begin(), list.end());
    for (size_t i = 1; i < list.size(); ++i) EXPECT_NE(list[i].first, list[i - 1].first) << "fired twice";
    size_t late = std::count_if(list.begin(), list.end(), [](const auto& f) { return f.second > 1000; });
    size_t gaps = size_t(list.back().first - list.front().first + 1) - list.size();
    if (pipeline == "c_run_all") {
      EXPECT_EQ(gaps, 0u);  // every instant, the missed ones after the restart
      EXPECT_GE(late, 2u);
    } else if (pipeline == "c_run_once") {
      EXPECT_EQ(late, 1u);
      EXPECT_GE(gaps, 2u);
    } else {
      EXPECT_EQ(late, 0u);
      EXPECT_GE(gaps, 3u);
    }
  }
  EXPECT_EQ(fired.size(), 3u);
}

// Instants refused while the pipeline was paused are handled, durably: a
// kill -9 right after the resume, and a restart, does not catch them up
// (run_all), although no fire was journaled since the pause.
TEST(crash, cron_instants_refused_while_paused_are_not_caught_up_after_a_restart) {
  tmp_dir root("xerv-cron-pause");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "c.yaml") << R"(name: c_paused
version: "1"
triggers:
  - {id: every, type: cron, params: {schedule: "* * * * * *", missed: run_all}}
nodes:
  note: {type: std::log, config: {message: "tick"}}
edges:
  - {from: every, to: note}
)";
  fs::path data = root.path / "data";
  auto env = serve_env(data, root.path / "flows");
  auto wall_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  int64_t paused_ms = 0, resumed_ms = 0;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ASSERT_EQ(request(port, "POST", "/api/v1/pipelines/c_paused/pause", "", 3000).status, 200);
    paused_ms = wall_ms();
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    ASSERT_EQ(request(port, "POST", "/api/v1/pipelines/c_paused/resume", "", 3000).status, 200);
    resumed_ms = wall_ms();
    kill9(p);  // at once: (most likely) before the next instant fires and is journaled
  }
  {
    xerv_process p(env);
    ASSERT_NE(p.wait_ready(), 0) << p.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
  }
  size_t fires = 0;
  for (const auto& v : inspected(data)) {
    int64_t at = rfc3339_ms(v.ref().find("input")->find("scheduled_at")->as_string());
    ++fires;
    // (A second of margin either side: the pause and resume land within one.)
    EXPECT_FALSE(at > paused_ms + 1000 && at < resumed_ms - 1000)
        << "an instant refused while paused fired: " << xerv::core::to_json(v.ref());
  }
  EXPECT_GE(fires, 3u);
}

// An hourly schedule and three hours of downtime, played with the clock knob
// (XERV_DEBUG_CLOCK_OFFSET_MS) after a kill -9: run_all fires each of the three
// missed instants, run_once the newest, skip none; and a second restart at the
// same time fires nothing again (the last fire is journaled).
TEST(crash, hourly_cron_after_three_hours_down_follows_each_missed_policy) {
  tmp_dir root("xerv-cron-hours");
  fs::create_directories(root.path / "flows");
  for (const char* policy : {"run_all", "run_once", "skip"})
    std::ofstream(root.path / "flows" / (std::string(policy) + ".yaml")) << "name: h_" << policy << R"(
version: "1"
triggers:
  - {id: hourly, type: cron, params: {schedule: "0 * * * *", missed: )" << policy << R"(}}
nodes:
  note: {type: std::log, config: {message: "tick"}}
edges:
  - {from: hourly, to: note}
)";
  fs::path data = root.path / "data";
  auto env = serve_env(data, root.path / "flows");
  int64_t deployed_ms = 0;
  {
    xerv_process p(env);
    ASSERT_NE(p.wait_ready(), 0) << p.log();
    deployed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the deploy marks are durable
    kill9(p);
  }
  const int64_t hour = 3'600'000, offset = 3 * hour;
  auto later = env;
  later.push_back("XERV_DEBUG_CLOCK_OFFSET_MS=" + std::to_string(offset));
  for (int start = 0; start < 2; ++start) {
    xerv_process p(later);
    ASSERT_NE(p.wait_ready(), 0) << p.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
  }
  std::map<std::string, std::vector<int64_t>> fired;  // pipeline -> the instants, in hours
  for (const auto& v : inspected(data)) {
    auto input = v.ref().find("input");
    ASSERT_TRUE(input && input->find("scheduled_at")) << xerv::core::to_json(v.ref());
    EXPECT_EQ(v.ref().find("status")->as_string(), "completed");
    fired[std::string(v.ref().find("pipeline_id")->as_string())].push_back(
        rfc3339_ms(input->find("scheduled_at")->as_string()) / hour);
  }
  for (auto& [p, list] : fired) std::sort(list.begin(), list.end());
  int64_t first = deployed_ms / hour + 1;  // the first whole hour after the deploy
  EXPECT_EQ(fired["h_run_all"], (std::vector<int64_t>{first, first + 1, first + 2}));
  EXPECT_EQ(fired["h_run_once"], (std::vector<int64_t>{first + 2}));
  EXPECT_EQ(fired.count("h_skip"), 0u);
}

// A message acknowledged (202) is consumed by exactly one trace, also when
// xerv is killed -9 right after: none lost, none twice.
TEST(crash, queue_messages_are_consumed_exactly_once_across_kill_9) {
  tmp_dir root("xerv-queue");
  fs::create_directories(root.path / "flows");
  std::ofstream(root.path / "flows" / "consumer.yaml") << R"(name: consumer
version: "1"
triggers:
  - {id: inbox, type: queue, params: {queue: jobs, capacity: 100000}}
nodes:
  work: {type: std::delay, config: {ms: 20}}
  note: {type: std::log, config: {message: "effect"}}
edges:
  - {from: inbox, to: work}
  - {from: work, to: note}
settings: {max_concurrent_executions: 4}
)";
  fs::path data = root.path / "data";
  auto env = serve_env(data, root.path / "flows");
  const int n = 300;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    client c(port);
    for (int i = 0; i < n; ++i) {
      std::string body = R"({"n":)" + std::to_string(i) + "}";
      ASSERT_TRUE(c.send("POST /api/v1/queues/jobs/messages HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n\r\n" + body));
      ASSERT_EQ(c.read_response(5000).status, 202);
    }
    kill9(p);  // most of them not run yet
  }
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    // The messages not run before the kill are in the queue's depth again.
    long long depth = -1;
    for (int i = 0; i < 100 && depth <= 0; ++i) {
      depth = json_number(request(port, "GET", "/api/v1/queues", "", 3000).body, "depth");
      if (depth <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_GT(depth, 0);
    EXPECT_LE(depth, n);
    std::string q;
    for (int i = 0; i < 500; ++i) {  // until every message is taken and run (10 s at most)
      q = request(port, "GET", "/api/v1/traces?pipeline_id=consumer&status=completed&limit=1", "", 3000).body;
      if (q.find("\"total\":" + std::to_string(n) + ",") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_NE(q.find("\"total\":" + std::to_string(n) + ","), std::string::npos) << q;
    EXPECT_EQ(json_number(request(port, "GET", "/api/v1/queues", "", 3000).body, "depth"), 0);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait_exit(std::chrono::milliseconds(15000)), 0) << p.log();
  }
  std::map<int64_t, int> seen;
  for (const auto& v : inspected(data)) {
    EXPECT_EQ(v.ref().find("status")->as_string(), "completed") << xerv::core::to_json(v.ref());
    ++seen[v.ref().find("input")->find("n")->as_int()];
  }
  EXPECT_EQ(seen.size(), size_t(n));
  for (const auto& [msg, traces] : seen) EXPECT_EQ(traces, 1) << "message " << msg;
}

}  // namespace
