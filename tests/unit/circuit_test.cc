// The circuit breaker's window and rule (flows/circuit.h), on a made-up clock.

#include "flows/circuit.h"

#include <gtest/gtest.h>

using namespace xerv::flows;

namespace {

constexpr uint64_t t0 = 1'000'000;
const circuit_options opts{};  // window 60 s, open 30 s, 5 failures, 3 probes, 3 successes
constexpr double threshold = 0.05;

circuit_event failure(uint64_t generation = 0) { return {"p", generation, false, false}; }
circuit_event trial(bool ok, uint64_t generation) { return {"p", generation, true, ok}; }

// Opens `c` as the control shard would after five failures.
void open(circuit& c, uint64_t now) {
  auto d = decide(c, failure(c.decided.generation), {0, 5}, threshold, opts, now);
  ASSERT_TRUE(d);
  c.apply(*d);
}

}  // namespace

TEST(circuit_window, counts_what_happened_in_the_last_window_only) {
  circuit_window w;
  w.add(true, t0, 60'000);
  w.add(false, t0 + 1'000, 60'000);
  w.add(false, t0 + 30'000, 60'000);
  auto all = w.total(t0 + 30'000, 60'000);
  EXPECT_EQ(all.ok, 1u);
  EXPECT_EQ(all.failed, 2u);
  // A window later the first two are gone, the third is not.
  auto later = w.total(t0 + 66'000, 60'000);
  EXPECT_EQ(later.ok, 0u);
  EXPECT_EQ(later.failed, 1u);
  EXPECT_EQ(w.total(t0 + 200'000, 60'000).failed, 0u);
  // A bucket reused after a lap starts from zero.
  w.add(true, t0 + 120'000, 60'000);
  EXPECT_EQ(w.total(t0 + 120'000, 60'000).ok, 1u);
  w.clear();
  EXPECT_EQ(w.total(t0 + 120'000, 60'000).ok, 0u);
}

TEST(circuit, opens_on_the_fifth_failure_above_the_threshold) {
  circuit c;
  EXPECT_FALSE(decide(c, failure(), {0, 4}, threshold, opts, t0)) << "four failures are not enough";
  EXPECT_FALSE(decide(c, failure(), {200, 5}, threshold, opts, t0)) << "5 of 205 is under 5 %";
  auto d = decide(c, failure(), {90, 5}, threshold, opts, t0);  // 5 of 95 is over 5 %
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, circuit_state::open);
  EXPECT_EQ(d->generation, 1u);
  EXPECT_EQ(d->open_until_ms, t0 + opts.open_ms);
  // Successes never open it.
  EXPECT_FALSE(decide(c, circuit_event{"p", 0, false, true}, {0, 9}, threshold, opts, t0));
}

TEST(circuit, open_then_half_open_when_its_time_is_up) {
  circuit c;
  open(c, t0);
  EXPECT_EQ(c.at(t0), circuit_state::open);
  EXPECT_EQ(c.at(t0 + opts.open_ms - 1), circuit_state::open);
  EXPECT_EQ(c.at(t0 + opts.open_ms), circuit_state::half_open);
  // While open, late failures of traces admitted before change nothing.
  EXPECT_FALSE(decide(c, failure(0), {0, 50}, threshold, opts, t0 + 1));
  EXPECT_FALSE(decide(c, failure(1), {0, 50}, threshold, opts, t0 + 1));
}

TEST(circuit, three_trial_successes_close_it) {
  circuit c;
  open(c, t0);
  uint64_t later = t0 + opts.open_ms + 5;
  EXPECT_FALSE(decide(c, trial(true, 1), {}, threshold, opts, later));
  EXPECT_FALSE(decide(c, trial(true, 1), {}, threshold, opts, later));
  // A failure of a trace admitted while closed is not a trial: no effect.
  EXPECT_FALSE(decide(c, failure(1), {0, 9}, threshold, opts, later));
  auto d = decide(c, trial(true, 1), {}, threshold, opts, later);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, circuit_state::closed);
  EXPECT_EQ(d->generation, 2u);
  c.apply(*d);
  EXPECT_EQ(c.at(later), circuit_state::closed);
  EXPECT_EQ(c.trial_successes, 0u);
}

TEST(circuit, a_failed_trial_opens_it_again_and_restarts_the_count) {
  circuit c;
  open(c, t0);
  uint64_t later = t0 + opts.open_ms + 5;
  EXPECT_FALSE(decide(c, trial(true, 1), {}, threshold, opts, later));
  auto d = decide(c, trial(false, 1), {}, threshold, opts, later);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, circuit_state::open);
  EXPECT_EQ(d->open_until_ms, later + opts.open_ms);
  c.apply(*d);
  EXPECT_EQ(c.trial_successes, 0u);
  // A trial of the previous half-open period reports against generation 1: ignored.
  uint64_t again = later + opts.open_ms;
  EXPECT_FALSE(decide(c, trial(true, 1), {}, threshold, opts, again));
  EXPECT_FALSE(decide(c, trial(true, 2), {}, threshold, opts, again));
  EXPECT_FALSE(decide(c, trial(true, 2), {}, threshold, opts, again));
  EXPECT_TRUE(decide(c, trial(true, 2), {}, threshold, opts, again));
}

TEST(circuit, apply_starts_a_fresh_window) {
  circuit c;
  c.window.add(false, t0, opts.window_ms);
  open(c, t0);
  EXPECT_EQ(c.window.total(t0, opts.window_ms).failed, 0u);
}
