// Coroutine building blocks on a single shard: task, when_all, spawn/gate, timers,
// cancellation and timeouts.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <vector>

#include "io/gate.h"
#include "io/net.h"
#include "io/ops.h"
#include "io/when_all.h"
#include "tests/run_on.h"

using namespace xerv;
using namespace std::chrono_literals;
using xerv::testing::run_on;

namespace {

io::task<int> value(int v) { co_return v; }
io::task<int> add(int a, int b) { co_return co_await value(a) + co_await value(b); }
io::task<void> nothing() { co_return; }
io::task<int> throws_after_sleep() {
  (void)co_await io::sleep_for(1ms);
  throw std::runtime_error("boom");
}
io::task<int> sleep_then(std::chrono::milliseconds d, int v, std::vector<int>* order) {
  auto r = co_await io::sleep_for(d);
  EXPECT_TRUE(r.ok());
  order->push_back(v);
  co_return v;
}

TEST(task, returns_values_through_nested_awaits) {
  EXPECT_EQ(run_on(1, add(20, 22)), 42);
}

#if defined(__SANITIZE_ADDRESS__)
// GCC cannot turn symmetric transfer into a tail call under ASan, so each
// synchronous completion costs a frame there; the Release run checks the full size.
constexpr long k_chain = 1'000;
#else
constexpr long k_chain = 1'000'000;
#endif

io::task<int> long_chain() {
  // A million synchronous completions: symmetric transfer keeps the stack flat.
  long sum = 0;
  for (long i = 0; i < k_chain; ++i) sum += co_await value(1);
  co_await nothing();
  co_return sum == k_chain ? 0 : 1;
}
TEST(task, long_chains_do_not_grow_the_stack) { EXPECT_EQ(run_on(1, long_chain()), 0); }

io::task<int> catch_exception() {
  try {
    co_await throws_after_sleep();
  } catch (const std::runtime_error& e) {
    co_return std::string(e.what()) == "boom" ? 7 : 1;
  }
  co_return 2;
}
TEST(task, exceptions_propagate_to_the_awaiter) { EXPECT_EQ(run_on(1, catch_exception()), 7); }

io::task<int> when_all_tuple() {
  std::vector<int> order;
  auto [a, b, c] = co_await io::when_all(sleep_then(30ms, 3, &order), sleep_then(10ms, 1, &order), nothing());
  (void)c;
  EXPECT_EQ(a, 3);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  co_return 0;
}
TEST(when_all, tuple_runs_children_concurrently) { EXPECT_EQ(run_on(1, when_all_tuple()), 0); }

io::task<int> when_all_vector() {
  std::vector<int> order;
  std::vector<io::task<int>> ts;
  for (int i = 5; i >= 1; --i) ts.push_back(sleep_then(std::chrono::milliseconds(i * 5), i, &order));
  auto start = io::monotonic_ns();
  auto out = co_await io::when_all(std::move(ts));
  auto took_ms = (io::monotonic_ns() - start) / 1'000'000;
  EXPECT_EQ(out, (std::vector<int>{5, 4, 3, 2, 1}));  // results keep argument order
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4, 5}));  // completions follow the timers
  EXPECT_GE(took_ms, 25u);
  EXPECT_LT(took_ms, 25u * 5);  // concurrent, not serial (which would be 75 ms+)
  auto none = co_await io::when_all(std::vector<io::task<int>>{});
  EXPECT_TRUE(none.empty());
  co_return 0;
}
TEST(when_all, vector_keeps_order_and_handles_empty) { EXPECT_EQ(run_on(1, when_all_vector()), 0); }

io::task<int> when_all_exception() {
  std::vector<int> order;
  try {
    co_await io::when_all(throws_after_sleep(), sleep_then(20ms, 9, &order));
  } catch (const std::runtime_error&) {
    // The sibling finished before the exception surfaced: nothing left running.
    co_return order == std::vector<int>{9} ? 0 : 1;
  }
  co_return 2;
}
TEST(when_all, rethrows_after_all_children_finish) { EXPECT_EQ(run_on(1, when_all_exception()), 0); }

io::task<void> bump_after(std::chrono::milliseconds d, int* counter) {
  (void)co_await io::sleep_for(d);
  ++*counter;
}
io::task<io::result<void>> fail_with_result() { co_return io::errc::queue_full; }

io::task<int> gate_drain() {
  io::gate g;
  int counter = 0;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(io::spawn(g, bump_after(std::chrono::milliseconds(i), &counter)).ok());
  EXPECT_TRUE(io::spawn(g, throws_after_sleep()).ok());  // logged, does not escape
  EXPECT_TRUE(io::spawn(g, fail_with_result()).ok());    // logged
  EXPECT_EQ(g.count(), 11u);  // the result-returning one finished synchronously
  co_await g.close();
  EXPECT_EQ(counter, 10);
  EXPECT_EQ(g.count(), 0u);
  auto refused = io::spawn(g, nothing());
  EXPECT_EQ(refused.error(), io::errc::closed);
  co_return 0;
}
TEST(gate, close_waits_for_spawned_tasks_and_refuses_new_ones) { EXPECT_EQ(run_on(1, gate_drain()), 0); }

io::task<int> sleep_accuracy() {
  auto start = io::monotonic_ns();
  auto r = co_await io::sleep_for(20ms);
  auto ms = (io::monotonic_ns() - start) / 1'000'000;
  EXPECT_TRUE(r.ok());
  EXPECT_GE(ms, 20u);
  EXPECT_LT(ms, 500u);
  co_await io::yield{};
  co_return 0;
}
TEST(timer, sleep_waits_at_least_the_duration) { EXPECT_EQ(run_on(1, sleep_accuracy()), 0); }

io::task<void> cancel_later(io::cancel_source* cs, std::chrono::milliseconds d) {
  (void)co_await io::sleep_for(d);
  cs->cancel();
}

io::task<int> cancel_sleep() {
  io::cancel_source cs;
  io::gate g;
  auto start = io::monotonic_ns();
  EXPECT_TRUE(io::spawn(g, cancel_later(&cs, 10ms)).ok());
  auto r = co_await io::sleep_for(10s, &cs);
  EXPECT_EQ(r.error(), io::errc::cancelled);
  EXPECT_LT((io::monotonic_ns() - start) / 1'000'000, 2000u);
  // Already cancelled: completes at once with the reason.
  auto again = co_await io::sleep_for(10s, &cs);
  EXPECT_EQ(again.error(), io::errc::cancelled);
  co_await g.close();
  co_return 0;
}
TEST(cancel, cancels_a_sleeping_task) { EXPECT_EQ(run_on(1, cancel_sleep()), 0); }

io::task<io::result<void>> long_sleep(io::cancel_source* cs) { co_return co_await io::sleep_for(10s, cs); }
io::task<io::result<void>> short_sleep(io::cancel_source* cs) { co_return co_await io::sleep_for(1ms, cs); }

io::task<int> timeouts() {
  {
    io::cancel_source cs;
    auto r = co_await io::with_timeout(20ms, cs, long_sleep(&cs));
    EXPECT_EQ(r.error(), io::errc::timed_out);
  }
  {
    io::cancel_source cs;
    auto r = co_await io::with_timeout(1s, cs, short_sleep(&cs));
    EXPECT_TRUE(r.ok());
    EXPECT_FALSE(cs.cancelled());  // the deadline was disarmed when the task won
  }
  co_return 0;
}
TEST(timeout, fires_or_is_disarmed) { EXPECT_EQ(run_on(1, timeouts()), 0); }

io::task<io::result<io::recv_buffer>> recv_on(io::tcp_connection* c, io::cancel_source* cs) {
  co_return co_await c->recv(cs);
}

io::task<int> ring_op_timeout() {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  io::tcp_connection a(sv[0]), b(sv[1]);
  io::cancel_source cs;
  auto start = io::monotonic_ns();
  auto r = co_await io::with_timeout(30ms, cs, recv_on(&a, &cs));
  EXPECT_EQ(r.error(), io::errc::timed_out);  // an in-flight ring op, cancelled through the ring
  EXPECT_GE((io::monotonic_ns() - start) / 1'000'000, 30u);
  // The socket still works afterwards.
  EXPECT_TRUE((co_await b.send_all(std::string_view("hi"))).ok());
  auto got = co_await a.recv();
  EXPECT_TRUE(got.ok());
  EXPECT_EQ(got->view(), "hi");
  co_await a.close();
  co_await b.close();
  co_return 0;
}
TEST(timeout, cancels_an_in_flight_ring_operation) { EXPECT_EQ(run_on(1, ring_op_timeout()), 0); }

}  // namespace
