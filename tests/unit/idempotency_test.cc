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

TEST(idempotency, replay_keeps_the_newest_record_and_skips_expired_ones) {
  auto t = table(1000, 10);
  std::string rec;
  encode(rec, tid(7), 9000, "orders", "k");
  core::wal_record r{1, uint32_t(journal_type::idempotency), 1, rec};
  EXPECT_TRUE(t.replay(r, 1000));
  EXPECT_EQ(t.find("orders", "k", 1000), tid(7));
  // A relog of the same key in a later segment: same trace, same expiry.
  r.segment = 4;
  EXPECT_TRUE(t.replay(r, 1000));
  EXPECT_EQ(t.size(), 1u);
  std::string old;
  encode(old, tid(8), 500, "orders", "gone");
  EXPECT_TRUE(t.replay(core::wal_record{2, uint32_t(journal_type::idempotency), 1, old}, 1000));
  EXPECT_FALSE(t.find("orders", "gone", 1000));
  EXPECT_FALSE(t.replay(core::wal_record{3, uint32_t(journal_type::idempotency), 1, "short"}, 1000));
  EXPECT_FALSE(decode_idempotency(rec.substr(0, rec.size() - 1)));
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
