#include "http/server.h"

#include <charconv>

#include "core/metrics.h"
#include "io/log.h"
#include "io/ops.h"

namespace xerv::http {
namespace {

using namespace std::chrono_literals;

core::counter g_requests{"xerv_http_requests_total", "HTTP requests served, by method, route and status code",
                         {"method", "route", "code"}};
core::histogram g_latency{"xerv_http_request_duration_seconds", "Time from a complete request to its response",
                          core::latency_buckets(), {"route"}};
core::gauge g_open{"xerv_http_connections", "Open HTTP connections"};
core::counter g_rejected{"xerv_http_connections_rejected_total", "Connections refused at the per-shard cap"};
core::counter g_dropped{"xerv_http_connections_dropped_total",
                        "Connections closed by the server: malformed requests, limits and timeouts", {"reason"}};

constexpr std::string_view k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr size_t k_linger_bytes_max = 1 << 20;
constexpr auto k_linger_time = 1s;

std::string_view method_label(std::string_view m) {
  // llhttp only produces its fixed set of method names, so the label set is bounded.
  return m.empty() ? std::string_view("UNKNOWN") : m;
}

std::string_view code_label(int status) {
  thread_local char buf[8];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, status);
  return {buf, size_t(end - buf)};
}

}  // namespace

// Per-connection state visible to stop(): whether the connection sits between
// requests, and the cancel source of the wait it is in (if any).
struct server::connection {
  connection* prev = nullptr;
  connection* next = nullptr;
  io::cancel_source* waiting = nullptr;
  bool idle = true;
};

server::server(const router& routes, server_options opts) : _routes(routes), _opts(std::move(opts)) {}

server::~server() { ASSERT(_connections.count() == 0 && _accepting.count() == 0, "server destroyed while running"); }

io::result<uint16_t> server::start() {
  auto addr = io::socket_address::parse(_opts.host, _opts.port);
  if (!addr) return addr.error();
  auto l = io::tcp_listener::listen(*addr);
  if (!l) return l.error();
  _listener = std::move(*l);
  if (auto r = io::spawn(_accepting, accept_loop()); !r) return r.error();
  return _listener->port();
}

io::task<void> server::accept_loop() {
  for (;;) {
    auto c = co_await _listener->accept();
    if (!c) {
      if (c.error() == io::errc::closed || _stopping) break;
      // Out of descriptors or memory: back off instead of spinning on the error.
      (void)co_await io::sleep_for(10ms);
      continue;
    }
    if (_open >= _opts.connections_max) {
      g_rejected.inc();
      if (!io::spawn(_connections, reject(std::move(*c)))) break;
      continue;
    }
    if (!io::spawn(_connections, serve(std::move(*c)))) break;
  }
}

namespace {

// Sends what is left, then reads and discards the peer's remaining bytes for a
// while before closing, so a client still sending its body reads our error
// instead of a reset.
io::task<void> linger_close(io::tcp_connection& conn) {
  if ((co_await conn.shutdown_write()).ok()) {
    io::cancel_source cs;
    io::deadline d(k_linger_time, cs);
    size_t discarded = 0;
    while (discarded < k_linger_bytes_max) {
      auto b = co_await conn.recv(&cs);
      if (!b || b->size() == 0) break;
      discarded += b->size();
    }
  }
  co_await conn.close();
}

io::task<io::result<void>> send_response(io::tcp_connection& conn, std::string& head, response& r, bool keep_alive,
                                          bool head_only, std::chrono::milliseconds timeout) {
  head.clear();
  append_head(head, r, keep_alive);
  io::cancel_source cs;
  io::deadline d(timeout, cs);
  iovec iov[2] = {{head.data(), head.size()}, {r.body.data(), head_only ? 0 : r.body.size()}};
  co_return co_await conn.writev_all(iov, &cs);
}

}  // namespace

io::task<void> server::reject(io::tcp_connection conn) {
  response r = json_error(503, "unavailable", "connection limit reached on this shard; retry later");
  std::string head;
  (void)co_await send_response(conn, head, r, false, false, _opts.idle_timeout);  // best effort
  co_await linger_close(conn);
}

io::task<void> server::serve(io::tcp_connection conn) {
  connection self;
  self.next = _live;
  if (_live) _live->prev = &self;
  _live = &self;
  ++_open;
  g_open.add(1);

  request_parser parser(_opts.limits);
  std::string pending, carry, head;
  uint64_t request_start_ns = 0;
  bool keep_going = true;
  const char* drop_reason = nullptr;

  while (keep_going) {
    // Wait for bytes, bounded by the header deadline inside a request's head and by
    // the idle timeout otherwise.
    io::recv_buffer buf;
    std::string_view data;
    if (!pending.empty()) {
      std::swap(pending, carry);
      pending.clear();
      data = carry;
    } else {
      self.idle = !parser.in_message();
      if (self.idle && _stopping) break;
      auto wait = _opts.idle_timeout;
      if (parser.in_message() && !parser.headers_complete()) {
        auto elapsed = std::chrono::nanoseconds(io::monotonic_ns() - request_start_ns);
        wait = std::chrono::duration_cast<std::chrono::milliseconds>(_opts.header_timeout - elapsed);
      }
      io::cancel_source cs;
      self.waiting = &cs;
      io::result<io::recv_buffer> got = io::errc::timed_out;
      {
        io::deadline d(wait, cs);
        got = co_await conn.recv(&cs);
      }
      self.waiting = nullptr;
      self.idle = false;
      if (!got) {
        if (got.error() == io::errc::timed_out && parser.in_message()) {
          drop_reason = "header_timeout";
          response r = json_error(408, "timeout", "request not received in time");
          (void)co_await send_response(conn, head, r, false, false, 1s);  // best effort
        } else if (got.error() == io::errc::timed_out) {
          drop_reason = "idle_timeout";
        }
        break;
      }
      if (got->size() == 0) break;  // the client closed
      buf = std::move(*got);
      data = buf.view();
    }

    while (!data.empty() && keep_going) {
      if (!parser.in_message()) request_start_ns = io::monotonic_ns();
      auto out = parser.feed(data.data(), data.size());
      data.remove_prefix(out.consumed);
      if (out.event == parse_event::need_more) break;
      if (out.event == parse_event::error) {
        drop_reason = parser.error_status() == 400 ? "malformed" : "limit";
        int status = parser.error_status();
        response r = status == 413 ? json_error(413, "payload_too_large",
                                                "request body exceeds " + std::to_string(_opts.limits.body_bytes_max) + " bytes")
                                   : json_error(status, "invalid_request", parser.error_reason());
        g_requests.inc({"UNKNOWN", "unmatched", code_label(r.status)});
        (void)co_await send_response(conn, head, r, false, false, _opts.idle_timeout);
        keep_going = false;
        break;
      }
      if (out.event == parse_event::headers_done) {
        if (!(co_await conn.send_all(k_continue)).ok()) keep_going = false;
        continue;
      }

      // A whole request. Keep unparsed (pipelined) bytes, and free the receive
      // buffer before the handler runs.
      pending.assign(data);
      data = {};
      buf = io::recv_buffer{};
      request& req = parser.current();
      uint64_t t0 = io::monotonic_ns();
      response resp;
      auto m = _routes.find(req);
      std::optional<io::task<response>> fallback;
      if (!m.target && m.status == 404 && _routes.fallback()) fallback = _routes.fallback()(req);
      if (fallback) {
        try {
          resp = co_await std::move(*fallback);
        } catch (const std::exception& e) {
          XLOG(error, "handler for %.*s %.*s failed: %s", int(req.method().size()), req.method().data(),
               int(req.path().size()), req.path().data(), e.what());
          resp = json_error(500, "internal", "internal error");
        }
      } else if (!m.target) {
        if (m.status == 405) {
          resp = json_error(405, "method_not_allowed",
                            std::string("method ") + std::string(req.method()) + " not allowed; allowed: " + m.allow);
          resp.headers.emplace_back("Allow", m.allow);
        } else {
          resp = json_error(404, "not_found", "no route for " + std::string(req.path()));
        }
      } else {
        try {
          resp = co_await (*m.target)(req);
        } catch (const std::exception& e) {
          XLOG(error, "handler for %.*s %.*s failed: %s", int(req.method().size()), req.method().data(),
               int(req.route.size()), req.route.data(), e.what());
          resp = json_error(500, "internal", "internal error");
        }
      }
      bool keep_alive = req.keep_alive() && !_stopping;
      bool head_only = req.method() == "HEAD";
      io::result<void> sent;
      if (resp.streamer && !head_only) {
        resp.body.clear();
        sent = co_await send_response(conn, head, resp, keep_alive, false, _opts.idle_timeout);
        if (sent) {
          stream s(conn);
          sent = co_await resp.streamer(s);
        }
      } else {
        sent = co_await send_response(conn, head, resp, keep_alive, head_only, _opts.idle_timeout);
      }
      std::string_view route = req.route.empty() ? std::string_view("unmatched") : req.route;
      g_requests.inc({method_label(req.method()), route, code_label(resp.status)});
      g_latency.observe(double(io::monotonic_ns() - t0) / 1e9, {route});
      if (!sent || !keep_alive) keep_going = false;
      parser.next();
      if (keep_going && !pending.empty()) break;  // parse the pipelined rest from `pending`
    }
  }

  if (drop_reason) g_dropped.inc({drop_reason});
  if (drop_reason && std::string_view(drop_reason) != "idle_timeout") co_await linger_close(conn);
  else co_await conn.close();
  if (self.prev) self.prev->next = self.next;
  else _live = self.next;
  if (self.next) self.next->prev = self.prev;
  --_open;
  g_open.add(-1);
}

io::task<void> server::stop(std::chrono::milliseconds grace) {
  _stopping = true;
  if (_listener) co_await _listener->close();
  co_await _accepting.close();
  // Connections between requests leave now; the others finish their request first.
  for (connection* c = _live; c; c = c->next)
    if (c->idle && c->waiting) c->waiting->cancel();
  uint64_t give_up_ns = io::monotonic_ns() + uint64_t(std::chrono::nanoseconds(grace).count());
  while (_connections.count() > 0 && io::monotonic_ns() < give_up_ns) (void)co_await io::sleep_for(10ms);
  if (_connections.count() > 0) {
    XLOG(warn, "%zu HTTP connections still busy after %lld ms; cancelling their I/O", _open,
         static_cast<long long>(grace.count()));
    for (connection* c = _live; c; c = c->next)
      if (c->waiting) c->waiting->cancel();
  }
  co_await _connections.close();
}

}  // namespace xerv::http
