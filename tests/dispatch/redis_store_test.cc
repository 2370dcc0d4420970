// backends/redis/pipeline_store on a real redis-server: the store rules
// (revisions, conflicts, not_found, only-if-new), two workers sharing one
// Redis (a deploy through one reaches the other's watch, in seq order, and
// its load), racing publishes, and Redis going away and coming back.

#include "backends/redis/pipeline_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "io/ops.h"
#include "io/when_all.h"
#include "tests/dispatch/changes.h"
#include "tests/dispatch/redis_server.h"
#include "tests/run_on.h"

using namespace std::chrono_literals;
namespace redis = xerv::backends::redis;
namespace io = xerv::io;
namespace core = xerv::core;
using kind = core::pipeline_change::kind;
using st = core::pipeline_state;
using xerv::testing::redis_server;
using xerv::testing::make_change;
using xerv::testing::run_on;

// One worker's store with its two connections (not in an anonymous
// namespace: coroutine frames hold it, see docs/runtime.md on GCC 12).
struct store_worker {
  redis::client commands, blocking;
  redis::pipeline_store store;
  explicit store_worker(uint16_t port)
      : commands(opts(port)), blocking(opts(port)), store(commands, blocking, redis::store_options{"t", 100, 100ms}) {}
  static redis::client_options opts(uint16_t port) {
    redis::client_options o;
    o.where.port = port;
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    return o;
  }
  io::task<bool> start() {
    commands.start();
    blocking.start();
    auto a = commands.wait_connected(5s);
    auto b = blocking.wait_connected(5s);
    bool up = co_await std::move(a);
    up = co_await std::move(b) && up;
    if (!up) co_return false;
    auto starting = store.start();
    auto started = co_await std::move(starting);
    co_return started.ok();
  }
  io::task<void> stop() {
    auto s = store.stop();
    co_await std::move(s);
    auto a = commands.stop();
    co_await std::move(a);
    auto b = blocking.stop();
    co_await std::move(b);
  }
};

inline io::task<bool> start_both(store_worker& a, store_worker& b) {
  auto starting_a = a.start();
  bool up = co_await std::move(starting_a);
  auto starting_b = b.start();
  co_return co_await std::move(starting_b) && up;
}

inline io::task<void> stop_both(store_worker& a, store_worker& b) {
  auto stopping_a = a.stop();
  co_await std::move(stopping_a);
  auto stopping_b = b.stop();
  co_await std::move(stopping_b);
}

inline io::task<std::vector<core::pipeline_change>> next_n(core::pipeline_watch& w, size_t n) {
  std::vector<core::pipeline_change> seen;
  io::cancel_source stop;
  io::deadline limit(3s, stop);
  while (seen.size() < n) {
    auto next = w.next(stop);
    auto c = co_await std::move(next);
    if (!c) break;
    seen.push_back(std::move(*c));
  }
  co_return seen;
}

TEST(redis_store, follows_the_store_rules_and_reaches_every_worker) {
  redis_server server;
  ASSERT_TRUE(server.running());
  EXPECT_EQ(run_on(1, [](uint16_t port) -> io::task<int> {
              auto a = std::make_unique<store_worker>(port);
              auto b = std::make_unique<store_worker>(port);
              auto starting = start_both(*a, *b);
              EXPECT_TRUE(co_await std::move(starting));
              auto on_b = b->store.watch();
              std::vector<core::pipeline_change> script = {
                  make_change(kind::deploy, "a", "name: a\nversion: '1'\n"),
                  make_change(kind::deploy, "b", "name: b\n"),
                  make_change(kind::deploy, "a", "name: a\nversion: '2'\n"),
                  make_change(kind::state, "a", "", st::paused),
                  make_change(kind::remove, "b"),
                  make_change(kind::deploy, "a", "name: a\nversion: '3'\n", st::paused),
              };
              std::vector<core::pipeline_change> published;
              for (auto& c : script) {
                auto publishing = a->store.publish(c, 0);
                auto r = co_await std::move(publishing);
                EXPECT_TRUE(r.ok()) << c.name;
                if (r) published.push_back(*r);
              }
              std::vector<uint64_t> revisions;
              for (const auto& p : published) revisions.push_back(p.revision);
              EXPECT_EQ(revisions, (std::vector<uint64_t>{1, 1, 2, 2, 1, 3}));
              for (size_t i = 1; i < published.size(); ++i) EXPECT_EQ(published[i].seq, published[i - 1].seq + 1);
              EXPECT_EQ(published[3].source, "name: a\nversion: '2'\n") << "a state change keeps the definition";
              // Refusals, through the other worker.
              auto stale = b->store.publish(make_change(kind::deploy, "a", "name: a\n"), 2);
              auto stale_r = co_await std::move(stale);
              EXPECT_EQ(stale_r.error(), core::dispatch_errc::conflict);
              auto unknown = b->store.publish(make_change(kind::state, "b", "", st::paused), 0);
              auto unknown_r = co_await std::move(unknown);
              EXPECT_EQ(unknown_r.error(), core::dispatch_errc::not_found);
              auto again = b->store.publish(make_change(kind::deploy, "a", "name: a\n"), core::revision_absent);
              auto again_r = co_await std::move(again);
              EXPECT_EQ(again_r.error(), core::dispatch_errc::conflict);
              // The other worker's watch saw every change, in order, and its load has what is left.
              auto watching = next_n(*on_b, published.size());
              std::vector<core::pipeline_change> seen = co_await std::move(watching);
              EXPECT_EQ(seen.size(), published.size());
              for (size_t i = 0; i < std::min(seen.size(), published.size()); ++i) {
                EXPECT_EQ(seen[i].seq, published[i].seq);
                EXPECT_EQ(seen[i].what, published[i].what);
                EXPECT_EQ(seen[i].revision, published[i].revision);
                EXPECT_EQ(seen[i].source, published[i].source);
              }
              auto loading = b->store.load();
              auto loaded = co_await std::move(loading);
              EXPECT_TRUE(loaded.ok());
              if (loaded) {
                EXPECT_EQ(loaded->size(), 1u);
                if (!loaded->empty()) {
                  EXPECT_EQ(loaded->front().name, "a");
                  EXPECT_EQ(loaded->front().revision, 3u);
                  EXPECT_EQ(loaded->front().state, st::paused);
                  EXPECT_EQ(loaded->front().what, kind::deploy);
                }
              }
              on_b.reset();
              auto stopping = stop_both(*a, *b);
              co_await std::move(stopping);
              co_return 0;
            }(server.port())),
            0);
}

TEST(redis_store, racing_publishes_from_two_workers_all_land_in_one_order) {
  redis_server server;
  ASSERT_TRUE(server.running());
  EXPECT_EQ(run_on(1, [](uint16_t port) -> io::task<int> {
              auto a = std::make_unique<store_worker>(port);
              auto b = std::make_unique<store_worker>(port);
              auto starting = start_both(*a, *b);
              EXPECT_TRUE(co_await std::move(starting));
              auto watch = a->store.watch();
              // Both read the same seq under WATCH; one EXEC aborts and goes again.
              std::vector<io::task<io::result<core::pipeline_change>>> racing;
              for (int i = 0; i < 10; ++i) {
                racing.push_back(a->store.publish(make_change(kind::deploy, "p" + std::to_string(i), "name: x\n"), 0));
                racing.push_back(b->store.publish(make_change(kind::deploy, "q" + std::to_string(i), "name: y\n"), 0));
              }
              auto all = io::when_all(std::move(racing));
              auto results = co_await std::move(all);
              std::vector<uint64_t> seqs;
              for (auto& r : results) {
                EXPECT_TRUE(r.ok());
                if (r) seqs.push_back(r->seq);
              }
              std::sort(seqs.begin(), seqs.end());
              for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1) << "one seq each, no gap";
              EXPECT_GT(a->store.races() + b->store.races(), 0u) << "the EXECs raced, and one started over";
              auto watching = next_n(*watch, 20);
              auto seen = co_await std::move(watching);
              EXPECT_EQ(seen.size(), 20u);
              for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1].seq, seen[i].seq);
              watch.reset();
              auto stopping = stop_both(*a, *b);
              co_await std::move(stopping);
              co_return 0;
            }(server.port())),
            0);
}

TEST(redis_store, redis_down_is_unavailable_and_the_watch_resumes_after_it) {
  redis_server server({"--appendonly", "yes", "--appendfsync", "always"});
  ASSERT_TRUE(server.running());
  EXPECT_EQ(run_on(1, [](redis_server* s) -> io::task<int> {
              auto a = std::make_unique<store_worker>(s->port());
              auto starting = a->start();
              EXPECT_TRUE(co_await std::move(starting));
              auto watch = a->store.watch();
              auto first = a->store.publish(make_change(kind::deploy, "a", "name: a\n"), 0);
              auto first_r = co_await std::move(first);
              EXPECT_TRUE(first_r.ok());
              s->kill();
              auto pausing = io::sleep_for(100ms);
              (void)co_await pausing;
              auto refused = a->store.publish(make_change(kind::deploy, "b", "name: b\n"), 0);
              auto refused_r = co_await std::move(refused);
              EXPECT_EQ(refused_r.error(), core::dispatch_errc::unavailable);
              EXPECT_TRUE(s->start());
              auto back = a->commands.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(back));
              auto second = a->store.publish(make_change(kind::deploy, "b", "name: b\n"), 0);
              auto r = co_await std::move(second);
              EXPECT_TRUE(r.ok());
              if (r) {
                EXPECT_EQ(r->seq, 2u) << "the seq survived the restart (AOF)";
              }
              auto watching = next_n(*watch, 2);
              auto seen = co_await std::move(watching);
              EXPECT_EQ(seen.size(), 2u);
              if (seen.size() == 2) {
                EXPECT_EQ(seen[0].name, "a");
                EXPECT_EQ(seen[1].name, "b");
              }
              watch.reset();
              auto stopping = a->stop();
              co_await std::move(stopping);
              co_return 0;
            }(&server)),
            0);
}
