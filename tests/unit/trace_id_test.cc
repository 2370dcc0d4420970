// Trace ids as text (core/trace_id.h).

#include "core/trace_id.h"

#include <gtest/gtest.h>

using xerv::core::trace_id;

TEST(trace_id, text_is_uuid_shaped_lowercase_hex_and_parses_back) {
  trace_id id{0x0123456789abcdefull, 0xfedcba9876543210ull};
  EXPECT_EQ(id.to_string(), "01234567-89ab-cdef-fedc-ba9876543210");
  EXPECT_EQ(trace_id::parse(id.to_string()), id);
  EXPECT_EQ(trace_id{}.to_string(), "00000000-0000-0000-0000-000000000000");
  trace_id ones{~0ull, ~0ull};
  EXPECT_EQ(ones.to_string(), "ffffffff-ffff-ffff-ffff-ffffffffffff");
  for (unsigned shard : {0u, 1u, 65535u}) {
    trace_id fresh = xerv::core::new_trace_id(shard);
    auto back = trace_id::parse(fresh.to_string());
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, fresh);
    EXPECT_EQ(back->shard(), shard);
  }
  EXPECT_FALSE(trace_id::parse("01234567-89ab-cdef-fedc-ba987654321"));
}
