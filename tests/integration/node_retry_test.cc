// Retries of a std::http node through the executor, against a scripted loopback
// server on a free port in the same runtime: how many requests arrive, the gaps
// between them (backoff_ms), and the trace's outcome and error code.

#include <gtest/gtest.h>

#include "flows/executor.h"
#include "flows/flow.h"
#include "io/gate.h"
#include "io/net.h"
#include "io/reactor.h"
#include "io/when_all.h"
#include "tests/run_on.h"

using namespace xerv;

namespace {

// What the server does with the n-th connection, after reading its request.
enum class reply { close, hang, answer };

struct scripted_server {
  std::unique_ptr<io::tcp_listener> listener;
  std::vector<reply> script;           // by connection; the last entry repeats
  std::string answer;                  // the whole response for reply::answer
  std::vector<uint64_t> requests_ns;   // when each complete request arrived
  io::cancel_source stop;              // ends accepting and hanging connections
  io::gate connections;
};

bool request_complete(const std::string& r) { return r.find("\r\n\r\n") != std::string::npos; }

io::task<void> handle(scripted_server* s, io::tcp_connection c, reply what) {
  std::string request;
  while (!request_complete(request)) {
    auto b = co_await c.recv(&s->stop);
    if (!b || b->size() == 0) break;
    request.append(b->view());
  }
  if (request_complete(request)) s->requests_ns.push_back(io::monotonic_ns());
  if (what == reply::answer) {
    auto sent = co_await c.send_all(s->answer, &s->stop);
    (void)sent;  // the client may have given up
  } else if (what == reply::hang) {
    // Never answer: wait until the client gives up and closes, or the test ends.
    for (;;) {
      auto b = co_await c.recv(&s->stop);
      if (!b || b->size() == 0) break;
    }
  }
  co_await c.close();  // reply::close: end the connection without a response
}

io::task<void> serve(scripted_server* s) {
  for (size_t n = 0;; ++n) {
    auto c = co_await s->listener->accept(&s->stop);
    if (!c) break;
    reply what = s->script[std::min(n, s->script.size() - 1)];
    auto spawned = io::spawn(s->connections, handle(s, std::move(*c), what));
    (void)spawned;  // the gate closes only below
  }
  co_await s->connections.close();
  co_await s->listener->close();
}

io::task<void> run_trace(const flows::compiled_flow* flow, scripted_server* s, flows::trace_outcome* out) {
  *out = co_await flows::execute_trace(*flow, core::value(), "trace-1", flow->triggers[0].vertex, nullptr);
  s->stop.cancel();
}

struct retry_case {
  std::string node;  // the http node's definition; {port} is the server's port
  std::vector<reply> script;
  // Results.
  flows::trace_outcome outcome;
  std::vector<uint64_t> gaps_ms;  // between consecutive requests
  size_t requests = 0;
};

io::task<int> run_retry_case(retry_case* rc) {
  auto l = io::tcp_listener::listen(*io::socket_address::parse("127.0.0.1", 0));
  if (!l) co_return 1;
  scripted_server srv;
  srv.listener = std::move(*l);
  srv.script = rc->script;
  std::string body = R"({"answered":true})";
  srv.answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n\r\n" + body;
  std::string node = rc->node;
  node.replace(node.find("{port}"), 6, std::to_string(srv.listener->port()));
  std::string yaml = "name: retrying\ntriggers: [{id: t, type: manual}]\nnodes:\n  call: " + node +
                     "\nedges:\n  - {from: t, to: call}\n";
  auto compiled = flows::compile_flow(yaml);
  if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&compiled)) {
    ADD_FAILURE() << flows::format_errors(*errs, "flow.yaml");
    co_await srv.listener->close();
    co_return 2;
  }
  auto flow = std::move(std::get<std::unique_ptr<flows::compiled_flow>>(compiled));
  auto both = io::when_all(serve(&srv), run_trace(flow.get(), &srv, &rc->outcome));
  co_await std::move(both);
  rc->requests = srv.requests_ns.size();
  for (size_t i = 1; i < srv.requests_ns.size(); ++i)
    rc->gaps_ms.push_back((srv.requests_ns[i] - srv.requests_ns[i - 1]) / 1'000'000);
  co_return 0;
}

void run_case(retry_case& rc) { EXPECT_EQ(xerv::testing::run_on(1, run_retry_case(&rc)), 0); }

std::string output_body(const flows::trace_outcome& o) {
  auto b = o.output.ref().find("body");
  return b ? core::to_json(*b) : "<no body>";
}

const char* k_retrying = "{type: std::http, config: {url: 'http://127.0.0.1:{port}/x'}, "
                         "retry: {max_attempts: 3, backoff_ms: 100}}";

TEST(http_retry, fails_twice_then_succeeds_after_backoffs) {
  retry_case rc;
  rc.node = k_retrying;
  rc.script = {reply::close, reply::close, reply::answer};
  run_case(rc);
  EXPECT_EQ(rc.outcome.status, flows::trace_status::completed) << rc.outcome.error_message;
  EXPECT_EQ(rc.requests, 3u);
  ASSERT_EQ(rc.gaps_ms.size(), 2u);
  EXPECT_GE(rc.gaps_ms[0], 100u);
  EXPECT_GE(rc.gaps_ms[1], 100u);
  EXPECT_EQ(output_body(rc.outcome), R"({"answered":true})");
}

TEST(http_retry, always_failing_uses_every_attempt_then_fails_with_http_error) {
  retry_case rc;
  rc.node = k_retrying;
  rc.script = {reply::close};
  run_case(rc);
  EXPECT_EQ(rc.outcome.status, flows::trace_status::failed);
  EXPECT_EQ(rc.outcome.error_code, "http_error");
  EXPECT_EQ(rc.outcome.error_node, "call");
  EXPECT_NE(rc.outcome.error_message.find("the connection closed before the response was complete"), std::string::npos)
      << rc.outcome.error_message;
  EXPECT_EQ(rc.requests, 3u);
  for (uint64_t gap : rc.gaps_ms) EXPECT_GE(gap, 100u);
}

TEST(http_retry, an_attempt_past_the_node_timeout_is_retried) {
  // The node timeout (200 ms) is shorter than the request's (10 s): it cuts each
  // hanging attempt, and the next attempt gets a fresh one.
  retry_case rc;
  rc.node = "{type: std::http, config: {url: 'http://127.0.0.1:{port}/x'}, timeout_ms: 200, "
            "retry: {max_attempts: 3, backoff_ms: 50}}";
  rc.script = {reply::hang, reply::hang, reply::answer};
  run_case(rc);
  EXPECT_EQ(rc.outcome.status, flows::trace_status::completed) << rc.outcome.error_message;
  EXPECT_EQ(rc.requests, 3u);
  // Timeout + backoff (250 ms) between attempts; the fake server stamps each
  // request when it arrives, a few ms after its attempt began (connect, send).
  for (uint64_t gap : rc.gaps_ms) EXPECT_GE(gap, 240u);
  EXPECT_EQ(output_body(rc.outcome), R"({"answered":true})");
}

TEST(http_retry, always_hanging_fails_with_node_timeout) {
  retry_case rc;
  rc.node = "{type: std::http, config: {url: 'http://127.0.0.1:{port}/x'}, timeout_ms: 100, "
            "retry: {max_attempts: 2, backoff_ms: 10}}";
  rc.script = {reply::hang};
  run_case(rc);
  EXPECT_EQ(rc.outcome.status, flows::trace_status::failed);
  EXPECT_EQ(rc.outcome.error_code, "node_timeout");
  EXPECT_EQ(rc.outcome.error_message, "node timed out after 100 ms");
  EXPECT_EQ(rc.requests, 2u);
}

TEST(http_retry, the_request_timeout_bounds_an_attempt_when_it_is_the_smaller) {
  retry_case rc;
  rc.node = "{type: std::http, config: {url: 'http://127.0.0.1:{port}/x', timeout_ms: 100}, timeout_ms: 10000, "
            "retry: {max_attempts: 2}}";
  rc.script = {reply::hang};
  run_case(rc);
  EXPECT_EQ(rc.outcome.status, flows::trace_status::failed);
  EXPECT_EQ(rc.outcome.error_code, "node_timeout");
  EXPECT_NE(rc.outcome.error_message.find(": timed out after 100 ms"), std::string::npos) << rc.outcome.error_message;
  EXPECT_EQ(rc.requests, 2u);
}

}  // namespace
