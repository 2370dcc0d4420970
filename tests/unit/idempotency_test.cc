#include "flows/idempotency.h"

#include <gtest/gtest.h>

#include "core/wal.h"
#include "flows/journal.h"

namespace xerv::flows {
namespace {

core::trace_id tid(uint64_t n) { return core::trace_id{n << 16, n}; }

idempotency_table table(uint64_t ttl_ms, size_t max) {
  idempotency_options o;
  o.ttl = std::chrono::milliseconds(ttl_ms);
  o.max = max;
  return idempotency_table(o);
}

TEST(idempotency, a_key_answers_its_trace_until_the_ttl_passes) {
  auto t = table(1000, 10);
  t.insert("orders", "k1", tid(1), 5000, nullptr);
  EXPECT_EQ(t.find("orders", "k1", 5000), tid(1));
  EXPECT_EQ(t.find("orders", "k1", 5999), tid(1));
  EXPECT_FALSE(t.find("orders", "k1", 6000));
  EXPECT_EQ(t.size(), 0u);  // expired keys are dropped, not only hidden
}

TEST(idempotency, keys_are_per_pipeline) {
  auto t = table(1000, 10);
  t.insert("a", "k", tid(1), 0, nullptr);
  t.insert("b", "k", tid(2), 0, nullptr);
  EXPECT_EQ(t.find("a", "k", 1), tid(1));
  EXPECT_EQ(t.find("b", "k", 1), tid(2));
  // Pipeline and key stay apart: ("a", "k") is not ("ak", "").
  EXPECT_FALSE(t.find("ak", "", 1));
  t.erase("a", "k");
  EXPECT_FALSE(t.find("a", "k", 1));
  EXPECT_EQ(t.find("b", "k", 1), tid(2));
}

TEST(idempotency, beyond_max_the_oldest_key_is_forgotten) {
  auto t = table(100'000, 3);
  for (uint64_t i = 1; i <= 5; ++i) t.insert("p", "k" + std::to_string(i), tid(i), i, nullptr);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_FALSE(t.find("p", "k1", 10));
  EXPECT_FALSE(t.find("p", "k2", 10));
  EXPECT_EQ(t.find("p", "k3", 10), tid(3));
  EXPECT_EQ(t.find("p", "k5", 10), tid(5));
}

core::wal_record record(std::string& buf, const idempotency_record& r, uint64_t lsn, uint64_t segment) {
  encode(buf, r);
  return core::wal_record{lsn, uint32_t(journal_type::idempotency), segment, buf};
}

TEST(idempotency, replay_keeps_the_newest_record_and_skips_expired_ones) {
  auto t = table(1000, 10);
  std::string a, b, c;
  EXPECT_TRUE(t.replay(record(a, {tid(7), 9000, "orders", "k", false}, 1, 1), 1000));
  EXPECT_EQ(t.find("orders", "k", 1000), tid(7));
  // Its relog in a later segment: same trace, same expiry, one key.
  EXPECT_TRUE(t.replay(record(b, {tid(7), 9000, "orders", "k", true}, 9, 4), 1000));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.replay(record(c, {tid(8), 500, "orders", "gone", false}, 2, 1), 1000));
  EXPECT_FALSE(t.find("orders", "gone", 1000));
  EXPECT_FALSE(t.replay(core::wal_record{3, uint32_t(journal_type::idempotency), 1, "short"}, 1000));
  EXPECT_FALSE(decode_idempotency(a.substr(0, a.size() - 1)));
  auto back = decode_idempotency(b);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->relogged);
  EXPECT_EQ(back->key, "k");
  EXPECT_EQ(back->expires_ms, 9000u);
}

// A key record whose admission is not in the log (a torn tail cut between
// them) names no trace: recovery drops it. A relogged key stays, its trace's
// start long deleted by retention.
TEST(idempotency, end_replay_drops_keys_whose_admission_is_missing) {
  auto t = table(100'000, 10);
  std::string a, b, c;
  t.replay(record(a, {tid(1), 50'000, "p", "admitted", false}, 1, 1), 1000);
  t.replay(record(b, {tid(2), 50'000, "p", "torn", false}, 3, 1), 1000);
  t.replay(record(c, {tid(3), 40'000, "p", "old", true}, 5, 2), 1000);
  t.end_replay([](const core::trace_id& id) { return id == tid(1); });
  EXPECT_EQ(t.find("p", "admitted", 1000), tid(1));
  EXPECT_FALSE(t.find("p", "torn", 1000));
  EXPECT_EQ(t.find("p", "old", 1000), tid(3));
  // The expiry order is rebuilt: "old" (40 s) goes before "admitted" (50 s).
  EXPECT_FALSE(t.find("p", "old", 45'000));
  EXPECT_EQ(t.find("p", "admitted", 45'000), tid(1));
}

TEST(idempotency, owner_is_stable_and_spreads_keys) {
  EXPECT_EQ(idempotency_owner("orders", "k1", 4), idempotency_owner("orders", "k1", 4));
  EXPECT_EQ(idempotency_owner("orders", "k1", 1), 0u);
  unsigned seen[4] = {};
  for (int i = 0; i < 400; ++i) ++seen[idempotency_owner("orders", "key-" + std::to_string(i), 4)];
  for (unsigned n : seen) EXPECT_GT(n, 50u);
}

TEST(idempotency, key_syntax) {
  EXPECT_TRUE(valid_idempotency_key("order-1:2026/12/03"));
  EXPECT_FALSE(valid_idempotency_key(""));
  EXPECT_FALSE(valid_idempotency_key("has space"));
  EXPECT_FALSE(valid_idempotency_key(std::string(256, 'k')));
  EXPECT_TRUE(valid_idempotency_key(std::string(255, 'k')));
  EXPECT_FALSE(valid_idempotency_key("caf\xc3\xa9"));
}

}  // namespace
}  // namespace xerv::flows
