// echo_bench: TCP ping-pong round trips per second against the xerv runtime's echo
// server (one SO_REUSEPORT listener per shard, one spawned task per connection) and
// against a plain blocking echo server with one std::thread per connection, both on
// 127.0.0.1 and driven by the same epoll load generator in the same process.
//
//   echo_bench [--smoke] [--connections C] [--seconds D] [--shards N]
//              [--client-threads T] [--no-pin] [--runs R]

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io/gate.h"
#include "io/log.h"
#include "io/net.h"
#include "io/ops.h"
#include "io/runtime.h"
#include "io/when_all.h"
#include "perf/harness.h"

using namespace xerv;
using perf::histogram;
using namespace std::chrono_literals;

namespace {

constexpr size_t k_message_bytes = 64;
constexpr unsigned k_shards_max = 64;
constexpr size_t k_baseline_connections_max = 4096;

struct config {
  unsigned connections = 64;
  double seconds = 3;
  unsigned shards = 2;
  unsigned client_threads = 4;
  bool pin_shards = true;
  int runs = 5;
};

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}


// ---------- load generator (identical for both servers) ----------

struct client_conn {
  int fd = -1;
  uint64_t seq = 0;
  uint64_t sent_ns = 0;
  size_t got = 0;
  char out[k_message_bytes]{};
  char in[k_message_bytes]{};
};

struct load_result {
  uint64_t round_trips = 0;
  uint64_t checksum = 0;
  uint64_t elapsed_ns = 0;
  bool ok = true;
  histogram latency;
};

void fill_message(client_conn& c, unsigned conn_id) {
  memset(c.out, static_cast<int>('a' + conn_id % 26), sizeof c.out);
  memcpy(c.out, &c.seq, sizeof c.seq);
  memcpy(c.out + sizeof c.seq, &conn_id, sizeof conn_id);
}

bool send_message(client_conn& c) {
  // One 64-byte message in flight per socket always fits the send buffer, so a
  // short write means the connection is broken.
  c.got = 0;
  return send(c.fd, c.out, sizeof c.out, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof c.out);
}

// Handles one readable socket; returns false when the echo is wrong or the peer left.
bool on_readable(client_conn& c, unsigned id, uint64_t deadline_ns, load_result& r, bool& live) {
  ssize_t n = recv(c.fd, c.in + c.got, sizeof c.in - c.got, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) return false;
  c.got += static_cast<size_t>(n);
  if (c.got < sizeof c.in) return true;
  if (memcmp(c.in, c.out, sizeof c.in) != 0) return false;
  uint64_t now = now_ns();
  r.latency.record(now - c.sent_ns);
  ++r.round_trips;
  r.checksum += c.seq * 2654435761u + id;
  if (now >= deadline_ns) {
    live = false;
    return true;
  }
  ++c.seq;
  fill_message(c, id);
  c.sent_ns = now;
  return send_message(c);
}

// Drives `conns` ping-pong connections from one thread with level-triggered epoll.
void drive(uint16_t port, unsigned first_id, unsigned conns, uint64_t start_ns, uint64_t deadline_ns, load_result* r) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<client_conn> cs(conns);
  for (unsigned i = 0; i < conns && r->ok; ++i) {
    cs[i].fd = perf::connect_loopback(port);
    epoll_event ev{EPOLLIN, {.u32 = i}};
    r->ok = cs[i].fd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) == 0;
  }
  if (uint64_t now = now_ns(); now < start_ns) std::this_thread::sleep_for(std::chrono::nanoseconds(start_ns - now));
  for (unsigned i = 0; i < conns && r->ok; ++i) {
    fill_message(cs[i], first_id + i);
    cs[i].sent_ns = now_ns();
    r->ok = send_message(cs[i]);
  }
  unsigned live = r->ok ? conns : 0;
  std::array<epoll_event, 256> events;
  while (live > 0 && r->ok) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno != EINTR) r->ok = false;
    for (int e = 0; e < n && r->ok; ++e) {
      unsigned i = events[size_t(e)].data.u32;
      bool still = true;
      r->ok = on_readable(cs[i], first_id + i, deadline_ns, *r, still);
      if (!still) {
        epoll_ctl(ep, EPOLL_CTL_DEL, cs[i].fd, nullptr);
        --live;
      }
    }
    if (now_ns() > deadline_ns + 2'000'000'000u) r->ok = false;  // a server stopped answering
  }
  r->elapsed_ns = now_ns() - start_ns;
  for (auto& c : cs)
    if (c.fd >= 0) close(c.fd);
  close(ep);
}

// Runs the load against `port` and turns it into one harness sample.
perf::run_result measure(uint16_t port, const config& cfg) {
  unsigned threads = std::min(cfg.client_threads, cfg.connections);
  std::vector<load_result> parts(threads);
  std::vector<std::thread> ts;
  // Connecting takes a while with many sockets; the clock starts after it.
  uint64_t start = now_ns() + 50'000'000u + cfg.connections * 200'000u;
  uint64_t deadline = start + static_cast<uint64_t>(cfg.seconds * 1e9);
  unsigned given = 0;
  for (unsigned t = 0; t < threads; ++t) {
    unsigned n = cfg.connections / threads + (t < cfg.connections % threads ? 1 : 0);
    ts.emplace_back(drive, port, given, n, start, deadline, &parts[t]);
    given += n;
  }
  for (auto& t : ts) t.join();
  load_result all;
  for (auto& p : parts) {
    all.round_trips += p.round_trips;
    all.checksum += p.checksum;
    all.elapsed_ns = std::max(all.elapsed_ns, p.elapsed_ns);
    all.ok = all.ok && p.ok;
    all.latency.merge(p.latency);
  }
  if (!all.ok || all.round_trips == 0) {
    fprintf(stderr, "echo_bench: load generator failed against port %u\n", unsigned(port));
    exit(1);
  }
  double rate = static_cast<double>(all.round_trips) / (static_cast<double>(all.elapsed_ns) / 1e9);
  return {rate, all.checksum, {{"p50_us", all.latency.percentile_us(0.50)}, {"p99_us", all.latency.percentile_us(0.99)}}};
}

// ---------- xerv echo server ----------

struct shard_server {
  std::unique_ptr<io::tcp_listener> listener;
  io::gate acceptor;
  io::gate sessions;
};
// Indexed by shard id; each entry is created, used and deleted by its own shard.
std::array<shard_server*, k_shards_max> g_servers{};
std::atomic<uint16_t> g_port{0};
std::atomic<bool> g_stop{false};

io::task<void> echo_session(io::tcp_connection conn) {
  for (;;) {
    auto buf = co_await conn.recv();
    if (!buf || buf->size() == 0) break;
    if (!(co_await conn.send_all(buf->view())).ok()) break;
  }
  co_await conn.close();
}

io::task<void> accept_loop(shard_server* srv) {
  for (;;) {
    auto c = co_await srv->listener->accept();
    if (!c) break;  // the listener was closed
    if (!io::spawn(srv->sessions, echo_session(std::move(*c))).ok()) break;
  }
}

io::task<uint16_t> start_shard(uint16_t port) {
  auto l = io::tcp_listener::listen(*io::socket_address::parse("127.0.0.1", port));
  ASSERT(l.ok(), "listen: %s", l.error().message().c_str());
  auto* srv = new shard_server{std::move(*l), {}, {}};
  g_servers[io::this_shard_id()] = srv;
  (void)io::spawn(srv->acceptor, accept_loop(srv));  // a fresh gate cannot be closed
  co_return srv->listener->port();
}

io::task<void> stop_shard() {
  shard_server* srv = g_servers[io::this_shard_id()];
  co_await srv->listener->close();
  co_await srv->acceptor.close();
  co_await srv->sessions.close();
  g_servers[io::this_shard_id()] = nullptr;
  delete srv;
}

io::task<int> serve_until_stopped() {
  uint16_t port = co_await start_shard(0);
  for (unsigned s = 1; s < io::shard_count(); ++s) {
    uint16_t same = co_await io::submit_to(s, [port] { return start_shard(port); });
    ASSERT(same == port, "shard %u listens on %u, not %u", s, unsigned(same), unsigned(port));
  }
  g_port.store(port, std::memory_order_release);
  // The load generator lives on plain threads outside the runtime; a 5 ms poll of a
  // flag costs the shard nothing measurable and needs no cross-runtime wake-up.
  while (!g_stop.load(std::memory_order_acquire)) (void)co_await io::sleep_for(5ms);
  co_await io::invoke_on_all([] { return stop_shard(); });
  co_return 0;
}

perf::run_result run_xerv(const config& cfg) {
  g_port = 0;
  g_stop = false;
  std::thread rt_thread([&cfg] {
    io::runtime_options opts;
    opts.shards = cfg.shards;
    opts.pin_threads = cfg.pin_shards;
    io::runtime rt(opts);
    ASSERT(rt.run(serve_until_stopped()) == 0);
  });
  while (g_port.load(std::memory_order_acquire) == 0) std::this_thread::sleep_for(1ms);
  perf::run_result r = measure(g_port.load(), cfg);
  g_stop = true;
  rt_thread.join();
  return r;
}

// ---------- baseline: blocking sockets, one thread per connection ----------

class thread_echo_server {
 public:
  thread_echo_server() {
    _fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // same as io's listener
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT(bind(_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(_fd, 4096) == 0);
    getsockname(_fd, reinterpret_cast<sockaddr*>(&a), &len);
    _port = ntohs(a.sin_port);
    _acceptor = std::thread([this] { accept_loop(); });
  }
  ~thread_echo_server() {
    shutdown(_fd, SHUT_RDWR);  // wakes the blocked accept() with EINVAL
    _acceptor.join();
    for (auto& t : _sessions) t.join();  // they end when the clients close
    close(_fd);
  }
  thread_echo_server(const thread_echo_server&) = delete;
  thread_echo_server& operator=(const thread_echo_server&) = delete;
  uint16_t port() const { return _port; }

 private:
  void accept_loop() {
    for (;;) {
      int c = accept4(_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0 && errno == EINTR) continue;
      if (c < 0) return;
      if (_sessions.size() >= k_baseline_connections_max) {
        close(c);
        continue;
      }
      _sessions.emplace_back(serve, c);
    }
  }
  static void serve(int fd) {
    char buf[16384];  // the size of io's provided receive buffers
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = send(fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          close(fd);
          return;
        }
        off += w;
      }
    }
    close(fd);
  }

  int _fd = -1;
  uint16_t _port = 0;
  std::thread _acceptor;
  std::vector<std::thread> _sessions;  // touched by the acceptor until it is joined
};

perf::run_result run_baseline(const config& cfg) {
  thread_echo_server server;
  return measure(server.port(), cfg);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  io::set_log_level(io::log_level::warn);
  bool smoke = perf::has_flag(argc, argv, "--smoke");
  config cfg;
  if (smoke) {
    cfg.connections = 8;
    cfg.seconds = 0.3;
    cfg.runs = 3;
  }
  cfg.connections = static_cast<unsigned>(perf::arg_number(argc, argv, "--connections", cfg.connections));
  cfg.seconds = perf::arg_number(argc, argv, "--seconds", cfg.seconds);
  cfg.shards = static_cast<unsigned>(perf::arg_number(argc, argv, "--shards", cfg.shards));
  cfg.client_threads = static_cast<unsigned>(perf::arg_number(argc, argv, "--client-threads", cfg.client_threads));
  cfg.runs = static_cast<int>(perf::arg_number(argc, argv, "--runs", cfg.runs));
  cfg.pin_shards = !perf::has_flag(argc, argv, "--no-pin");
  if (cfg.connections < 1 || cfg.connections > 4096 || cfg.shards < 1 || cfg.shards > k_shards_max ||
      cfg.client_threads < 1 || cfg.runs < 1 || !(cfg.seconds > 0 && cfg.seconds <= 600)) {
    fprintf(stderr, "echo_bench: bad arguments\n");
    return 2;
  }

  auto c = perf::compare(
      "echo_pingpong_" + std::to_string(k_message_bytes) + "B_c" + std::to_string(cfg.connections) + "_s" +
          std::to_string(cfg.shards) + "_t" + std::to_string(cfg.client_threads),
      "round_trips/s",
      cfg.runs, [&] { return run_xerv(cfg); }, [&] { return run_baseline(cfg); });
  c.extra.insert(c.extra.begin(), {{"connections", cfg.connections},
                                   {"message_bytes", double(k_message_bytes)},
                                   {"seconds", cfg.seconds},
                                   {"shards", cfg.shards},
                                   {"client_threads", cfg.client_threads},
                                   {"pinned_shards", cfg.pin_shards ? 1.0 : 0.0}});
  perf::emit(c);
  return 0;
}
