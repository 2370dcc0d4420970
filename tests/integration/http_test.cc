// The real xerv binary over real sockets: HTTP/1.1 behaviour, limits, timeouts,
// the connection cap, metrics, configuration errors and graceful shutdown.

#include <gtest/gtest.h>

#include "tests/integration/xerv_process.h"

using namespace xerv::testing;
using namespace std::chrono_literals;

namespace {

TEST(http, health_and_keep_alive) {
  xerv_process x({"XERV_SHARDS=2"});
  uint16_t port = x.wait_ready();
  ASSERT_NE(port, 0) << x.log();
  client c(port);
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(get("/health")));
    auto r = c.read_response();
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("\"status\":\"healthy\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"shards\":2"), std::string::npos) << r.body;
    EXPECT_EQ(r.headers["connection"], "");  // keep-alive is the HTTP/1.1 default
  }
}

}  // namespace
