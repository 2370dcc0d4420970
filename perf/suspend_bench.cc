// suspend_bench: what a suspended trace costs (issue 11). Runs the real `xerv
// serve` as a child process (2 shards, XERV_WAL_SYNC=always, a fresh data
// directory each) and drives it over keep-alive HTTP/1.1 from one poll() thread.
//
// 1. Memory: on one server, N traces of a webhook -> std::wait flow suspend; the
//    server's RssAnon grows by "bytes per suspension" (VmRSS, RssFile and
//    RssShmem are reported too). Baseline, on a second fresh server with the
//    same warm-up: N finished traces of the same flow without the wait, kept in
//    the trace store. The servers' order alternates between rounds (1 round by
//    default: it is slow).
// 2. Resume latency: on the last round's suspension server (N suspended traces),
//    resumes by trace id, open loop at a fixed rate over several connections,
//    latency from each request's scheduled send time (no coordinated omission).
//    Baseline at the same rate and connections on the same server: durable
//    admissions (POST /api/v1/traces, 202 once the start record is durable), the
//    plain durable write a resume is built on. Resume and baseline runs alternate
//    (3 rounds by default).
//
// Both figures are "lower is better": ratio = ours / baseline (bytes per
// suspension / bytes per finished trace; resume p50 / admission p50).
//
//   suspend_bench [--smoke] [--xerv PATH] [--dir DIR] [--suspensions N]
//                 [--warmup N] [--memory-rounds N] [--create-connections N]
//                 [--resumes N] [--rate R] [--connections N] [--rounds N]
//                 [--shards N] [--settle-ms MS]

#include <fcntl.h>
#include <poll.h>
#include <signal.h>

#include <array>
#include <bit>
#include <cstdarg>
#include <functional>
#include <memory>
#include <random>

#include "perf/harness.h"
#include "perf/serve.h"
#include "tests/integration/xerv_process.h"

using namespace xerv;
using perf::histogram;
namespace xt = xerv::testing;
using perf::arg_string;
using perf::field_of;

namespace {

constexpr uint64_t k_request_timeout_ns = 30'000'000'000u;  // one answer slower than this fails the run
constexpr unsigned k_connections_max = 1024;
constexpr const char* k_wait_pipeline = "bench_wait";
constexpr const char* k_base_pipeline = "bench_base";

struct config {
  std::string xerv = XERV_BINARY;
  std::string dir = "/var/tmp";
  size_t suspensions = 100'000;
  size_t warmup = 1'000;
  int memory_rounds = 1;
  unsigned create_connections = 32;
  size_t resumes = 10'000;  // per round
  double rate = 1'000;
  unsigned connections = 16;
  int rounds = 3;
  unsigned shards = 2;
  int settle_ms = 1'000;
};

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603u;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211u;
  return h;
}


// ---------- servers ----------

// One `xerv serve` child with its own data directory. Every live server is in
// g_live, so that a failure anywhere stops them all by pid and removes their
// directories before the exit.
struct server {
  std::string name, data_dir;
  std::unique_ptr<xt::xerv_process> proc;
  uint16_t port = 0;
};
std::vector<server*> g_live;

void remove_server(server& s, bool quiet) {
  if (s.proc && !s.proc->exited()) {
    s.proc->signal(SIGTERM);
    auto code = s.proc->wait_exit(std::chrono::seconds(15));
    if (!code && !quiet)
      fprintf(stderr, "suspend_bench: %s did not stop within 15 s of SIGTERM; killed\n", s.name.c_str());
    else if (code && *code != 0 && !quiet)
      fprintf(stderr, "suspend_bench: %s exited with code %d after SIGTERM\n", s.name.c_str(), *code);
  }
  s.proc.reset();  // SIGKILL if still running; removes its log
  std::error_code ec;
  if (!s.data_dir.empty()) std::filesystem::remove_all(s.data_dir, ec);
  std::erase(g_live, &s);
}

std::string log_tail(const server& s, size_t lines) {
  std::string log = s.proc ? s.proc->log() : "";
  if (log.empty()) return "(empty)\n";
  size_t at = log.size() - 1;  // the last newline, if any, ends the last line
  for (size_t n = 0; n < lines; ++n) {
    size_t prev = at == 0 ? std::string::npos : log.rfind('\n', at - 1);
    if (prev == std::string::npos) return log;
    at = prev;
  }
  return log.substr(at + 1);
}

[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("suspend_bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  while (!g_live.empty()) {
    server& s = *g_live.back();
    fprintf(stderr, "suspend_bench: last lines of %s's log:\n%s", s.name.c_str(), log_tail(s, 20).c_str());
    remove_server(s, true);
  }
  exit(1);
}

void check_signal() {
  if (g_signal) fail("interrupted by signal %d", int(g_signal));
}

std::unique_ptr<server> start_server(const config& cfg, const std::string& name, size_t store_max) {
  auto s = std::make_unique<server>();
  s->name = name;
  std::string tmpl = cfg.dir + "/xerv-suspend-bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) fail("mkdtemp under %s: %s", cfg.dir.c_str(), strerror(errno));
  s->data_dir = tmpl;
  g_live.push_back(s.get());
  s->proc = std::make_unique<xt::xerv_process>(
      std::vector<std::string>{"XERV_DATA_DIR=" + s->data_dir, "XERV_SHARDS=" + std::to_string(cfg.shards),
                               "XERV_TRACE_STORE_MAX=" + std::to_string(store_max), "XERV_WAL_SYNC=always",
                               "XERV_LOG=info", "XERV_METRICS_ENABLED=true", "XERV_DEBUG_ROUTES=false"});
  if (!s->proc->spawned()) fail("cannot start %s", cfg.xerv.c_str());
  s->port = s->proc->wait_ready(std::chrono::seconds(30));
  if (s->port == 0)
    fail("%s %s", name.c_str(),
         s->proc->exited() ? "exited before it logged its port" : "did not log its port within 30 s");
  return s;
}

// ---------- blocking helpers (setup, metrics) ----------

xt::client::response call(const server& s, const std::string& method, const std::string& path,
                          const std::string& body = "") {
  check_signal();
  auto r = xt::request(s.port, method, path, body, 30'000);
  if (!r.complete) fail("%s %s on %s: no complete answer", method.c_str(), path.c_str(), s.name.c_str());
  return r;
}

// Every sample of /metrics, label sets summed: name -> value.
std::map<std::string, double> metrics(const server& s) {
  auto r = call(s, "GET", "/metrics");
  if (r.status != 200) fail("GET /metrics on %s: %d", s.name.c_str(), r.status);
  return perf::serve::parse_metrics(r.body);
}
using perf::serve::metric;

// Polls /metrics until nothing runs or waits for a slot and `suspended` traces
// wait in a std::wait; fails after `limit_s`.
void settle(const server& s, double suspended, const char* what, double limit_s = 60) {
  uint64_t end = now_ns() + static_cast<uint64_t>(limit_s * 1e9);
  for (;;) {
    auto m = metrics(s);
    double active = metric(m, "xerv_active_traces"), pending = metric(m, "xerv_pending_traces");
    double susp = metric(m, "xerv_suspended_traces");
    if (active == 0 && pending == 0 && susp == suspended) return;
    if (now_ns() > end)
      fail("%s on %s: after %.0f s still %.0f active, %.0f pending, %.0f suspended (want %.0f)", what, s.name.c_str(),
           limit_s, active, pending, susp, suspended);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Waits until the server's finished-trace counters say `completed` (and no trace
// failed): every admitted or resumed trace ran to its end.
void expect_completed(const server& s, double completed) {
  uint64_t end = now_ns() + 60'000'000'000u;
  for (;;) {
    auto m = metrics(s);
    double done = metric(m, "xerv_completed_traces_total"), failed = metric(m, "xerv_failed_traces_total");
    if (failed != 0) fail("%s: %.0f traces failed", s.name.c_str(), failed);
    if (done == completed) return;
    if (done > completed || now_ns() > end)
      fail("%s: %.0f traces completed, expected %.0f", s.name.c_str(), done, completed);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

struct memory_status {
  double vm_rss_kib = 0, rss_anon_kib = 0, rss_file_kib = 0, rss_shmem_kib = 0;
};

memory_status read_memory(const server& s) {
  std::ifstream in("/proc/" + std::to_string(s.proc->pid()) + "/status");
  memory_status m;
  int found = 0;
  for (std::string line; std::getline(in, line);) {
    for (auto [key, out] : {std::pair{"VmRSS:", &m.vm_rss_kib}, std::pair{"RssAnon:", &m.rss_anon_kib},
                            std::pair{"RssFile:", &m.rss_file_kib}, std::pair{"RssShmem:", &m.rss_shmem_kib}})
      if (line.rfind(key, 0) == 0) {
        *out = strtod(line.c_str() + strlen(key), nullptr);
        ++found;
      }
  }
  if (found != 4) fail("cannot read VmRSS/RssAnon/RssFile/RssShmem of %s (pid %d)", s.name.c_str(), int(s.proc->pid()));
  return m;
}

// ---------- the load generator ----------

std::string http_post(std::string_view path, std::string_view body) {
  std::string r = "POST ";
  r += path;
  r += " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: ";
  r += std::to_string(body.size());
  r += "\r\n\r\n";
  r += body;
  return r;
}

struct answer {
  int status = 0;
  std::string_view trace_id;  // X-Xerv-Trace-Id, when present
  std::string_view body;
};

// What to send: `count` requests, request i built by `make(i)`, each answer
// checked by `check(i, answer)` (false fails the run). rate > 0: open loop,
// request i is due at start + i / rate and waits for a free connection when all
// are busy; rate 0: closed loop, each connection sends its next request at once.
struct load_plan {
  const char* what = "";
  size_t count = 0;
  double rate = 0;
  unsigned connections = 1;
  std::function<std::string(size_t)> make;
  std::function<bool(size_t, const answer&)> check;
};

struct load_result {
  histogram latency;
  uint64_t elapsed_ns = 0;
  uint64_t checksum = 0;
  size_t late = 0;  // sent more than 1 ms after their scheduled time (no free connection)
  double rate() const { return static_cast<double>(latency.total) / (static_cast<double>(elapsed_ns) / 1e9); }
};

struct connection {
  int fd = -1;
  std::string in;
  bool busy = false;
  size_t request = 0;
  uint64_t scheduled_ns = 0, sent_ns = 0;
};

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  return true;
}

// One complete response at the start of `buf`: its length, 0 while incomplete,
// or -1 when it is not a Content-Length HTTP/1.1 response this client can read.
ssize_t parse_answer(std::string_view buf, answer& a, bool& close_after) {
  size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return buf.size() > 65536 ? -1 : 0;
  std::string_view head = buf.substr(0, head_end);
  if (head.size() < 12 || head.substr(0, 9) != "HTTP/1.1 ") return -1;
  a.status = atoi(std::string(head.substr(9, 3)).c_str());
  size_t length = 0;
  bool has_length = false;
  close_after = false;
  for (size_t at = head.find("\r\n"); at != std::string_view::npos;) {
    size_t next = head.find("\r\n", at + 2);
    std::string_view line =
        head.substr(at + 2, next == std::string_view::npos ? std::string_view::npos : next - at - 2);
    auto value = [&line] {
      std::string_view v = line.substr(line.find(':') + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      return v;
    };
    if (iequals_prefix(line, "content-length:")) {
      length = strtoul(std::string(value()).c_str(), nullptr, 10);
      has_length = true;
    } else if (iequals_prefix(line, "transfer-encoding:")) {
      return -1;  // xerv answers these routes with Content-Length
    } else if (iequals_prefix(line, "x-xerv-trace-id:")) {
      a.trace_id = value();
    } else if (iequals_prefix(line, "connection:")) {
      close_after = iequals_prefix(value(), "close");
    }
    at = next;
  }
  if (!has_length) return -1;
  if (buf.size() < head_end + 4 + length) return 0;
  a.body = buf.substr(head_end + 4, length);
  return static_cast<ssize_t>(head_end + 4 + length);
}

void send_request(connection& c, const load_plan& p, size_t i, uint64_t scheduled, uint64_t now) {
  std::string req = p.make(i);
  // One small request per idle connection always fits the empty send buffer.
  ssize_t n = send(c.fd, req.data(), req.size(), MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(req.size())) fail("%s: send of request %zu: %s", p.what, i, strerror(errno));
  c.busy = true;
  c.request = i;
  c.scheduled_ns = scheduled;
  c.sent_ns = now;
}

// Reads what `c` has; records and checks its answer when complete.
void on_readable(connection& c, const load_plan& p, load_result& r, std::vector<unsigned>& idle, unsigned id) {
  char buf[16384];
  ssize_t n = recv(c.fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) fail("%s: the server closed connection %u (%s)", p.what, id, n < 0 ? strerror(errno) : "EOF");
  c.in.append(buf, static_cast<size_t>(n));
  answer a;
  bool close_after = false;
  ssize_t used = parse_answer(c.in, a, close_after);
  if (used < 0) fail("%s: unreadable answer: %.200s", p.what, c.in.c_str());
  if (used == 0) return;
  uint64_t now = now_ns();
  if (!c.busy || static_cast<size_t>(used) != c.in.size())
    fail("%s: an answer nobody asked for on connection %u", p.what, id);
  if (!p.check(c.request, a))
    fail("%s: request %zu answered %d: %.*s", p.what, c.request, a.status, int(std::min<size_t>(a.body.size(), 300)),
         a.body.data());
  if (close_after) fail("%s: the server closes connection %u after request %zu", p.what, id, c.request);
  r.latency.record(now - c.scheduled_ns);
  r.checksum += fnv1a(a.trace_id);
  c.in.clear();
  c.busy = false;
  idle.push_back(id);
}

load_result drive(uint16_t port, const load_plan& p) {
  std::vector<connection> cs(p.connections);
  std::vector<unsigned> idle;
  for (unsigned i = 0; i < p.connections; ++i) {
    cs[i].fd = perf::connect_loopback(port);
    if (cs[i].fd < 0) fail("%s: cannot connect to port %u", p.what, unsigned(port));
    idle.push_back(p.connections - 1 - i);
  }
  load_result r;
  uint64_t start = now_ns() + 5'000'000u;
  double interval_ns = p.rate > 0 ? 1e9 / p.rate : 0;
  auto due = [&](size_t i) { return start + static_cast<uint64_t>(static_cast<double>(i) * interval_ns); };
  size_t next = 0;
  std::vector<pollfd> fds(p.connections);
  while (r.latency.total < p.count) {
    check_signal();
    uint64_t now = now_ns();
    while (next < p.count && !idle.empty() && (p.rate <= 0 || due(next) <= now)) {
      unsigned id = idle.back();
      idle.pop_back();
      uint64_t scheduled = p.rate > 0 ? due(next) : now;
      if (now > scheduled + 1'000'000u) ++r.late;
      send_request(cs[id], p, next++, scheduled, now);
    }
    uint64_t wait_ns = 100'000'000u;
    if (p.rate > 0 && next < p.count && !idle.empty()) wait_ns = due(next) > now ? due(next) - now : 0;
    for (unsigned i = 0; i < p.connections; ++i) {
      fds[i] = {cs[i].fd, POLLIN, 0};
      if (cs[i].busy && now - cs[i].sent_ns > k_request_timeout_ns)
        fail("%s: no answer to request %zu within %.0f s", p.what, cs[i].request, k_request_timeout_ns / 1e9);
    }
    timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000u), static_cast<long>(wait_ns % 1'000'000'000u)};
    int n = ppoll(fds.data(), fds.size(), &ts, nullptr);
    if (n < 0 && errno != EINTR) fail("%s: ppoll: %s", p.what, strerror(errno));
    for (unsigned i = 0; i < p.connections && n > 0; ++i)
      if (fds[i].revents) on_readable(cs[i], p, r, idle, i);
  }
  r.elapsed_ns = now_ns() - start;
  for (auto& c : cs) close(c.fd);
  return r;
}

// ---------- the two flows and their requests ----------

// The same input for every flow and phase: {"id":i,"amount":250} (20-26 bytes).
std::string input(size_t i) { return "{\"id\":" + std::to_string(i) + ",\"amount\":250}"; }

// webhook -> std::wait (no expiry) -> std::log at debug level (kept in the
// trace's logs, not written to the server's log at XERV_LOG=info).
std::string wait_flow() {
  return std::string("name: ") + k_wait_pipeline + R"(
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /bench/wait, method: POST, respond: sync}}
nodes:
  gate: {type: std::wait, config: {timeout_secs: 0}}
  done: {type: std::log, config: {message: "resumed", level: debug}}
edges:
  - {from: hook, to: gate}
  - {from: gate.out, to: done}
)";
}

// The same without the wait, with a manual trigger for POST /api/v1/traces.
std::string base_flow() {
  return std::string("name: ") + k_base_pipeline + R"(
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /bench/base, method: POST, respond: sync}}
  - {id: manual, type: manual}
nodes:
  done: {type: std::log, config: {message: "resumed", level: debug}}
edges:
  - {from: hook, to: done}
  - {from: manual, to: done}
)";
}

void deploy(const server& s) {
  for (const std::string& yaml : {wait_flow(), base_flow()}) {
    auto r = call(s, "POST", "/api/v1/pipelines", yaml);
    if (r.status != 201) fail("deploy on %s: %d %s", s.name.c_str(), r.status, r.body.c_str());
  }
}

// N traces of the wait flow through its sync webhook: each answer is 202
// {"trace_id","status":"suspended",...}, sent once the suspension is durable.
// Their trace ids are appended to `ids`.
load_result suspend(const server& s, size_t n, unsigned connections, std::vector<std::string>& ids) {
  size_t first = ids.size();
  ids.resize(first + n);
  load_plan p;
  p.what = "suspend";
  p.count = n;
  p.connections = connections;
  p.make = [first](size_t i) { return http_post("/bench/wait", input(first + i)); };
  p.check = [&ids, first](size_t i, const answer& a) {
    if (a.status != 202 || a.trace_id.empty() || a.body.find("\"status\":\"suspended\"") == std::string_view::npos)
      return false;
    ids[first + i] = std::string(a.trace_id);
    return true;
  };
  return drive(s.port, p);
}

// N finished traces of the base flow through its sync webhook (200 with the output).
load_result finish(const server& s, size_t n, unsigned connections) {
  load_plan p;
  p.what = "finish";
  p.count = n;
  p.connections = connections;
  p.make = [](size_t i) { return http_post("/bench/base", input(i)); };
  p.check = [](size_t, const answer& a) { return a.status == 200 && !a.trace_id.empty(); };
  return drive(s.port, p);
}

// Resumes ids[first, first + n) by trace id: 200 {"trace_id","decision"} once durable.
load_result resume(const server& s, const std::vector<std::string>& ids, size_t first, size_t n, double rate,
                   unsigned connections) {
  load_plan p;
  p.what = "resume";
  p.count = n;
  p.rate = rate;
  p.connections = connections;
  p.make = [&ids, first](size_t i) {
    return http_post("/api/v1/suspensions/" + ids[first + i] + "/resume",
                     R"({"decision":"approve","response_data":{"ok":true}})");
  };
  p.check = [&ids, first](size_t i, const answer& a) {
    return a.status == 200 && a.trace_id == ids[first + i] &&
           a.body.find("\"decision\":\"approve\"") != std::string_view::npos;
  };
  return drive(s.port, p);
}

// Durable admissions of the base flow: POST /api/v1/traces answers 202 {"trace_id"}
// once the trace's start record is durable.
load_result admit(const server& s, size_t n, double rate, unsigned connections) {
  load_plan p;
  p.what = "admit";
  p.count = n;
  p.rate = rate;
  p.connections = connections;
  p.make = [](size_t i) {
    return http_post("/api/v1/traces",
                     std::string("{\"pipeline_id\":\"") + k_base_pipeline + "\",\"input\":" + input(i) + "}");
  };
  p.check = [](size_t, const answer& a) {
    return a.status == 202 && !a.trace_id.empty() && a.body.find(a.trace_id) != std::string_view::npos;
  };
  return drive(s.port, p);
}

// ---------- 1. memory ----------

enum class kind { suspended, finished };

// Deploys both flows and runs `warmup` traces through every path the
// measurement takes (suspend + resume, sync webhook, admission), on either kind
// of server alike. Returns the traces that completed.
double warm_up(const server& s, const config& cfg) {
  deploy(s);
  std::vector<std::string> ids;
  (void)suspend(s, cfg.warmup, cfg.create_connections, ids);  // only the ids matter
  (void)resume(s, ids, 0, ids.size(), 0, cfg.create_connections);
  (void)finish(s, cfg.warmup, cfg.create_connections);
  (void)admit(s, cfg.warmup, 0, cfg.create_connections);
  settle(s, 0, "warm-up");
  double completed = 3.0 * static_cast<double>(cfg.warmup);
  expect_completed(s, completed);
  std::this_thread::sleep_for(std::chrono::milliseconds(cfg.settle_ms));
  return completed;
}

// One sample: N traces of `k` kept by the server, ΔRSS / N.
perf::run_result measure_memory(server& s, kind k, const config& cfg, std::vector<std::string>& ids,
                                double& completed) {
  completed = warm_up(s, cfg);
  memory_status before = read_memory(s);
  size_t n = cfg.suspensions;
  uint64_t t0 = now_ns();
  load_result r =
      k == kind::suspended ? suspend(s, n, cfg.create_connections, ids) : finish(s, n, cfg.create_connections);
  double seconds = static_cast<double>(now_ns() - t0) / 1e9;
  settle(s, k == kind::suspended ? static_cast<double>(n) : 0, "creating the traces");
  if (k == kind::finished) expect_completed(s, completed += static_cast<double>(n));
  std::this_thread::sleep_for(std::chrono::milliseconds(cfg.settle_ms));
  memory_status after = read_memory(s);
  if (k == kind::suspended) {
    // After the RSS reading: the listing renders every suspension.
    auto l = call(s, "GET", std::string("/api/v1/suspensions?limit=1&pipeline_id=") + k_wait_pipeline);
    if (l.status != 200 || l.body.find("\"count\":" + std::to_string(n) + ",") == std::string::npos)
      fail("GET /api/v1/suspensions on %s does not count %zu: %.300s", s.name.c_str(), n, l.body.c_str());
  }
  auto per = [n](double after_kib, double before_kib) {
    return (after_kib - before_kib) * 1024.0 / static_cast<double>(n);
  };
  double anon = per(after.rss_anon_kib, before.rss_anon_kib);
  fprintf(stderr,
          "suspend_bench: %-9s %zu traces in %.2f s (%.0f/s); RssAnon %.0f -> %.0f KiB, VmRSS %.0f -> %.0f KiB: "
          "%.0f B/trace anon, %.0f B/trace VmRSS\n",
          k == kind::suspended ? "suspended" : "finished", n, seconds, static_cast<double>(n) / seconds,
          before.rss_anon_kib, after.rss_anon_kib, before.vm_rss_kib, after.vm_rss_kib, anon,
          per(after.vm_rss_kib, before.vm_rss_kib));
  return {anon,
          r.checksum,
          {{"vm_rss_bytes_per_trace", per(after.vm_rss_kib, before.vm_rss_kib)},
           {"rss_file_bytes_per_trace", per(after.rss_file_kib, before.rss_file_kib)},
           {"rss_shmem_bytes_per_trace", per(after.rss_shmem_kib, before.rss_shmem_kib)},
           {"rss_anon_before_kib", before.rss_anon_kib},
           {"rss_anon_after_kib", after.rss_anon_kib},
           {"vm_rss_before_kib", before.vm_rss_kib},
           {"vm_rss_after_kib", after.vm_rss_kib},
           {"created_per_s", static_cast<double>(n) / seconds}}};
}

// ---------- 2. resume latency ----------

perf::run_result latency_sample(const load_result& r, const char* what, int round) {
  fprintf(stderr,
          "suspend_bench: round %d %-6s %zu at %.0f/s: p50 %.0f us  p99 %.0f us  max %.0f us  (%zu sent late)\n", round,
          what, size_t(r.latency.total), r.rate(), r.latency.percentile_us(0.50), r.latency.percentile_us(0.99),
          static_cast<double>(r.latency.max) / 1000.0, r.late);
  return {r.latency.percentile_us(0.50),
          r.checksum,
          {{"p99_us", r.latency.percentile_us(0.99)},
           {"max_us", static_cast<double>(r.latency.max) / 1000.0},
           {"achieved_per_s", r.rate()},
           {"late_sends", static_cast<double>(r.late)}}};
}

config parse_args(int argc, char** argv) {
  config cfg;
  if (perf::has_flag(argc, argv, "--smoke")) {
    cfg.suspensions = 300;
    cfg.warmup = 50;
    cfg.resumes = 200;
    cfg.rate = 500;
    cfg.settle_ms = 200;
  }
  auto count = [&](const char* key, size_t fallback) {
    return static_cast<size_t>(perf::arg_number(argc, argv, key, static_cast<double>(fallback)));
  };
  cfg.xerv = arg_string(argc, argv, "--xerv", cfg.xerv);
  cfg.dir = arg_string(argc, argv, "--dir", cfg.dir);
  cfg.suspensions = count("--suspensions", cfg.suspensions);
  cfg.warmup = count("--warmup", cfg.warmup);
  cfg.memory_rounds = static_cast<int>(perf::arg_number(argc, argv, "--memory-rounds", cfg.memory_rounds));
  cfg.create_connections = static_cast<unsigned>(count("--create-connections", cfg.create_connections));
  cfg.resumes = count("--resumes", cfg.resumes);
  cfg.rate = perf::arg_number(argc, argv, "--rate", cfg.rate);
  cfg.connections = static_cast<unsigned>(count("--connections", cfg.connections));
  cfg.rounds = static_cast<int>(perf::arg_number(argc, argv, "--rounds", cfg.rounds));
  cfg.shards = static_cast<unsigned>(count("--shards", cfg.shards));
  cfg.settle_ms = static_cast<int>(perf::arg_number(argc, argv, "--settle-ms", cfg.settle_ms));
  if (cfg.suspensions < 1 || cfg.suspensions > 10'000'000 || cfg.warmup < 1 || cfg.memory_rounds < 1 ||
      cfg.create_connections < 1 || cfg.create_connections > k_connections_max || cfg.resumes < 1 ||
      !(cfg.rate > 0 && cfg.rate <= 1e6) || cfg.connections < 1 || cfg.connections > k_connections_max ||
      cfg.rounds < 1 || cfg.shards < 1 || cfg.shards > 64 || cfg.settle_ms < 0) {
    fprintf(stderr, "suspend_bench: bad arguments\n");
    exit(2);
  }
  return cfg;
}

// The suspension server of the last memory round, kept for part 2: its
// suspended traces' ids and how many of its traces have completed.
struct kept_server {
  std::unique_ptr<server> s;
  std::vector<std::string> ids;
  double completed = 0;
};

// 1. Memory, each sample on fresh servers; the order alternates between rounds.
kept_server memory_phase(const config& cfg, size_t store_max) {
  std::vector<perf::run_result> susp_runs, fin_runs;
  kept_server kept;
  for (int round = 0; round < cfg.memory_rounds; ++round) {
    for (int side = 0; side < 2; ++side) {
      kind k = (side == 0) == (round % 2 == 0) ? kind::suspended : kind::finished;
      auto s = start_server(cfg, k == kind::suspended ? "suspension server" : "baseline server", store_max);
      double completed = 0;
      if (k == kind::suspended) {
        std::vector<std::string> ids;
        susp_runs.push_back(measure_memory(*s, k, cfg, ids, completed));
        if (kept.s) remove_server(*kept.s, false);
        kept = {std::move(s), std::move(ids), completed};
      } else {
        std::vector<std::string> unused;
        fin_runs.push_back(measure_memory(*s, k, cfg, unused, completed));
        remove_server(*s, false);
      }
    }
  }
  auto mem =
      perf::compare_runs("suspend_memory_n" + std::to_string(cfg.suspensions) + "_s" + std::to_string(cfg.shards),
                         "bytes/trace", susp_runs, fin_runs);
  mem.extra.insert(mem.extra.begin(), {{"suspensions", double(cfg.suspensions)},
                                       {"warmup", double(cfg.warmup)},
                                       {"connections", double(cfg.create_connections)},
                                       {"shards", double(cfg.shards)},
                                       {"trace_store_max", double(store_max)}});
  perf::emit(mem);
  return kept;
}

// 2. Resume latency on the suspension server, against durable admissions; the
// side that goes first alternates between rounds.
void latency_phase(const config& cfg, kept_server& kept) {
  server& s = *kept.s;
  std::vector<std::string>& ids = kept.ids;
  size_t want = cfg.resumes * size_t(cfg.rounds);
  if (want > ids.size()) {
    (void)suspend(s, want - ids.size(), cfg.create_connections, ids);  // only the ids matter
    settle(s, static_cast<double>(ids.size()), "more suspensions");
  }
  std::mt19937_64 rng(11);  // resume in an order unrelated to creation
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<perf::run_result> res_runs, adm_runs;
  double suspended = static_cast<double>(ids.size());
  for (int round = 0; round < cfg.rounds; ++round) {
    for (int side = 0; side < 2; ++side) {
      if ((side == 0) == (round % 2 == 0)) {
        load_result r = resume(s, ids, size_t(round) * cfg.resumes, cfg.resumes, cfg.rate, cfg.connections);
        res_runs.push_back(latency_sample(r, "resume", round + 1));
        suspended -= static_cast<double>(cfg.resumes);
      } else {
        load_result r = admit(s, cfg.resumes, cfg.rate, cfg.connections);
        adm_runs.push_back(latency_sample(r, "admit", round + 1));
      }
      settle(s, suspended, "after a latency run");
      expect_completed(s, kept.completed += static_cast<double>(cfg.resumes));
    }
  }
  double resumes_total = metric(metrics(s), "xerv_resumes_total");
  double want_resumes = static_cast<double>(cfg.warmup + want);
  if (resumes_total != want_resumes) fail("xerv_resumes_total is %.0f, expected %.0f", resumes_total, want_resumes);
  auto lat = perf::compare_runs("suspend_resume_latency_r" + std::to_string(int(cfg.rate)) + "_c" +
                                    std::to_string(cfg.connections) + "_s" + std::to_string(cfg.shards),
                                "us_p50", res_runs, adm_runs);
  double p99_ratio =
      field_of(lat, "baseline_p99_us") > 0 ? field_of(lat, "ours_p99_us") / field_of(lat, "baseline_p99_us") : 0;
  lat.extra.insert(lat.extra.begin(), {{"p99_ratio", p99_ratio},
                                       {"resumes_per_round", double(cfg.resumes)},
                                       {"rate_per_s", cfg.rate},
                                       {"connections", double(cfg.connections)},
                                       {"suspended_at_start", double(ids.size())},
                                       {"shards", double(cfg.shards)}});
  perf::emit(lat);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  config cfg = parse_args(argc, argv);
  if (access(cfg.xerv.c_str(), X_OK) != 0) fail("%s is not an executable xerv binary", cfg.xerv.c_str());
  // xerv_process starts the binary XERV_TEST_BINARY names, else XERV_BINARY.
  setenv("XERV_TEST_BINARY", cfg.xerv.c_str(), 1);
  // Finished traces any one shard may keep: all of them, so the baseline's stay.
  size_t resumed = cfg.resumes * size_t(cfg.rounds);
  size_t store_max = std::max<size_t>(200'000, std::max(cfg.suspensions, resumed) + 4 * cfg.warmup + 2 * resumed);
  fprintf(stderr, "suspend_bench: %s, %u shards, data under %s, XERV_TRACE_STORE_MAX=%zu\n", cfg.xerv.c_str(),
          cfg.shards, cfg.dir.c_str(), store_max);
  kept_server kept = memory_phase(cfg, store_max);
  latency_phase(cfg, kept);
  remove_server(*kept.s, false);
  return 0;
}
