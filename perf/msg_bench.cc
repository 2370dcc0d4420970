// msg_bench: cross-shard request/reply rate between two shards. Shard 0 keeps
// `window` submit_to calls in flight to shard 1 until `count` have completed (one
// way), and then both shards do so towards each other at once (both ways). The
// baseline moves the same number of requests and replies between two plain pinned
// threads over io::spsc_queue directly, busy-polling: the transport's ceiling, with
// no coroutines, frames, or sleeping and waking.
//
//   msg_bench [--smoke] [--count N] [--window W] [--runs R]

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <numeric>
#include <thread>
#include <vector>

#include "io/log.h"
#include "io/runtime.h"
#include "io/spsc_queue.h"
#include "io/when_all.h"
#include "perf/harness.h"

using namespace xerv;

namespace {

struct config {
  uint64_t count = 4'000'000;  // requests per sending direction
  unsigned window = 512;       // requests in flight per sending shard
  int runs = 5;
};

enum class direction { one_way, both_ways };

constexpr unsigned k_queue_slots = io::runtime_options{}.message_queue_slots;

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// The work a request does on the far side: cheap, but not foldable into a formula
// for the sum, so the checksum proves every request ran once.
uint64_t mix(uint64_t i) {
  i ^= i >> 31;
  i *= 0x9E3779B97F4A7C15ull;
  return i ^ (i >> 29);
}

uint64_t expected_checksum(uint64_t count) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < count; ++i) sum += mix(i);
  return sum;
}

// ---------- xerv: submit_to between shards ----------

// One lane of the window: a request in flight at all times until its share is done.
io::task<uint64_t> lane(unsigned target, uint64_t first, uint64_t count) {
  uint64_t sum = 0;
  for (uint64_t i = first; i < first + count; ++i) sum += co_await io::submit_to(target, [i] { return mix(i); });
  co_return sum;
}

io::task<uint64_t> send_window(unsigned target, uint64_t count, unsigned window) {
  std::vector<io::task<uint64_t>> lanes;
  uint64_t first = 0;
  for (unsigned l = 0; l < window; ++l) {
    uint64_t n = count / window + (l < count % window ? 1 : 0);
    lanes.push_back(lane(target, first, n));
    first += n;
  }
  auto sums = co_await io::when_all(std::move(lanes));
  co_return std::accumulate(sums.begin(), sums.end(), uint64_t{0});
}

struct xerv_out {
  uint64_t elapsed_ns = 0;
  uint64_t checksum = 0;
};

io::task<int> xerv_main(config cfg, direction dir, xerv_out* out) {
  co_await io::submit_to(1, [] {});  // shard 1 has entered its loop
  uint64_t start = now_ns();
  if (dir == direction::one_way) {
    out->checksum = co_await send_window(1, cfg.count, cfg.window);
  } else {
    auto [a, b] = co_await io::when_all(send_window(1, cfg.count, cfg.window), io::submit_to(1, [cfg] {
                                          return send_window(0, cfg.count, cfg.window);
                                        }));
    out->checksum = a + b;
  }
  out->elapsed_ns = now_ns() - start;
  co_return 0;
}

perf::run_result run_xerv(const config& cfg, direction dir) {
  xerv_out out;
  // A thread of its own: run() pins its caller to a CPU and leaves it pinned, which
  // would confine the baseline threads (and later runtimes) created from main.
  std::thread t([&] {
    io::runtime_options opts;
    opts.shards = 2;
    io::runtime rt(opts);
    ASSERT(rt.run(xerv_main(cfg, dir, &out)) == 0);
  });
  t.join();
  uint64_t messages = dir == direction::one_way ? cfg.count : 2 * cfg.count;
  return {static_cast<double>(messages) / (static_cast<double>(out.elapsed_ns) / 1e9), out.checksum, {}};
}

// ---------- baseline: two busy-polling threads over raw SPSC queues ----------

struct raw_msg {
  uint64_t seq = 0;
  uint64_t value = 0;
  bool replying = false;
};

struct raw_side {
  io::spsc_queue<raw_msg*>* out = nullptr;
  io::spsc_queue<raw_msg*>* in = nullptr;
  uint64_t count = 0;  // requests this side sends
  unsigned window = 0;
  unsigned cpu = 0;
  std::atomic<bool> done{false};
  raw_side* peer = nullptr;
  uint64_t checksum = 0;
  uint64_t elapsed_ns = 0;
};

// The same CPU choice as the runtime's shards: the n-th CPU this process may use.
void pin_to_nth_cpu(unsigned n) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  unsigned want = n % static_cast<unsigned>(CPU_COUNT(&allowed)), seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed) || seen++ != want) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    return;
  }
}

// Issues requests up to the window, serves the peer's requests, and publishes once
// per pass like a shard's loop does. Keeps serving after its own work is done
// until the peer's is too.
void raw_loop(raw_side* s, std::latch* start) {
  pin_to_nth_cpu(s->cpu);
  std::vector<raw_msg> pool(s->window);
  std::vector<raw_msg*> free_list;
  free_list.reserve(s->window);
  for (auto& m : pool) free_list.push_back(&m);
  uint64_t issued = 0, completed = 0;
  start->arrive_and_wait();
  uint64_t t0 = now_ns();
  for (;;) {
    while (issued < s->count && !free_list.empty()) {
      raw_msg* m = free_list.back();
      free_list.pop_back();
      *m = {issued++, 0, false};
      ASSERT(s->out->push(m), "queue sized for two windows");
    }
    s->in->pop_batch([&](raw_msg* m) {
      if (m->replying) {
        s->checksum += m->value;
        ++completed;
        free_list.push_back(m);
      } else {
        m->value = mix(m->seq);
        m->replying = true;
        ASSERT(s->out->push(m), "queue sized for two windows");
      }
    });
    s->out->publish();
    if (completed == s->count && !s->done.load(std::memory_order_relaxed)) s->done.store(true, std::memory_order_release);
    if (s->done.load(std::memory_order_relaxed) && s->peer->done.load(std::memory_order_acquire)) break;
  }
  s->elapsed_ns = now_ns() - t0;
}

perf::run_result run_raw(const config& cfg, direction dir) {
  io::spsc_queue<raw_msg*> a_to_b(k_queue_slots), b_to_a(k_queue_slots);
  raw_side a, b;
  a.out = &a_to_b, a.in = &b_to_a, a.count = cfg.count, a.window = cfg.window, a.cpu = 0, a.peer = &b;
  b.out = &b_to_a, b.in = &a_to_b, b.window = cfg.window, b.cpu = 1, b.peer = &a;
  b.count = dir == direction::one_way ? 0 : cfg.count;
  std::latch start(2);
  std::thread tb(raw_loop, &b, &start);
  raw_loop(&a, &start);  // pins the calling thread, hence run_baseline's own thread
  tb.join();
  uint64_t messages = a.count + b.count;
  return {static_cast<double>(messages) / (static_cast<double>(std::max(a.elapsed_ns, b.elapsed_ns)) / 1e9),
          a.checksum + b.checksum, {}};
}

perf::run_result run_baseline(const config& cfg, direction dir) {
  perf::run_result r;
  std::thread t([&] { r = run_raw(cfg, dir); });
  t.join();
  return r;
}

bool bench(const config& cfg, direction dir) {
  const char* what = dir == direction::one_way ? "msg_one_way_w" : "msg_both_ways_w";
  uint64_t want = expected_checksum(cfg.count) * (dir == direction::one_way ? 1 : 2);
  bool right = true;
  auto check = [&](perf::run_result r) {
    right = right && r.checksum == want;
    return r;
  };
  auto c = perf::compare(
      what + std::to_string(cfg.window), "round_trips/s", cfg.runs, [&] { return check(run_xerv(cfg, dir)); },
      [&] { return check(run_baseline(cfg, dir)); });
  c.extra.insert(c.extra.begin(), {{"count", double(cfg.count)}, {"window", cfg.window}, {"shards", 2}});
  perf::emit(c);
  if (!right) fprintf(stderr, "msg_bench: %s: a run's checksum differs from %llu\n", what, (unsigned long long)want);
  return right;
}

}  // namespace

int main(int argc, char** argv) {
  io::set_log_level(io::log_level::warn);
  config cfg;
  if (perf::has_flag(argc, argv, "--smoke")) {
    cfg.count = 20'000;
    cfg.runs = 3;
  }
  cfg.count = static_cast<uint64_t>(perf::arg_number(argc, argv, "--count", double(cfg.count)));
  cfg.window = static_cast<unsigned>(perf::arg_number(argc, argv, "--window", cfg.window));
  cfg.runs = static_cast<int>(perf::arg_number(argc, argv, "--runs", cfg.runs));
  // Each queue carries one side's requests and the other side's replies.
  if (cfg.count < 1 || cfg.window < 1 || cfg.window * 2 > k_queue_slots || cfg.runs < 1) {
    fprintf(stderr, "msg_bench: bad arguments (window at most %u)\n", k_queue_slots / 2);
    return 2;
  }
  bool ok = bench(cfg, direction::one_way);
  ok = bench(cfg, direction::both_ways) && ok;
  return ok ? 0 : 1;
}
