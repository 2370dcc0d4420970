// The runtime with real threads, sockets, files and signals: cross-shard
// messaging, TCP echo across shards, O_DIRECT files (and the fallback), SIGTERM.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <sched.h>

#include <array>
#include <thread>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/event.h"
#include "io/file.h"
#include "io/gate.h"
#include "io/net.h"
#include "io/ops.h"
#include "io/when_all.h"
#include "tests/run_on.h"

using namespace xerv;
using namespace std::chrono_literals;
using xerv::testing::run_on;

namespace {

// ---------- submit_to basics ----------

io::task<unsigned> shard_id_later() {
  (void)co_await io::sleep_for(1ms);
  co_return io::this_shard_id();
}

io::task<int> submit_basics() {
  EXPECT_EQ(co_await io::submit_to(1, [] { return io::this_shard_id(); }), 1u);
  EXPECT_EQ(co_await io::submit_to(1, [] { return shard_id_later(); }), 1u);
  EXPECT_EQ(co_await io::submit_to(0, [] { return io::this_shard_id(); }), 0u);  // same shard: direct call
  co_await io::submit_to(1, [] {});  // void
  bool caught = false;
  try {
    co_await io::submit_to(1, []() -> int { throw std::runtime_error("remote"); });
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "remote";
  }
  EXPECT_TRUE(caught);
  EXPECT_EQ(io::this_shard_id(), 0u);  // resumed back home
  auto ids = co_await io::invoke_on_all([] { return io::this_shard_id(); });
  EXPECT_EQ(ids, (std::vector<unsigned>{0, 1}));
  co_return 0;
}
TEST(submit_to, runs_on_the_target_and_returns_home) { EXPECT_EQ(run_on(2, submit_basics()), 0); }

// ---------- turn-end hooks ----------

struct counting_hook : io::turn_hook {
  int runs = 0;
  int requeue = 0;  // queue itself again this many times
  io::event* done = nullptr;
};

void count_run(io::turn_hook* h) {
  auto* c = static_cast<counting_hook*>(h);
  ++c->runs;
  if (c->requeue > 0) {
    --c->requeue;
    io::this_reactor().at_turn_end(c);
  } else if (c->done) {
    c->done->notify();
  }
}

io::task<int> turn_hooks() {
  co_await io::yield();  // into the loop: the main task starts before it
  io::reactor& r = io::this_reactor();
  counting_hook once;
  once.run = &count_run;
  r.at_turn_end(&once);
  r.at_turn_end(&once);  // already queued: still one run
  EXPECT_EQ(once.runs, 0);  // not before the turn ends
  co_await io::yield();
  EXPECT_EQ(once.runs, 1);
  EXPECT_FALSE(once.queued);

  counting_hook cancelled;
  cancelled.run = &count_run;
  r.at_turn_end(&cancelled);
  r.cancel_turn_end(&cancelled);
  co_await io::yield();
  EXPECT_EQ(cancelled.runs, 0);

  // A hook queued by a hook runs in a later turn, and the loop does not sleep
  // while one is queued: nothing else would wake this shard (no timers, no I/O).
  io::event done;
  io::cancel_source never;
  counting_hook chain;
  chain.run = &count_run;
  chain.requeue = 3;
  chain.done = &done;
  r.at_turn_end(&chain);
  auto finished = done.wait(never);
  co_await finished;
  EXPECT_EQ(chain.runs, 4);
  co_return 0;
}
TEST(reactor, turn_end_hooks_run_once_per_queueing_before_the_loop_sleeps) { EXPECT_EQ(run_on(1, turn_hooks()), 0); }

// ---------- 1,000,000 ordered messages per pair ----------

constexpr unsigned k_shards = 2;
// received[target][source]: next expected sequence number; touched only by `target`.
struct alignas(64) inbox_state {
  std::array<uint64_t, k_shards> next{};
  uint64_t out_of_order = 0;
};
std::array<inbox_state, k_shards> g_inbox;

io::task<int> send_stream(unsigned target, uint64_t count) {
  constexpr uint64_t window = 512;
  unsigned self = io::this_shard_id();
  for (uint64_t base = 0; base < count; base += window) {
    std::vector<io::task<uint64_t>> batch;
    for (uint64_t seq = base; seq < std::min(count, base + window); ++seq) {
      batch.push_back(io::submit_to(target, [self, seq, target] {
        inbox_state& in = g_inbox[target];
        if (in.next[self] != seq) ++in.out_of_order;
        in.next[self] = seq + 1;
        return seq;
      }));
    }
    auto acks = co_await io::when_all(std::move(batch));
    for (size_t i = 0; i < acks.size(); ++i)
      if (acks[i] != base + i) co_return 1;
  }
  co_return 0;
}

io::task<int> message_storm(uint64_t count) {
  g_inbox = {};
  // Both directions at once: shard 0 -> 1 and shard 1 -> 0.
  auto [a, b] = co_await io::when_all(send_stream(1, count), io::submit_to(1, [count] { return send_stream(0, count); }));
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 0);
  co_return 0;
}

void check_storm(uint64_t count) {
  for (unsigned t = 0; t < k_shards; ++t) {
    EXPECT_EQ(g_inbox[t].out_of_order, 0u) << "target " << t;
    for (unsigned s = 0; s < k_shards; ++s)
      if (s != t) {
        EXPECT_EQ(g_inbox[t].next[s], count) << "from " << s << " to " << t;
      }
  }
}

TEST(messaging, million_messages_per_pair_arrive_in_order) {
  constexpr uint64_t n = 1'000'000;
  EXPECT_EQ(run_on(k_shards, message_storm(n)), 0);
  check_storm(n);
}

TEST(messaging, eventfd_wakeup_fallback_delivers_in_order) {
  constexpr uint64_t n = 100'000;
  io::runtime_options opts;
  opts.force_eventfd_wakeup = true;
  opts.message_queue_slots = 64;  // small queue: also exercises the overflow list
  EXPECT_EQ(run_on(k_shards, message_storm(n), opts), 0);
  check_storm(n);
}

// ---------- TCP echo: 1,000 connections over 2 shards ----------

struct alignas(64) echo_stats {
  uint64_t accepted = 0;
};
std::array<echo_stats, 2> g_echo;

io::task<void> echo_session(io::tcp_connection conn) {
  for (;;) {
    auto buf = co_await conn.recv();
    if (!buf || buf->size() == 0) break;
    if (!(co_await conn.send_all(buf->view())).ok()) break;
  }
  co_await conn.close();
}

struct echo_server {
  std::unique_ptr<io::tcp_listener> listener;
  io::gate sessions;
};
std::array<echo_server*, 2> g_servers{};

io::task<void> accept_loop(echo_server* srv) {
  for (;;) {
    auto c = co_await srv->listener->accept();
    if (!c) break;  // closed
    ++g_echo[io::this_shard_id()].accepted;
    if (!io::spawn(srv->sessions, echo_session(std::move(*c))).ok()) break;
  }
}

io::gate* g_accept_gates[2]{};

io::task<uint16_t> start_echo(uint16_t port) {
  auto addr = io::socket_address::parse("127.0.0.1", port);
  auto l = io::tcp_listener::listen(*addr);
  EXPECT_TRUE(l.ok()) << l.error().message();
  auto* srv = new echo_server{std::move(*l), {}};
  g_servers[io::this_shard_id()] = srv;
  g_accept_gates[io::this_shard_id()] = new io::gate;
  (void)io::spawn(*g_accept_gates[io::this_shard_id()], accept_loop(srv));  // fresh gate: cannot be closed
  co_return srv->listener->port();
}

io::task<void> stop_echo() {
  unsigned id = io::this_shard_id();
  co_await g_servers[id]->listener->close();
  co_await g_accept_gates[id]->close();
  co_await g_servers[id]->sessions.close();
  delete g_accept_gates[id];
  delete g_servers[id];
}

io::task<int> echo_client(uint16_t port, int id) {
  auto conn = co_await io::connect(*io::socket_address::parse("127.0.0.1", port));
  if (!conn) co_return 1;
  std::string msg = "client-" + std::to_string(id) + std::string(200, char('a' + id % 26));
  for (int round = 0; round < 5; ++round) {
    if (!(co_await conn->send_all(msg)).ok()) co_return 2;
    std::string got;
    while (got.size() < msg.size()) {
      auto b = co_await conn->recv();
      if (!b || b->size() == 0) co_return 3;
      got.append(b->view());
    }
    if (got != msg) co_return 4;
  }
  co_return (co_await conn->shutdown_write()).ok() ? 0 : 5;
}

io::task<int> clients(uint16_t port, int first, int count) {
  std::vector<io::task<int>> cs;
  for (int i = 0; i < count; ++i) cs.push_back(echo_client(port, first + i));
  auto rs = co_await io::when_all(std::move(cs));
  int failures = 0;
  for (int r : rs) failures += r != 0;
  co_return failures;
}

io::task<int> echo_test() {
  g_echo = {};
  uint16_t port = co_await start_echo(0);
  EXPECT_EQ(co_await io::submit_to(1, [port] { return start_echo(port); }), port);
  // 500 clients from each shard at once; SO_REUSEPORT spreads them over both listeners.
  auto [f0, f1] = co_await io::when_all(clients(port, 0, 500), io::submit_to(1, [port] { return clients(port, 500, 500); }));
  EXPECT_EQ(f0, 0);
  EXPECT_EQ(f1, 0);
  co_await io::when_all(stop_echo(), io::submit_to(1, [] { return stop_echo(); }));
  co_return 0;
}

TEST(tcp, echo_with_1000_concurrent_connections_on_2_shards) {
  EXPECT_EQ(run_on(2, echo_test()), 0);
  EXPECT_EQ(g_echo[0].accepted + g_echo[1].accepted, 1000u);
  EXPECT_GT(g_echo[0].accepted, 0u);
  EXPECT_GT(g_echo[1].accepted, 0u);
}

// ---------- files ----------

std::filesystem::path make_temp_dir(const char* tag) {
  auto dir = std::filesystem::current_path() / ("xerv-test-" + std::string(tag) + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

io::task<int> direct_round_trip(std::string path, io::direct_io mode, bool expect_direct) {
  auto f = co_await io::file::open(path, {.flags = O_RDWR | O_CREAT | O_TRUNC, .direct = mode});
  EXPECT_TRUE(f.ok()) << f.error().message();
  if (!f) co_return 1;
  EXPECT_EQ(f->is_direct(), expect_direct);
  // ramfs (the fallback test's file system) has no fallocate; size then follows the write.
  uint64_t expect_size = 8192 + 64 * 1024;
  if (expect_direct) {
    EXPECT_TRUE((co_await f->allocate(0, 1 << 20)).ok());
    expect_size = 1 << 20;
  }
  io::aligned_buffer out(64 * 1024);
  for (size_t i = 0; i < out.size(); ++i) out.data()[i] = char(i * 7 + 3);
  EXPECT_TRUE((co_await f->write_at(8192, out.span())).ok());
  EXPECT_TRUE((co_await f->datasync()).ok());
  io::aligned_buffer in(64 * 1024);
  auto n = co_await f->read_at(8192, in.span());
  EXPECT_TRUE(n.ok());
  EXPECT_EQ(*n, out.size());
  EXPECT_EQ(memcmp(in.data(), out.data(), out.size()), 0);
  EXPECT_EQ(*(co_await f->size()), expect_size);
  if (expect_direct) {
    // Proof that the page cache is bypassed: O_DIRECT refuses unaligned memory.
    auto bad = co_await f->write_at(1, std::span<const char>(out.data() + 1, 100));
    EXPECT_FALSE(bad.ok());
  }
  co_await f->close();
  co_return 0;
}

TEST(file, o_direct_write_read_fdatasync_round_trip) {
  auto dir = make_temp_dir("direct");
  EXPECT_EQ(run_on(1, direct_round_trip((dir / "seg").string(), io::direct_io::required, true)), 0);
  std::filesystem::remove_all(dir);
}

io::task<int> fallback(std::string path) {
  auto req = co_await io::file::open(path, {.direct = io::direct_io::required});
  EXPECT_EQ(req.error(), io::errc::not_supported);
  co_return co_await direct_round_trip(path, io::direct_io::preferred, false);
}

TEST(file, falls_back_when_the_file_system_refuses_o_direct) {
  // ramfs has no O_DIRECT: a real file system that refuses it, not a simulation.
  auto dir = make_temp_dir("ramfs");
  if (mount("ramfs", dir.c_str(), "ramfs", 0, nullptr) != 0) {
    std::filesystem::remove_all(dir);
    GTEST_SKIP() << "cannot mount ramfs here (needs root): " << strerror(errno);
  }
  EXPECT_EQ(run_on(1, fallback((dir / "seg").string())), 0);
  umount(dir.c_str());
  std::filesystem::remove_all(dir);
}

// ---------- signals ----------

std::atomic<int> g_stopped_shards{0};

io::task<int> signal_main() {
  // Every shard keeps a sleeper; the signal must stop them all, not just shard 0.
  co_await io::invoke_on_all([] { return 0; });
  kill(getpid(), SIGTERM);
  int sig = co_await io::wait_for_signal();
  co_return sig;
}

TEST(signals, sigterm_is_read_on_shard_0_and_run_returns) {
  EXPECT_EQ(run_on(2, signal_main()), SIGTERM);
}

}  // namespace

namespace {

// ---------- pinning ----------

io::task<int> distinct_cpus() {
  auto cpus = co_await io::invoke_on_all([] { return sched_getcpu(); });
  co_return cpus[0] != cpus[1] ? 0 : 1;
}

TEST(pinning, every_runtime_spreads_shards_over_the_allowed_cpus) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs 2 CPUs";
  // Twice from the same thread: run() must not leave the caller pinned to one CPU.
  EXPECT_EQ(run_on(2, distinct_cpus()), 0);
  EXPECT_EQ(run_on(2, distinct_cpus()), 0);
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof mask, &mask), 0);
  EXPECT_GE(CPU_COUNT(&mask), 2);
}

}  // namespace
