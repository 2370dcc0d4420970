// /health and /ready gather every shard's probe (issue 9, bug 8: a WAL that
// failed a sync on one shard makes the whole server unhealthy, for good), on a
// real runtime with the handlers called in process.

#include <gtest/gtest.h>

#include <memory>

#include "http/admin.h"
#include "http/parser.h"
#include "io/runtime.h"
#include "io/when_all.h"
#include "tests/run_on.h"

using namespace xerv;

namespace {

struct answer {
  int status = 0;
  std::string body;
};

io::task<answer> call(const http::router& r, std::string target) {
  auto parser = std::make_unique<http::request_parser>();
  std::string in = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)parser->feed(in.data(), in.size());
  http::request& req = parser->current();
  http::router::match m = r.find(req);
  if (!m.target) co_return answer{m.status, {}};
  auto handling = (*m.target)(req);
  http::response resp = co_await std::move(handling);
  co_return answer{resp.status, resp.body};
}

void set_probe(http::shard_health h) {
  http::set_health_probe([h] { return h; });
  http::set_ready(true);
}

io::task<int> scenario() {
  http::admin_info info;
  info.version = "test";
  info.shards = 2;
  http::router r;
  http::add_health_routes(r, info);

  http::shard_health fine;
  http::shard_health failed;
  failed.wal_unavailable = true;
  failed.wal_failed = true;
  failed.wal_error = "fdatasync failed: Input/output error";
  failed.recovered_traces = 3;
  // (Calls bound to names first: GCC 12 and temporaries in co_await, docs/runtime.md.)
  auto all_fine = io::invoke_on_all([fine] { set_probe(fine); });
  co_await std::move(all_fine);

  auto asking = call(r, "/health");
  answer h = co_await std::move(asking);
  EXPECT_EQ(h.status, 200) << h.body;
  EXPECT_NE(h.body.find(R"("status":"healthy")"), std::string::npos) << h.body;
  EXPECT_NE(h.body.find(R"("wal":{"status":"ok"})"), std::string::npos) << h.body;
  answer ready = co_await call(r, "/ready");
  EXPECT_EQ(ready.status, 200) << ready.body;

  auto one_failed = io::submit_to(1, [failed] { set_probe(failed); });
  co_await std::move(one_failed);
  h = co_await call(r, "/health");  // asked on shard 0: shard 1's failure shows
  EXPECT_EQ(h.status, 503) << h.body;
  EXPECT_NE(h.body.find(R"("status":"unhealthy")"), std::string::npos) << h.body;
  EXPECT_NE(h.body.find(R"("recovered_traces":3)"), std::string::npos) << h.body;
  EXPECT_NE(h.body.find(R"("wal":{"status":"failed","failed_shards":[1],"error":"fdatasync failed: Input/output error"})"),
            std::string::npos)
      << h.body;
  ready = co_await call(r, "/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("restart xerv"), std::string::npos) << ready.body;

  http::shard_health recovering;
  recovering.recovering = true;
  auto one_recovering = io::submit_to(1, [recovering] { set_probe(recovering); });
  co_await std::move(one_recovering);
  ready = co_await call(r, "/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("recovering the write-ahead log"), std::string::npos) << ready.body;
  h = co_await call(r, "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_NE(h.body.find(R"("recovering":true)"), std::string::npos) << h.body;

  co_await io::invoke_on_all([] { http::set_health_probe({}); });
  co_return 0;
}

TEST(health, gathers_every_shard_and_a_failed_wal_is_unhealthy) { EXPECT_EQ(xerv::testing::run_on(2, scenario()), 0); }

}  // namespace
