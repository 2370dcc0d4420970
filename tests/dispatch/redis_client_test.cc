// backends/redis/client against a real redis-server on loopback: URLs,
// pipelining (a turn's commands in one send, replies in order), error and nil
// replies, AUTH and SELECT, a server killed and restarted under the client,
// and the reply watchdog with blocking commands.

#include "backends/redis/client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "io/ops.h"
#include "io/when_all.h"
#include "tests/dispatch/redis_server.h"
#include "tests/run_on.h"

using namespace std::chrono_literals;
namespace redis = xerv::backends::redis;
using xerv::testing::redis_server;
using xerv::testing::run_on;
namespace io = xerv::io;
namespace core = xerv::core;

TEST(redis_url, parses_what_users_write) {
  auto u = redis::url::parse("redis://127.0.0.1:6380/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 2u);
  EXPECT_TRUE(u->password.empty());

  u = redis::url::parse("redis://worker:p%40ss%3Aword@10.0.0.5");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->user, "worker");
  EXPECT_EQ(u->password, "p@ss:word");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->db, 0u);

  u = redis::url::parse("redis://:secret@[::1]:7000/0");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 7000);
  EXPECT_TRUE(u->user.empty());
  EXPECT_EQ(u->password, "secret");

  u = redis::url::parse("redis://secret@127.0.0.1");  // Redis before 6: a password alone
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->password, "secret");
}

TEST(redis_url, refuses_what_it_cannot_use_and_says_why) {
  for (const char* bad : {"127.0.0.1:6379", "rediss://127.0.0.1", "redis://", "redis://h:0", "redis://h:99999",
                          "redis://h:", "redis://h/x", "redis://:@h", "redis://[::1", "redis://u:%4@h"}) {
    std::string why;
    auto u = redis::url::parse(bad, &why);
    EXPECT_FALSE(u.ok()) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

namespace {

redis::client_options options(const redis_server& s, const std::string& userinfo = "", unsigned db = 0) {
  redis::client_options o;
  o.where = *redis::url::parse(s.url(userinfo, db));
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  return o;
}

}  // namespace

TEST(redis_client, pipelines_a_turns_commands_and_matches_replies_in_order) {
  redis_server server;
  ASSERT_TRUE(server.running());
  EXPECT_EQ(run_on(1, [](redis::client_options o) -> io::task<int> {
              redis::client c(o);
              c.start();
              auto connecting = c.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(connecting));
              uint64_t sends_before = c.stats().sends;
              // 1,000 commands issued in one turn.
              std::vector<io::task<io::result<redis::reply>>> calls;
              for (int i = 0; i < 1000; ++i) calls.push_back(c.call({"INCR", "counter"}));
              auto all = io::when_all(std::move(calls));
              std::vector<io::result<redis::reply>> replies = co_await std::move(all);
              for (size_t i = 0; i < replies.size(); ++i) {
                EXPECT_TRUE(replies[i].ok());
                if (replies[i]) {
                  EXPECT_EQ(replies[i]->integer, (long long)i + 1);
                }
              }
              EXPECT_LE(c.stats().sends - sends_before, 2u) << "one send for the turn's commands";
              // Strings, nil, errors (a reply, not a failure), arrays.
              auto set_call = c.call({"SET", "k", std::string_view("v\0w", 3)});
              auto set = co_await std::move(set_call);
              EXPECT_TRUE(set && set->is_ok());
              auto get_call = c.call({"GET", "k"});
              auto get = co_await std::move(get_call);
              EXPECT_TRUE(get && get->type == redis::reply::kind::string && get->str == std::string("v\0w", 3));
              auto missing_call = c.call({"GET", "nothing"});
              auto missing = co_await std::move(missing_call);
              EXPECT_TRUE(missing && missing->is_nil());
              auto wrong_call = c.call({"LPUSH", "k", "x"});
              auto wrong = co_await std::move(wrong_call);
              EXPECT_TRUE(wrong && wrong->is_error() && wrong->str.find("WRONGTYPE") == 0);
              auto listed_call = c.call({"MGET", "k", "nothing"});
              auto listed = co_await std::move(listed_call);
              EXPECT_TRUE(listed && listed->elements.size() == 2 && listed->elements[1].is_nil());
              auto stopping = c.stop();
              co_await std::move(stopping);
              co_return 0;
            }(options(server))),
            0);
}

TEST(redis_client, authenticates_and_selects_the_database) {
  redis_server server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server.running());
  EXPECT_EQ(run_on(1, [](redis::client_options good, redis::client_options other_db,
                         redis::client_options wrong) -> io::task<int> {
              redis::client c(good), d(other_db), w(wrong);
              c.start();
              d.start();
              w.start();
              auto up = c.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(up));
              auto up_d = d.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(up_d));
              auto set_call = c.call({"SET", "where", "db3"});
              auto set = co_await std::move(set_call);
              EXPECT_TRUE(set && set->is_ok());
              auto here_call = c.call({"GET", "where"});
              auto here = co_await std::move(here_call);
              EXPECT_TRUE(here && here->str == "db3");
              auto elsewhere_call = d.call({"GET", "where"});
              auto elsewhere = co_await std::move(elsewhere_call);
              EXPECT_TRUE(elsewhere && elsewhere->is_nil()) << "db 0 does not see db 3's key";
              // A wrong password never connects; its calls fail at once.
              auto never = w.wait_connected(500ms);
              EXPECT_FALSE(co_await std::move(never));
              auto refused_call = w.call({"PING"});
              auto refused = co_await std::move(refused_call);
              EXPECT_EQ(refused.error(), core::dispatch_errc::unavailable);
              EXPECT_GT(w.stats().failures, 0u);
              for (redis::client* x : {&c, &d, &w}) {
                auto stopping = x->stop();
                co_await std::move(stopping);
              }
              co_return 0;
            }(options(server, ":s3cret", 3), options(server, ":s3cret"), options(server, ":wrong"))),
            0);
}

TEST(redis_client, a_killed_server_fails_calls_in_flight_and_the_client_reconnects) {
  redis_server server;
  ASSERT_TRUE(server.running());
  EXPECT_EQ(run_on(1, [](redis::client_options o, redis_server* s) -> io::task<int> {
              redis::client c(o);
              c.start();
              auto up = c.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(up));
              // In flight when the server dies: BLPOP waits in Redis.
              auto blocked = c.call({"BLPOP", "never", "5"}, 5s);
              auto sleeping = io::sleep_for(100ms);
              (void)co_await sleeping;
              s->kill();
              auto lost = co_await std::move(blocked);
              EXPECT_EQ(lost.error(), core::dispatch_errc::unavailable);
              auto down_call = c.call({"PING"});
              auto down = co_await std::move(down_call);
              EXPECT_EQ(down.error(), core::dispatch_errc::unavailable) << "down: refused at once";
              EXPECT_FALSE(c.connected());
              EXPECT_TRUE(s->start());
              auto back = c.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(back));
              auto pong_call = c.call({"PING"});
              auto pong = co_await std::move(pong_call);
              EXPECT_TRUE(pong && pong->str == "PONG");
              EXPECT_GE(c.stats().connects, 2u);
              auto stopping = c.stop();
              co_await std::move(stopping);
              co_return 0;
            }(options(server), &server)),
            0);
}

TEST(redis_client, a_reply_later_than_its_allowance_drops_the_connection) {
  redis_server server;
  ASSERT_TRUE(server.running());
  auto impatient = options(server);
  impatient.reply_timeout = 200ms;
  EXPECT_EQ(run_on(1, [](redis::client_options o) -> io::task<int> {
              redis::client c(o);
              c.start();
              auto up = c.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(up));
              // Allowed to block for 1 s: not dropped.
              auto popped_call = c.call({"BLPOP", "empty", "1"}, 1500ms);
              auto popped = co_await std::move(popped_call);
              EXPECT_TRUE(popped && popped->is_nil());
              EXPECT_EQ(c.stats().connects, 1u);
              // Not allowed to block: no reply for 1 s is a dead connection.
              auto slow_call = c.call({"BLPOP", "empty", "1"});
              auto slow = co_await std::move(slow_call);
              EXPECT_EQ(slow.error(), core::dispatch_errc::unavailable);
              auto back = c.wait_connected(5s);
              EXPECT_TRUE(co_await std::move(back));
              EXPECT_GE(c.stats().connects, 2u);
              auto stopping = c.stop();
              co_await std::move(stopping);
              co_return 0;
            }(impatient)),
            0);
}
