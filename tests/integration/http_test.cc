// The real xerv binary over real sockets: HTTP/1.1 behaviour, limits, timeouts,
// the connection cap, metrics, configuration errors and graceful shutdown.

#include <gtest/gtest.h>

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>

#include "tests/integration/xerv_process.h"

using namespace xerv::testing;
using namespace std::chrono_literals;

namespace {

const std::string k_echo = "/api/v1/debug/echo";

struct server {
  explicit server(std::vector<std::string> env = {}) : proc(with_defaults(std::move(env))) {
    port = proc.wait_ready();
    EXPECT_NE(port, 0) << proc.log();
  }
  static std::vector<std::string> with_defaults(std::vector<std::string> env) {
    env.insert(env.begin(), {"XERV_SHARDS=2", "XERV_DEBUG_ROUTES=true"});
    return env;
  }
  xerv_process proc;
  uint16_t port = 0;
};

TEST(http, health_ready_and_keep_alive) {
  server s;
  client c(s.port);
  ASSERT_TRUE(c.connected());
  for (std::string path : {"/health", "/api/v1/health", "/ready", "/api/v1/ready"}) {
    ASSERT_TRUE(c.send(get(path)));
    auto r = c.read_response();
    ASSERT_TRUE(r.complete) << path;
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.headers["connection"], "");  // HTTP/1.1 keeps the connection by default
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_FALSE(r.headers["date"].empty());
  }
  ASSERT_TRUE(c.send(get("/health")));
  auto h = c.read_response();
  EXPECT_NE(h.body.find("\"status\":\"healthy\""), std::string::npos) << h.body;
  EXPECT_NE(h.body.find("\"version\":\""), std::string::npos) << h.body;
  EXPECT_NE(h.body.find("\"uptime_secs\":"), std::string::npos) << h.body;
  EXPECT_NE(h.body.find("\"backend\":\"memory\""), std::string::npos) << h.body;
  EXPECT_NE(h.body.find("\"shards\":2"), std::string::npos) << h.body;
  // Connection: close is honoured.
  ASSERT_TRUE(c.send(get("/health", "Connection: close\r\n")));
  auto last = c.read_response();
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(last.headers["connection"], "close");
  EXPECT_TRUE(c.closed_within(2000));
}

TEST(http, pipelined_requests_answer_in_order) {
  server s;
  client c(s.port);
  ASSERT_TRUE(c.send(get("/health") + post(k_echo, "first") + get("/nope") + post(k_echo, "second")));
  auto a = c.read_response(), b = c.read_response(), d = c.read_response(), e = c.read_response();
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.body, "first");
  EXPECT_EQ(d.status, 404);
  EXPECT_EQ(e.status, 200);
  EXPECT_EQ(e.body, "second");
}

TEST(http, chunked_request_body) {
  server s;
  client c(s.port);
  ASSERT_TRUE(c.send("POST " + k_echo +
                     " HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                     "5\r\nhello\r\n"));
  std::this_thread::sleep_for(50ms);  // the body arrives in pieces
  ASSERT_TRUE(c.send("6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(r.headers["content-type"], "text/plain");
}

TEST(http, expect_100_continue) {
  server s;
  client c(s.port);
  ASSERT_TRUE(c.send("POST " + k_echo + " HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  auto cont = c.read_response(2000);
  ASSERT_TRUE(cont.complete);
  EXPECT_EQ(cont.status, 100);
  ASSERT_TRUE(c.send("ping"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ping");
}

TEST(http, body_over_limit_is_413_before_the_body_is_read) {
  server s({"XERV_MAX_BODY_BYTES=1KiB"});
  {
    client c(s.port);
    ASSERT_TRUE(c.send("POST " + k_echo + " HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 413);  // no 100 Continue: refused on the headers alone
    EXPECT_NE(r.body.find("\"error\":\"payload_too_large\""), std::string::npos) << r.body;
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_TRUE(c.closed_within(3000));
  }
  {
    client c(s.port);  // chunked: found out while reading
    ASSERT_TRUE(c.send("POST " + k_echo + " HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::string chunk(600, 'x');
    c.send("258\r\n" + chunk + "\r\n258\r\n" + chunk + "\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 413);
    EXPECT_TRUE(c.closed_within(3000));
  }
  {
    client c(s.port);  // at the limit is fine
    ASSERT_TRUE(c.send(post(k_echo, std::string(1024, 'y'))));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.size(), 1024u);
  }
}

TEST(http, headers_over_16k_are_431) {
  server s;
  client c(s.port);
  ASSERT_TRUE(c.send(get("/health", "X-Big: " + std::string(17 * 1024, 'a') + "\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 431);
  EXPECT_NE(r.body.find("\"error\":"), std::string::npos);
  EXPECT_TRUE(c.closed_within(3000));
}

TEST(http, malformed_request_is_400_and_closed) {
  server s;
  for (std::string bad : {std::string("GARBAGE\r\n\r\n"), std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
                          std::string("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")}) {
    client c(s.port);
    ASSERT_TRUE(c.send(bad));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("\"error\":\"invalid_request\""), std::string::npos) << r.body;
    EXPECT_TRUE(c.closed_within(3000)) << bad;
  }
  // The server is still fine.
  client ok(s.port);
  ok.send(get("/health"));
  EXPECT_EQ(ok.read_response().status, 200);
}

TEST(http, not_found_and_method_not_allowed_are_json) {
  server s;
  client c(s.port);
  c.send(get("/api/v1/nothing/here"));
  auto nf = c.read_response();
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.headers["content-type"], "application/json");
  EXPECT_EQ(nf.body, R"({"error":"not_found","message":"no route for /api/v1/nothing/here","details":{}})");
  c.send(post("/health", "x"));
  auto na = c.read_response();
  EXPECT_EQ(na.status, 405);
  EXPECT_EQ(na.headers["allow"], "GET");
  EXPECT_NE(na.body.find("\"error\":\"method_not_allowed\""), std::string::npos) << na.body;
  // HEAD is served by GET routes, without a body.
  c.send("HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n");
  std::this_thread::sleep_for(200ms);
  c.fill(500);
  EXPECT_EQ(c.buffer().rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << c.buffer();
  EXPECT_EQ(c.buffer().substr(c.buffer().size() - 4), "\r\n\r\n");  // head only
}

TEST(http, slowloris_is_dropped_and_does_not_block_others) {
  server s({"XERV_SHARDS=1", "XERV_HTTP_HEADER_TIMEOUT_MS=800"});
  client slow(s.port);
  ASSERT_TRUE(slow.send("GET /health HTTP/1.1\r\nHost: t\r\n"));
  auto start = std::chrono::steady_clock::now();
  bool others_ok = true;
  // Trickle a header byte every 100 ms while other clients are served promptly.
  for (int i = 0; i < 20 && !slow.closed_within(0); ++i) {
    slow.send("X");
    client fast(s.port);
    fast.send(get("/health"));
    auto r = fast.read_response(1000);
    others_ok &= r.status == 200;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(others_ok);
  EXPECT_TRUE(slow.closed_within(3000));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 2500ms);  // dropped at the header deadline, not at the idle timeout
  EXPECT_NE(slow.buffer().find("408 Request Timeout"), std::string::npos) << slow.buffer();
}

TEST(http, idle_keep_alive_connection_is_closed) {
  server s({"XERV_HTTP_IDLE_TIMEOUT_MS=300"});
  client c(s.port);
  c.send(get("/health"));
  EXPECT_EQ(c.read_response().status, 200);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_within(3000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
}

TEST(http, connection_cap_per_shard) {
  server s({"XERV_SHARDS=1", "XERV_MAX_CONNECTIONS=4"});
  std::vector<std::unique_ptr<client>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<client>(s.port));
    held.back()->send(get("/health"));
    ASSERT_EQ(held.back()->read_response().status, 200);  // accepted and being served
  }
  client extra(s.port);
  auto r = extra.read_response();
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("\"error\":\"unavailable\""), std::string::npos) << r.body;
  EXPECT_TRUE(extra.closed_within(3000));
  // Room again once one leaves.
  held.pop_back();
  std::this_thread::sleep_for(200ms);
  client again(s.port);
  again.send(get("/health"));
  EXPECT_EQ(again.read_response().status, 200);
}

TEST(http, metrics_scrape_passes_promtool) {
  server s;
  client c(s.port);
  c.send(get("/health"));
  c.read_response();
  c.send(get("/missing"));
  c.read_response();
  c.send(get("/metrics"));
  auto m = c.read_response();
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.headers["content-type"].find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(m.body.find(R"(xerv_http_requests_total{method="GET",route="/health",code="200"} 1)"), std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find(R"(xerv_http_requests_total{method="GET",route="unmatched",code="404"} 1)"), std::string::npos);
  EXPECT_NE(m.body.find("xerv_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 1"), std::string::npos);
  char path[] = "/tmp/xerv-metrics-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, m.body.data(), m.body.size()), ssize_t(m.body.size()));
  close(fd);
  std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char out[4096] = {};
  size_t n = fread(out, 1, sizeof out - 1, p);
  int rc = pclose(p);
  unlink(path);
  EXPECT_EQ(rc, 0) << "promtool: " << std::string(out, n) << "\n" << m.body;
}

TEST(http, metrics_port_serves_metrics_separately) {
  uint16_t mport = free_port();
  ASSERT_NE(mport, 0);
  server s({"XERV_METRICS_PORT=" + std::to_string(mport)});
  client c(mport);
  c.send(get("/metrics"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("# TYPE xerv_http_requests_total counter"), std::string::npos);
  c.send(post(k_echo, "x"));
  EXPECT_EQ(c.read_response().status, 404);  // only metrics and health there
}

TEST(http, server_sent_events_stream_in_chunks_and_keep_the_connection) {
  server s;
  client c(s.port);
  c.send(get("/api/v1/debug/ticks?n=4"));
  auto r = c.read_response(5000);
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(r.body, "id: 0\ndata: {\"tick\":0}\n\nid: 1\ndata: {\"tick\":1}\n\nid: 2\ndata: {\"tick\":2}\n\n"
                    "id: 3\ndata: {\"tick\":3}\n\n");
  c.send(get("/health"));  // still usable after the terminating chunk
  EXPECT_EQ(c.read_response().status, 200);
}

TEST(http, large_bodies_round_trip) {
  server s({"XERV_MAX_BODY_BYTES=4MiB"});
  client c(s.port);
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 26);
  ASSERT_TRUE(c.send(post(k_echo, big)));
  auto r = c.read_response(10000);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), big.size());
  EXPECT_TRUE(r.body == big);
}

TEST(http, a_port_in_use_stops_start_up_with_exit_1) {
  server first;
  // SO_REUSEPORT would let a second process share the port silently.
  auto [code, out] = run_xerv_expect_exit({"XERV_API_PORT=" + std::to_string(first.port)});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("Address already in use"), std::string::npos) << out;
  client c(first.port);  // the first server is unaffected
  c.send(get("/health"));
  EXPECT_EQ(c.read_response().status, 200);
}

TEST(config, bad_values_stop_start_up_naming_the_setting) {
  auto [code, out] = run_xerv_expect_exit({"XERV_API_PORT=abc"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("XERV_API_PORT=abc"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;  // one line
  auto [c2, o2] = run_xerv_expect_exit({}, {"--log-format", "xml"});
  EXPECT_EQ(c2, 2);
  EXPECT_NE(o2.find("--log-format"), std::string::npos) << o2;
  auto [c3, o3] = run_xerv_expect_exit({"XERV_MAX_BODY_BYTES=lots"});
  EXPECT_EQ(c3, 2);
  EXPECT_NE(o3.find("XERV_MAX_BODY_BYTES"), std::string::npos) << o3;
  auto [c4, o4] = run_xerv_expect_exit({}, {"--no-such-flag"});
  EXPECT_EQ(c4, 2);
  EXPECT_NE(o4.find("--no-such-flag"), std::string::npos) << o4;
}

TEST(config, flags_beat_env_beat_file) {
  char path[] = "/tmp/xerv-config-XXXXXX";
  int fd = mkstemp(path);
  std::string yaml = "shards: 1\nmax_connections: 7\nlog_format: json\n";
  ASSERT_EQ(write(fd, yaml.data(), yaml.size()), ssize_t(yaml.size()));
  close(fd);
  // File says 1 shard, env says 2, the flag says 3: the flag wins. The file's
  // json log format applies because nothing overrides it.
  xerv_process x({"XERV_SHARDS=2"}, {"--config", path, "--shards", "3"});
  ASSERT_NE(x.wait_ready(), 0) << x.log();
  EXPECT_NE(x.log().find("serving on 3 shards"), std::string::npos) << x.log();
  EXPECT_EQ(x.log().rfind("{\"ts\":\"", 0), 0u) << x.log();
  x.signal(SIGTERM);
  EXPECT_EQ(x.wait_exit(10s), 0);
  // An unknown key names the file and line.
  std::string bad_yaml = "shards: 1\nbogus: 2\n";
  fd = open(path, O_WRONLY | O_TRUNC);
  ASSERT_EQ(write(fd, bad_yaml.data(), bad_yaml.size()), ssize_t(bad_yaml.size()));
  close(fd);
  auto [code, out] = run_xerv_expect_exit({}, {"--config", path});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find(std::string(path) + ":2: unknown setting 'bogus'"), std::string::npos) << out;
  unlink(path);
}

TEST(logging, json_format_and_rust_log_level) {
  xerv_process x({"XERV_SHARDS=1", "XERV_LOG_FORMAT=json", "RUST_LOG=xerv=debug"});
  ASSERT_NE(x.wait_ready(), 0) << x.log();
  x.signal(SIGTERM);
  EXPECT_EQ(x.wait_exit(10s), 0);
  std::string log = x.log();
  EXPECT_NE(log.find("\"level\":\"debug\""), std::string::npos) << log;  // the config line
  std::istringstream lines(log);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    EXPECT_EQ(line.rfind("{\"ts\":\"", 0), 0u) << line;
    EXPECT_EQ(line.back(), '}') << line;
  }
  EXPECT_GT(count, 3);
  // XERV_LOG=warn hides info lines.
  xerv_process quiet({"XERV_SHARDS=1", "XERV_LOG=warn"});
  std::this_thread::sleep_for(500ms);
  quiet.signal(SIGTERM);
  EXPECT_EQ(quiet.wait_exit(10s), 0);
  EXPECT_EQ(quiet.log().find("INFO"), std::string::npos) << quiet.log();
}

// SIGTERM under load: the process exits 0 within the deadline, and every response
// a client received is complete: nothing is cut mid-response.
TEST(shutdown, sigterm_during_load_finishes_in_flight_requests) {
  server s({"XERV_SHUTDOWN_TIMEOUT_MS=5000"});
  std::atomic<bool> stop{false};
  std::atomic<int> complete{0}, cut{0}, refused{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      std::string body(20000 + t, char('a' + t));
      while (!stop) {
        client c(s.port);
        if (!c.connected()) {
          ++refused;
          return;
        }
        for (int i = 0; i < 1000 && !stop; ++i) {
          if (!c.send(post(k_echo, body))) break;
          auto r = c.read_response(5000);
          if (!r.complete) {
            // Closed between responses is fine; bytes of a partial response are not.
            if (!c.buffer().empty()) ++cut;
            break;
          }
          if (r.status != 200 || r.body != body) ++cut;
          else ++complete;
          if (r.headers["connection"] == "close") break;
        }
      }
    });
  }
  std::this_thread::sleep_for(700ms);
  s.proc.signal(SIGTERM);
  auto code = s.proc.wait_exit(15s);
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(code, 0) << s.proc.log();
  EXPECT_EQ(cut.load(), 0);
  EXPECT_GT(complete.load(), 50);
  EXPECT_NE(s.proc.log().find("shard 0 stopped"), std::string::npos);
  EXPECT_NE(s.proc.log().find("shard 1 stopped"), std::string::npos);
}

}  // namespace
