// libFuzzer target: the HTTP request parser and router, driven the way the
// server's connection loop drives them.
//
// Input layout: byte 0 is a control byte, then come the piece-size bytes, then
// the bytes of the connection.
//   bits 0-2 of byte 0: k, how many piece-size bytes follow (0: one single piece);
//   bits 3-4 of byte 0: the limits (0 and 3: xerv's defaults; 1: small; 2: tiny),
//                       so 413 and 431 are reachable with short inputs.
// The connection's bytes are delivered in pieces of size[i % k] + 1 bytes, each
// piece in its own heap buffer so that ASan sees any read beyond it.
//
// Invariants (a broken one traps): consumed <= len; need_more consumes everything;
// error consumes nothing, stays sticky and is 400, 413 or 431; no two events in a
// row without progress; headers_done only for `Expect: 100-continue`; a completed
// request respects the limits; the router's verdict is consistent; and splitting
// the bytes differently never changes the requests parsed nor whether the
// connection ends in an error.

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/parser.h"
#include "http/router.h"
#include "io/strings.h"
#include "tests/fuzz/check.h"

namespace xerv::io::detail {
// The fuzz target links only the parser and router, not io (router.cc asserts).
void assert_fail(const char* cond, const char* file, int line, const char* fmt, ...) {
  fprintf(stderr, "ASSERTION FAILED: %s at %s:%d:", cond, file, line);
  va_list args;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
  abort();
}
}  // namespace xerv::io::detail

namespace {

using namespace xerv;
using http::parse_event;

// Routes like xerv's, with parameters, several methods on one path and a literal
// that overlaps a parameter route. Handlers are never run.
const http::router& routes() {
  static const http::router r = [] {
    http::router b;
    b.add("GET", "/health", {});
    b.add("GET", "/api/v1/metrics", {});
    b.add("GET", "/api/v1/flows", {});
    b.add("POST", "/api/v1/flows", {});
    b.add("GET", "/api/v1/flows/latest", {});
    b.add("GET", "/api/v1/flows/{id}", {});
    b.add("DELETE", "/api/v1/flows/{id}", {});
    b.add("GET", "/api/v1/flows/{id}/runs/{run}", {});
    b.add("POST", "/api/v1/debug/echo", {});
    b.add("GET", "/", {});
    return b;
  }();
  return r;
}

http::parser_limits limits_for(uint8_t mode) {
  http::parser_limits l;
  if (mode == 1) {
    l.header_bytes_max = 256;
    l.headers_count_max = 8;
    l.body_bytes_max = 64;
  } else if (mode == 2) {
    l.header_bytes_max = 32;
    l.headers_count_max = 2;
    l.body_bytes_max = 4;
  }
  return l;
}

// What one completed request looked like, to compare two parses of the same bytes.
struct record {
  std::string method, target, body, route;
  std::vector<std::string> headers;  // name '\0' value
  std::vector<std::string> params;   // name '\0' value
  bool keep_alive = false;
  int route_status = 0;
  std::string allow;
  bool operator==(const record&) const = default;
};

struct run_result {
  std::vector<record> requests;
  bool ended_in_error = false;
};

record handle(http::request& req, const http::parser_limits& limits) {
  record rec;
  rec.method = std::string(req.method());
  rec.target = std::string(req.target());
  rec.body = req.body();
  rec.keep_alive = req.keep_alive();
  CHECK(!rec.method.empty());
  CHECK(req.body().size() <= limits.body_bytes_max);
  CHECK(req.header_count() <= limits.headers_count_max);
  CHECK(req.path().size() <= req.target().size());
  CHECK(req.query().size() <= req.target().size());
  for (size_t i = 0; i < req.header_count(); ++i) {
    auto [name, value] = req.header_at(i);
    CHECK(!name.empty());  // empty names are refused (empty_header_name_is_400)
    // Lookup finds the first header of that name, whatever its case.
    size_t first = 0;
    while (!io::iequals(req.header_at(first).first, name)) ++first;
    CHECK(first <= i);
    CHECK(req.header(name) == req.header_at(first).second);
    rec.headers.push_back(std::string(name) + '\0' + std::string(value));
  }

  // Route it like the server does.
  http::router::match m = routes().find(req);
  rec.route_status = m.status;
  rec.allow = m.allow;
  if (m.target) {
    CHECK(m.status == 0);
    CHECK(!req.route.empty());  // (allow may list methods of routes tried before)
    for (const auto& [k, v] : req.params) {
      CHECK(!k.empty());
      CHECK(!v.empty());
      CHECK(req.param(k) == v);  // patterns use each name once
      // Each value is a segment of the request's path.
      CHECK(req.path().find(v) != std::string_view::npos);
      rec.params.push_back(std::string(k) + '\0' + std::string(v));
    }
  } else {
    CHECK(m.status == 404 || m.status == 405);
    CHECK((m.status == 405) == !m.allow.empty());
    CHECK(req.route.empty());
    CHECK(req.params.empty());
  }
  rec.route = std::string(req.route);
  return rec;
}

// Feeds `conn` in pieces (sizes cycle through `sizes`, plus one; all of it at once
// when `sizes` is empty) and handles every event like the server.
run_result run(const http::parser_limits& limits, std::string_view conn, std::string_view sizes) {
  http::request_parser p(limits);
  run_result out;
  size_t pos = 0, piece_index = 0;
  int idle_events = 0;  // events in a row that consumed nothing
  while (pos < conn.size()) {
    size_t piece = sizes.empty() ? conn.size() : size_t(uint8_t(sizes[piece_index++ % sizes.size()])) + 1;
    if (piece > conn.size() - pos) piece = conn.size() - pos;
    std::vector<char> buf(conn.data() + pos, conn.data() + pos + piece);
    pos += piece;
    const char* data = buf.data();
    size_t len = buf.size();
    while (len > 0) {
      auto r = p.feed(data, len);
      CHECK(r.consumed <= len);
      if (r.event == parse_event::error) {
        CHECK(r.consumed == 0);
        int s = p.error_status();
        CHECK(s == 400 || s == 413 || s == 431);
        CHECK(p.error_reason() != nullptr && p.error_reason()[0] != '\0');
        // The error is sticky.
        auto again = p.feed(data, len);
        CHECK(again.event == parse_event::error && again.consumed == 0 && p.error_status() == s);
        out.ended_in_error = true;
        return out;
      }
      if (r.event == parse_event::need_more) {
        CHECK(r.consumed == len);
        break;
      }
      idle_events = r.consumed == 0 ? idle_events + 1 : 0;
      CHECK(idle_events < 2);
      data += r.consumed;
      len -= r.consumed;
      if (r.event == parse_event::headers_done) {
        // The server answers 100 Continue and carries on with the rest.
        CHECK(p.expects_continue());
        CHECK(p.headers_complete());
        CHECK(p.in_message());
        CHECK(p.current().body().empty());
        continue;
      }
      CHECK(r.event == parse_event::message_done);
      CHECK(!p.in_message());
      CHECK(p.headers_complete());
      out.requests.push_back(handle(p.current(), limits));
      bool keep_alive = p.current().keep_alive();
      p.next();
      CHECK(p.current().header_count() == 0 && p.current().params.empty());
      if (!keep_alive) return out;  // the server closes after the response
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t control = data[0];
  size_t k = control & 7;
  if (size < 1 + k) return 0;
  http::parser_limits limits = limits_for((control >> 3) & 3);
  std::string_view sizes(reinterpret_cast<const char*>(data + 1), k);
  std::string_view conn(reinterpret_cast<const char*>(data + 1 + k), size - 1 - k);

  run_result pieces = run(limits, conn, sizes);
  if (k == 0) return 0;
  run_result whole = run(limits, conn, {});
  // Where the bytes are split must not matter. (Only the error status may differ:
  // a piece can deliver part of an over-long token, 431, before llhttp rejects a
  // later byte of it, 400.)
  CHECK(pieces.requests == whole.requests);
  CHECK(pieces.ended_in_error == whole.ended_in_error);
  return 0;
}
