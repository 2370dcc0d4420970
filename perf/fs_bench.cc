// fs_bench: filesystem trigger latency, from a file landing to the flow's first
// node reaching the outside world, in µs. Ours: the real `xerv serve` as a child
// process (2 shards, XERV_WAL_SYNC=always, a fresh data directory under /var/tmp)
// with one generated pipeline: a filesystem trigger on a fresh directory
// (patterns ["*.dat"], events [created], debounce_ms 0) -> std::http POST of
// "${files.path}" to a small HTTP/1.1 listener this process runs on 127.0.0.1
// (one poll() thread; it answers 200 with an empty body). The benchmark writes
// N files one at a time (open O_EXCL, one 64-byte write, close), reads
// CLOCK_MONOTONIC right after close() returns, waits for that file's request at
// the listener (stamped with the same clock right after the recv() that brought
// it) and records arrival - close; then it waits --gap-ms (2) so that every file
// is an isolated event. Each request's body must be exactly that file's path as
// a JSON string; a file with no request within --timeout-ms (5000), a second
// request, a failed trace or a dropped trigger event fails the run.
//
// Baseline, in this process on its own fresh directory: the floor for "a file
// lands -> user code runs": a thread blocking in read() on an inotify descriptor
// (inotify_init1, inotify_add_watch IN_CLOSE_WRITE) that, per event, does what
// xerv minimally must do before a node runs: one statx() of the file and one
// loopback HTTP POST of the same body to the same listener, on a connection it
// keeps alive. Same files, same clock, same measurement. The raw inotify latency
// (close -> read() returned, clamped at 0: the reader may wake before close()
// has returned to the writer) is reported as baseline_inotify_* for context.
//
// What ours does on top of the floor, and the baseline does not: xerv reads
// IN_CREATE and IN_MODIFY as well as IN_CLOSE_WRITE (through its shard's
// io_uring), runs them through the debouncer, admits the trace durably (one WAL
// group commit: O_DIRECT + RWF_DSYNC, a device flush of about 0.1-0.3 ms on this
// disk, reported per run as ours_wal_sync_mean_us from xerv_wal_sync_seconds),
// schedules the trace and its node, and std::http opens a new connection per
// request (it sends Connection: close), where the baseline reuses one. The
// watched directories live under --dir too, so both sides write their files to
// the disk the WAL is on.
//
// Rounds (3) alternate which side goes first; each round starts a fresh server
// and warms both sides up with --warmup (20) files that are not recorded.
// Lower is better: ratio = ours p50 / baseline p50 (p99_ratio likewise).
// Latency buckets are ~6 % wide.
//
//   fs_bench [--smoke] [--xerv PATH] [--dir DIR] [--files N] [--warmup N]
//            [--rounds R] [--shards S] [--gap-ms MS] [--timeout-ms MS]
//            [--wal-sync always|batch|none]

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

#include "perf/harness.h"
#include "perf/serve.h"
#include "tests/integration/xerv_process.h"

using namespace xerv;
using perf::histogram;
namespace xt = xerv::testing;
using perf::arg_string;
using perf::field_of;
using namespace xerv::perf::serve;

namespace {

constexpr const char* k_pipeline = "fs_bench";

struct config {
  std::string xerv = XERV_BINARY;
  std::string dir = "/var/tmp";
  std::string wal_sync = "always";  // the default; none separates the disk from the rest
  int files = 1000, warmup = 20, rounds = 3, shards = 2, gap_ms = 2, timeout_ms = 5000;
};


uint64_t now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1'000'000'000u + uint64_t(t.tv_nsec);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603u;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211u;
  return h;
}


// "path" as a JSON string, as std::http sends a single-selector body (the
// paths here have nothing to escape).
std::string json_path(const std::string& path) { return "\"" + path + "\""; }

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  return true;
}

// ---------- the listener both sides post to ----------

// One poll() thread on 127.0.0.1: accepts connections, reads HTTP/1.1 requests
// by Content-Length (keep-alive and pipelining alike), stamps each with the
// time the recv() that completed it returned, answers 200 with an empty body
// and hands {body, time} to the main thread in arrival order.
class listener {
 public:
  struct arrival {
    std::string body;
    uint64_t at_ns = 0;
  };

  listener() {
    _fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (_fd < 0 || bind(_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(_fd, 128) != 0 ||
        getsockname(_fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || pipe2(_stop, O_CLOEXEC) != 0)
      fail(std::string("listener: ") + strerror(errno));
    port = ntohs(a.sin_port);
    _thread = std::thread([this] { loop(); });
  }

  void stop() {
    if (write(_stop[1], "x", 1) != 1) fail("listener: cannot stop");
    _thread.join();
    close(_fd);
    close(_stop[0]);
    close(_stop[1]);
  }

  // The next request, or fails after `timeout_ms` naming `what`.
  arrival next(int timeout_ms, const std::string& what) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::unique_lock lock(_mu);
    for (;;) {
      if (!_error.empty()) {
        std::string e = _error;
        lock.unlock();
        fail("listener: " + e);
      }
      if (!_arrivals.empty()) {
        arrival a = std::move(_arrivals.front());
        _arrivals.pop_front();
        return a;
      }
      if (std::chrono::steady_clock::now() >= end) {
        lock.unlock();
        fail("no request for " + what + " within " + std::to_string(timeout_ms) + " ms");
      }
      _cv.wait_until(lock, std::min(end, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
      if (g_signal) {
        lock.unlock();
        check_signal();
        lock.lock();
      }
    }
  }

  // Requests that arrived and were not taken (a duplicate shows here).
  size_t waiting() {
    std::lock_guard lock(_mu);
    return _arrivals.size();
  }

  uint64_t connections() const { return _connections.load(); }

  uint16_t port = 0;

 private:
  struct conn {
    int fd = -1;
    std::string in;
  };

  void set_error(std::string e) {
    std::lock_guard lock(_mu);
    if (_error.empty()) _error = std::move(e);
    _cv.notify_all();
  }

  // Complete requests at the start of c.in: answered, published, consumed.
  // False when the connection must be dropped (an error was set).
  bool serve(conn& c, uint64_t at) {
    for (;;) {
      size_t head_end = c.in.find("\r\n\r\n");
      if (head_end == std::string::npos) {
        if (c.in.size() > 65536) return set_error("a request head over 64 KiB"), false;
        return true;
      }
      std::string_view head(c.in.data(), head_end);
      size_t length = 0;
      for (size_t p = head.find("\r\n"); p != std::string_view::npos;) {
        size_t next = head.find("\r\n", p + 2);
        std::string_view line = head.substr(p + 2, next == std::string_view::npos ? std::string_view::npos : next - p - 2);
        if (iequals_prefix(line, "content-length:")) length = strtoul(std::string(line.substr(15)).c_str(), nullptr, 10);
        if (iequals_prefix(line, "transfer-encoding:")) return set_error("a chunked request"), false;
        p = next;
      }
      if (c.in.size() < head_end + 4 + length) return true;
      static constexpr std::string_view ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
      if (send(c.fd, ok.data(), ok.size(), MSG_NOSIGNAL) != ssize_t(ok.size())) {
        // The client may have gone already; its request counts all the same.
      }
      {
        std::lock_guard lock(_mu);
        _arrivals.push_back({c.in.substr(head_end + 4, length), at});
        _cv.notify_all();
      }
      c.in.erase(0, head_end + 4 + length);
    }
  }

  void loop() {
    std::vector<conn> cs;
    std::vector<pollfd> fds;
    for (;;) {
      fds.assign({{_stop[0], POLLIN, 0}, {_fd, POLLIN, 0}});
      for (const conn& c : cs) fds.push_back({c.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return set_error(std::string("poll: ") + strerror(errno));
      }
      if (fds[0].revents) break;
      std::vector<size_t> gone;
      for (size_t i = 0; i < cs.size(); ++i) {
        if (!fds[i + 2].revents) continue;
        char buf[16384];
        ssize_t n = recv(cs[i].fd, buf, sizeof buf, 0);
        uint64_t at = now_ns();
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0 || (cs[i].in.append(buf, size_t(n)), !serve(cs[i], at))) gone.push_back(i);
      }
      for (size_t k = gone.size(); k-- > 0;) {
        close(cs[gone[k]].fd);
        cs.erase(cs.begin() + std::ptrdiff_t(gone[k]));
      }
      if (fds[1].revents) {
        for (int fd; (fd = accept4(_fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          cs.push_back({fd, {}});
          ++_connections;
        }
      }
    }
    for (conn& c : cs) close(c.fd);
  }

  int _fd = -1;
  int _stop[2] = {-1, -1};
  std::thread _thread;
  std::mutex _mu;
  std::condition_variable _cv;
  std::deque<arrival> _arrivals;
  std::string _error;
  std::atomic<uint64_t> _connections{0};
};

listener* g_listener = nullptr;  // never destroyed: a failure exits with its thread running

// ---------- the baseline: inotify + statx + one kept-alive POST ----------

class inotify_floor {
 public:
  explicit inotify_floor(const std::string& dir, uint16_t port) : _dir(dir) {
    _fd = inotify_init1(IN_CLOEXEC);
    if (_fd < 0) fail(std::string("inotify_init1: ") + strerror(errno));
    if (inotify_add_watch(_fd, dir.c_str(), IN_CLOSE_WRITE) < 0)
      fail("inotify_add_watch " + dir + ": " + strerror(errno));
    _conn = perf::connect_loopback(port);
    if (_conn < 0) fail(std::string("baseline: connect to the listener: ") + strerror(errno));
    fcntl(_conn, F_SETFL, fcntl(_conn, F_GETFL) & ~O_NONBLOCK);  // the reader thread blocks on it
    _head = "POST /fs HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
            "\r\nUser-Agent: xerv\r\nContent-Type: application/json\r\nContent-Length: ";
    _thread = std::thread([this] { loop(); });
  }

  // A file the loop takes as its signal to end; then the thread is joined.
  void stop() {
    int fd = open((_dir + "/quit").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail("baseline: cannot create the quit file: " + std::string(strerror(errno)));
    close(fd);
    _thread.join();
    close(_fd);
    close(_conn);
    if (!_error.empty()) fail("baseline: " + _error);
  }

  // The last event's name and when its read() returned (written before its POST).
  std::atomic<uint64_t> read_ns{0};
  std::atomic<uint64_t> read_name_hash{0};
  uint64_t checksum = 0;  // file sizes statx saw (read after stop())

 private:
  void loop() {
    alignas(inotify_event) char buf[64 * 1024];
    std::string req, reply;
    for (;;) {
      ssize_t n = read(_fd, buf, sizeof buf);
      uint64_t at = now_ns();
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return set_error(std::string("read inotify: ") + strerror(errno));
      for (ssize_t off = 0; off + ssize_t(sizeof(inotify_event)) <= n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
        off += ssize_t(sizeof(inotify_event) + e->len);
        if (!e->len) continue;
        std::string_view name(e->name, strnlen(e->name, e->len));
        if (name == "quit") return;
        if (!name.ends_with(".dat")) continue;
        read_name_hash.store(fnv1a(name));
        read_ns.store(at);
        std::string path = _dir + "/" + std::string(name);
        struct statx st {};
        if (statx(AT_FDCWD, path.c_str(), AT_STATX_SYNC_AS_STAT, STATX_SIZE | STATX_MTIME, &st) != 0)
          return set_error("statx " + path + ": " + strerror(errno));
        checksum += st.stx_size;
        std::string body = json_path(path);
        req = _head + std::to_string(body.size()) + "\r\n\r\n" + body;
        if (send(_conn, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size()))
          return set_error(std::string("send: ") + strerror(errno));
        // The listener's answer (Content-Length: 0): read to its end before the next request.
        reply.clear();
        while (reply.find("\r\n\r\n") == std::string::npos) {
          char r[512];
          ssize_t got = recv(_conn, r, sizeof r, 0);
          if (got <= 0) return set_error("the listener closed the connection");
          reply.append(r, size_t(got));
        }
      }
    }
  }

  // The loop ends on an error: said at once (the main thread then times out
  // waiting for the file's request) and again by stop().
  void set_error(std::string e) {
    fprintf(stderr, "fs_bench: baseline: %s\n", e.c_str());
    _error = std::move(e);
  }

  std::string _dir, _head, _error;
  int _fd = -1, _conn = -1;
  std::thread _thread;
};

// ---------- dropping files ----------

struct drop_result {
  histogram latency, inotify;  // inotify: baseline only
  uint64_t checksum = 0, inotify_early = 0;
};

// Writes files f<first>.dat .. f<first+count-1>.dat into `dir` one at a time,
// each after the previous one's request arrived and --gap-ms passed.
drop_result drop_files(const config& cfg, const std::string& dir, inotify_floor* floor, int first, int count) {
  static const std::string payload(64, 'x');
  drop_result r;
  for (int i = first; i < first + count; ++i) {
    check_signal();
    std::string name = "f" + std::to_string(i) + ".dat", path = dir + "/" + name;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) fail("create " + path + ": " + strerror(errno));
    if (write(fd, payload.data(), payload.size()) != ssize_t(payload.size())) fail("write " + path + ": " + strerror(errno));
    if (close(fd) != 0) fail("close " + path + ": " + strerror(errno));
    uint64_t closed = now_ns();
    listener::arrival a = g_listener->next(cfg.timeout_ms, path);
    if (a.body != json_path(path)) fail("waiting for " + path + ", the listener got the body " + a.body.substr(0, 300));
    if (a.at_ns > closed + uint64_t(cfg.timeout_ms) * 1'000'000u)
      fail("the request for " + path + " came " + std::to_string((a.at_ns - closed) / 1000) + " us after the close");
    r.latency.record(a.at_ns > closed ? a.at_ns - closed : 0);
    r.checksum += fnv1a(name);
    if (floor) {
      uint64_t read = floor->read_ns.load();
      if (floor->read_name_hash.load() != fnv1a(name)) fail("baseline: the last inotify event was not for " + name);
      if (read < closed) ++r.inotify_early;
      r.inotify.record(read > closed ? read - closed : 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(cfg.gap_ms));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (size_t extra = g_listener->waiting()) fail(std::to_string(extra) + " requests nobody expected (duplicates?)");
  return r;
}

std::string make_run_dir(const config& cfg) {
  std::string tmpl = cfg.dir + "/xerv-fs-bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) fail("mkdtemp under " + cfg.dir + ": " + strerror(errno));
  g_run_dir = tmpl;
  std::filesystem::create_directories(g_run_dir + "/watch");
  return g_run_dir;
}

perf::run_result baseline_run(const config& cfg) {
  std::string dir = make_run_dir(cfg) + "/watch";
  inotify_floor floor(dir, g_listener->port);
  (void)drop_files(cfg, dir, &floor, 0, cfg.warmup);
  drop_result r = drop_files(cfg, dir, &floor, cfg.warmup, cfg.files);
  floor.stop();
  cleanup();
  const histogram& h = r.latency;
  const histogram& in = r.inotify;
  return {h.percentile_us(0.50),
          r.checksum + floor.checksum,
          {{"p99_us", h.percentile_us(0.99)},
           {"max_us", double(h.max) / 1000.0},
           {"files", double(h.total)},
           {"inotify_p50_us", in.percentile_us(0.50)},
           {"inotify_p99_us", in.percentile_us(0.99)},
           {"inotify_max_us", double(in.max) / 1000.0},
           {"inotify_early", double(r.inotify_early)}}};
}

// ---------- ours: xerv serve ----------

std::string fs_flow(const std::string& watch, uint16_t port) {
  return std::string("name: ") + k_pipeline + R"(
version: "1"
triggers:
  - {id: files, type: filesystem, params: {paths: [")" + watch + R"("], patterns: ["*.dat"], events: [created], debounce_ms: 0}}
nodes:
  post: {type: std::http, config: {method: POST, url: "http://127.0.0.1:)" + std::to_string(port) +
         R"(/fs", body: "${files.path}", timeout_ms: 5000}}
edges:
  - {from: files, to: post}
)";
}

xt::client::response call(uint16_t port, const std::string& path) {
  check_signal();
  auto r = xt::request(port, "GET", path, "", 30'000);
  if (!r.complete || r.status != 200) fail("GET " + path + ": " + std::to_string(r.status) + " " + r.body.substr(0, 300));
  return r;
}


// The trigger's object in GET /api/v1/triggers (empty when it is not listed).
std::string trigger_json(uint16_t port) {
  std::string body = call(port, "/api/v1/triggers").body;
  size_t at = body.find(std::string("{\"id\":\"") + k_pipeline + ".files\"");
  return at == std::string::npos ? std::string() : body.substr(at, body.find('}', at) + 1 - at);
}

perf::run_result xerv_run(const config& cfg) {
  std::string run = make_run_dir(cfg);
  std::string data = run + "/data", flows = run + "/pipelines", watch = run + "/watch";
  std::filesystem::create_directories(data);
  std::filesystem::create_directories(flows);
  std::ofstream(flows + "/" + k_pipeline + ".yaml") << fs_flow(watch, g_listener->port);
  // XERV_LOG=info: the "serving on" line (info) is how xerv_process learns that it is ready.
  g_server = std::make_unique<xt::xerv_process>(std::vector<std::string>{
      "XERV_DATA_DIR=" + data, "XERV_SHARDS=" + std::to_string(cfg.shards), "XERV_LOG=info",
      "XERV_WAL_SYNC=" + cfg.wal_sync, "XERV_METRICS_ENABLED=true", "XERV_PIPELINES_DIR=" + flows,
      "XERV_API_HOST=127.0.0.1", "XERV_API_PORT=0"});
  if (!g_server->spawned()) fail("cannot start " + cfg.xerv);
  uint16_t port = g_server->wait_ready(std::chrono::seconds(30));
  if (port == 0) fail("xerv did not become ready within 30 s");
  // The watch is armed when the trigger reports its directory.
  for (int tries = 0;; ++tries) {
    std::string t = trigger_json(port);
    if (xt::json_number(t, "watched_dirs") == 1 && t.find("\"state\":\"active\"") != std::string::npos) break;
    if (tries == 500) fail("the filesystem trigger is not watching after 10 s: " + t);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  (void)drop_files(cfg, watch, nullptr, 0, cfg.warmup);
  auto before = parse_metrics(call(port, "/metrics").body);
  drop_result r = drop_files(cfg, watch, nullptr, cfg.warmup, cfg.files);
  auto after = parse_metrics(call(port, "/metrics").body);

  // Every file was one trace, all completed; the trigger lost nothing.
  double traces = double(cfg.warmup + cfg.files);
  for (int tries = 0;; ++tries) {
    auto m = tries == 0 ? after : parse_metrics(call(port, "/metrics").body);
    double done = metric(m, "xerv_completed_traces_total"), failed = metric(m, "xerv_failed_traces_total");
    if (failed != 0) fail(std::to_string(int64_t(failed)) + " traces failed");
    if (done == traces) break;
    if (done > traces || tries == 500)
      fail(std::to_string(int64_t(done)) + " traces completed, expected " + std::to_string(int64_t(traces)));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string t = trigger_json(port);
  for (const char* k : {"overflow_count", "dropped_count", "refused_count"})
    if (xt::json_number(t, k) != 0) fail(std::string("the trigger's ") + k + " is not 0: " + t);
  if (xt::json_number(t, "fire_count") != int64_t(traces)) fail("the trigger's fire_count is not " + std::to_string(int64_t(traces)) + ": " + t);
  double syncs = metric(after, "xerv_wal_sync_seconds_count") - metric(before, "xerv_wal_sync_seconds_count");
  double sync_s = metric(after, "xerv_wal_sync_seconds_sum") - metric(before, "xerv_wal_sync_seconds_sum");

  g_server->signal(SIGTERM);
  auto code = g_server->wait_exit(std::chrono::seconds(15));
  if (!code || *code != 0) fail(code ? "xerv exited with " + std::to_string(*code) : "xerv ignored SIGTERM for 15 s");
  std::string log = g_server->log();
  cleanup();
  if (log.find("WARN") != std::string::npos || log.find("ERROR") != std::string::npos)
    fprintf(stderr, "fs_bench: xerv logged warnings:\n%s\n", log.c_str());
  const histogram& h = r.latency;
  return {h.percentile_us(0.50),
          r.checksum,
          {{"p99_us", h.percentile_us(0.99)},
           {"max_us", double(h.max) / 1000.0},
           {"files", double(h.total)},
           {"wal_sync_mean_us", syncs > 0 ? sync_s / syncs * 1e6 : 0},
           {"wal_syncs_per_file", syncs / double(cfg.files)}}};
}

}  // namespace

int main(int argc, char** argv) {
  g_bench = "fs_bench";
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  config cfg;
  if (perf::has_flag(argc, argv, "--smoke")) cfg.files = 20, cfg.warmup = 3, cfg.rounds = 1;
  cfg.xerv = arg_string(argc, argv, "--xerv", cfg.xerv);
  cfg.dir = arg_string(argc, argv, "--dir", cfg.dir);
  cfg.wal_sync = arg_string(argc, argv, "--wal-sync", cfg.wal_sync);
  cfg.files = int(perf::arg_number(argc, argv, "--files", cfg.files));
  cfg.warmup = int(perf::arg_number(argc, argv, "--warmup", cfg.warmup));
  cfg.rounds = int(perf::arg_number(argc, argv, "--rounds", cfg.rounds));
  cfg.shards = int(perf::arg_number(argc, argv, "--shards", cfg.shards));
  cfg.gap_ms = int(perf::arg_number(argc, argv, "--gap-ms", cfg.gap_ms));
  cfg.timeout_ms = int(perf::arg_number(argc, argv, "--timeout-ms", cfg.timeout_ms));
  if (cfg.files < 1 || cfg.files > 1'000'000 || cfg.warmup < 0 || cfg.rounds < 1 || cfg.shards < 1 ||
      cfg.shards > 64 || cfg.gap_ms < 0 || cfg.gap_ms > 10'000 || cfg.timeout_ms < 1 ||
      cfg.dir.find_first_of("\"'\\") != std::string::npos || cfg.dir.empty() || cfg.dir[0] != '/') {
    fprintf(stderr, "fs_bench: bad arguments\n");
    return 2;
  }
  if (access(cfg.xerv.c_str(), X_OK) != 0) fail(cfg.xerv + " is not an executable xerv binary");
  setenv("XERV_TEST_BINARY", cfg.xerv.c_str(), 1);  // xerv_process starts this binary
  fprintf(stderr, "fs_bench: %s, %d shards, %d files (+%d warm-up) per side, %d rounds, gap %d ms, data under %s\n",
          cfg.xerv.c_str(), cfg.shards, cfg.files, cfg.warmup, cfg.rounds, cfg.gap_ms, cfg.dir.c_str());
  g_listener = new listener();
  std::vector<perf::run_result> ours, base;
  for (int round = 0; round < cfg.rounds; ++round) {
    for (int side = 0; side < 2; ++side) {
      if ((side == 0) == (round % 2 == 0)) {
        ours.push_back(xerv_run(cfg));
        const auto& e = ours.back().extra;
        fprintf(stderr, "  round %d xerv:     p50 %.0f us  p99 %.0f us  max %.0f us  (WAL: %.2f syncs/file, %.0f us each)\n",
                round + 1, ours.back().value, e[0].second, e[1].second, e[4].second, e[3].second);
      } else {
        base.push_back(baseline_run(cfg));
        const auto& e = base.back().extra;
        fprintf(stderr, "  round %d baseline: p50 %.0f us  p99 %.0f us  max %.0f us  (inotify alone: p50 %.0f  p99 %.0f  "
                "max %.0f us)\n", round + 1, base.back().value, e[0].second, e[1].second, e[3].second, e[4].second,
                e[5].second);
      }
    }
  }
  uint64_t connections = g_listener->connections();
  g_listener->stop();
  auto c = perf::compare_runs("fs_trigger_latency_n" + std::to_string(cfg.files) + "_s" + std::to_string(cfg.shards),
                              "us_p50", ours, base);
  double b99 = field_of(c, "baseline_p99_us");
  c.extra.insert(c.extra.begin(), {{"p99_ratio", b99 > 0 ? field_of(c, "ours_p99_us") / b99 : 0},
                                   {"files", double(cfg.files)},
                                   {"warmup", double(cfg.warmup)},
                                   {"rounds", double(cfg.rounds)},
                                   {"gap_ms", double(cfg.gap_ms)},
                                   {"shards", double(cfg.shards)},
                                   {"listener_connections", double(connections)}});
  perf::emit(c);
  return 0;
}
