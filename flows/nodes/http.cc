// std::http: one outbound HTTP/1.1 request per run over the shard's ring, emitting
// {status, headers, body} on `out`.
//
//   method: GET (default) | POST | PUT | PATCH | DELETE | HEAD | OPTIONS
//   url: "http://127.0.0.1:8080/orders/${input.id}"    a template
//   headers: {Authorization: "Bearer ${pipeline.config.token}"}   templates
//   body: "${input}"      a template; exactly one selector sends the value as JSON
//   timeout_ms: 10000     connect + send + whole response
//
// Only http:// with a numeric IPv4/IPv6 host or `localhost` (127.0.0.1): a shard
// never blocks in DNS. The node sends Host (unless configured), User-Agent (unless
// configured), Content-Length when there is a body or the method is POST, PUT or
// PATCH, Content-Type: application/json for a single-selector body (unless
// configured) and Connection: close; Content-Length, Transfer-Encoding and
// Connection cannot be configured. The response is read with llhttp (any status is
// a success; 1xx interim responses are skipped): headers become an object keyed by
// lower-case name (repeated headers joined with ", "), the body is parsed JSON when
// Content-Type mentions json and it parses, else a string. Limits: 10 MiB of body,
// 64 KiB and 100 lines of headers. Connection errors, malformed and oversized
// responses fail the node with code http_error, the request's timeout with
// node_timeout, a rendered url or header that is not usable with invalid_input;
// messages name the request.

#include <llhttp.h>

#include <chrono>

#include "flows/nodes/all.h"
#include "io/net.h"
#include "io/ops.h"
#include "io/strings.h"

namespace xerv::flows::nodes {
namespace {

constexpr size_t k_body_bytes_max = 10u << 20;
constexpr size_t k_header_bytes_max = 64u << 10;
constexpr size_t k_header_count_max = 100;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

struct parsed_url {
  io::socket_address addr;
  std::string authority;  // for Host
  std::string target;     // origin-form: /path?query
};

// "http://host[:port][/path][?query][#fragment]" with a numeric or localhost host.
std::optional<parsed_url> parse_url(std::string_view url, std::string& error) {
  if (url.size() >= 8 && io::iequals(url.substr(0, 8), "https://")) {
    error = "https not supported yet";
    return std::nullopt;
  }
  if (url.size() < 7 || !io::iequals(url.substr(0, 7), "http://")) {
    error = "the url must start with http:// (got '" + std::string(url.substr(0, 40)) + "')";
    return std::nullopt;
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      error = "the url contains a space or control character";
      return std::nullopt;
    }
  }
  std::string_view rest = url.substr(7);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    error = "credentials in the url are not supported (use an Authorization header)";
    return std::nullopt;
  }
  std::string_view host = authority, port_text;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "the url has an unterminated [IPv6] host";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') {
      error = "unexpected text after the [IPv6] host";
      return std::nullopt;
    }
    if (!after.empty()) port_text = after.substr(1);
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port_text = authority.substr(colon + 1);
  }
  uint32_t port = 80;
  if (!port_text.empty() || authority.ends_with(":")) {
    port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) {
        port = 0;
        break;
      }
      port = port * 10 + uint32_t(c - '0');
    }
    if (port == 0 || port > 65535) {
      error = "the url's port must be a number between 1 and 65535";
      return std::nullopt;
    }
  }
  std::string_view ip = io::iequals(host, "localhost") ? std::string_view("127.0.0.1") : host;
  auto addr = ip.empty() || ip == "*" ? io::result<io::socket_address>(io::errc::not_supported)
                                      : io::socket_address::parse(ip, uint16_t(port));
  if (!addr) {
    error = "the url's host '" + std::string(host) +
            "' must be a numeric IPv4 or IPv6 address or localhost (no DNS lookups on a shard)";
    return std::nullopt;
  }
  parsed_url out;
  out.addr = *addr;
  out.authority = std::string(authority);
  tail = tail.substr(0, tail.find('#'));
  out.target = tail.empty() || tail[0] != '/' ? "/" + std::string(tail) : std::string(tail);
  return out;
}

// Reads one response with llhttp; bytes after it are ignored.
class response_reader {
 public:
  response_reader() {
    static const llhttp_settings_t callbacks = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = &on_message_begin;
      s.on_header_field = &on_header_field;
      s.on_header_value = &on_header_value;
      s.on_header_value_complete = &on_header_value_complete;
      s.on_headers_complete = &on_headers_complete;
      s.on_body = &on_body;
      s.on_message_complete = &on_message_complete;
      return s;
    }();
    llhttp_init(&_parser, HTTP_RESPONSE, &callbacks);
    _parser.data = this;
  }
  response_reader(const response_reader&) = delete;
  response_reader& operator=(const response_reader&) = delete;

  bool skip_body = false;  // a response to HEAD
  bool complete() const { return _complete; }
  const std::string& error() const { return _error; }

  // False on a malformed or oversized response (see error()).
  bool feed(std::string_view data) {
    llhttp_errno_t e = llhttp_execute(&_parser, data.data(), data.size());
    return check(e);
  }
  // At end of stream: completes a response delimited by the connection close.
  bool finish() {
    if (_complete) return true;
    llhttp_errno_t e = llhttp_finish(&_parser);
    if ((e == HPE_OK || e == HPE_PAUSED) && _complete) return true;
    if (_error.empty()) _error = "the connection closed before the response was complete";
    return false;
  }

  core::value to_value() const {
    core::value_builder b;
    b.begin_object();
    b.key("status");
    b.add_int(_status);
    b.key("headers");
    b.begin_object();
    std::string_view content_type;
    for (const auto& [name, value] : _headers) {
      b.key(name);
      b.add_string(value);
      if (name == "content-type") content_type = value;
    }
    b.end();
    b.key("body");
    bool added = false;
    if (lower(content_type).find("json") != std::string::npos) {
      auto parsed = core::parse_json(_body);
      if (auto* v = std::get_if<core::value>(&parsed)) {
        b.add(v->ref());
        added = true;
      }
    }
    if (!added) b.add_string(_body);
    b.end();
    return b.finish();
  }

 private:
  static response_reader& self(llhttp_t* p) { return *static_cast<response_reader*>(p->data); }

  bool check(llhttp_errno_t e) {
    if (e == HPE_OK || (e == HPE_PAUSED && _complete)) return true;
    if (_error.empty()) _error = std::string("malformed response: ") + llhttp_errno_name(e) + " " +
                                 (llhttp_get_error_reason(&_parser) ? llhttp_get_error_reason(&_parser) : "");
    return false;
  }
  int limit(const char* what) {
    _error = what;
    return -1;
  }

  static int on_message_begin(llhttp_t* p) {
    response_reader& r = self(p);
    r._headers.clear();
    r._body.clear();
    r._header_bytes = 0;
    return 0;
  }
  static int on_header_field(llhttp_t* p, const char* at, size_t len) {
    response_reader& r = self(p);
    if ((r._header_bytes += len) > k_header_bytes_max) return r.limit("response headers over 64 KiB");
    r._field.append(at, len);
    return 0;
  }
  static int on_header_value(llhttp_t* p, const char* at, size_t len) {
    response_reader& r = self(p);
    if ((r._header_bytes += len) > k_header_bytes_max) return r.limit("response headers over 64 KiB");
    r._value.append(at, len);
    return 0;
  }
  static int on_header_value_complete(llhttp_t* p) {
    response_reader& r = self(p);
    std::string name = lower(r._field);
    r._field.clear();
    for (auto& [n, v] : r._headers) {
      if (n != name) continue;
      v += ", ";
      v += r._value;
      r._value.clear();
      return 0;
    }
    if (r._headers.size() == k_header_count_max) return r.limit("more than 100 response headers");
    r._headers.emplace_back(std::move(name), std::move(r._value));
    r._value.clear();
    return 0;
  }
  static int on_headers_complete(llhttp_t* p) {
    response_reader& r = self(p);
    r._status = p->status_code;
    return r.skip_body ? 1 : 0;
  }
  static int on_body(llhttp_t* p, const char* at, size_t len) {
    response_reader& r = self(p);
    if (r._body.size() + len > k_body_bytes_max) return r.limit("response body over 10 MiB");
    r._body.append(at, len);
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    response_reader& r = self(p);
    if (r._status >= 100 && r._status < 200 && r._status != 101) return 0;  // interim: the real one follows
    r._complete = true;
    return HPE_PAUSED;
  }

  llhttp_t _parser{};
  int _status = 0;
  std::vector<std::pair<std::string, std::string>> _headers;
  std::string _field, _value, _body;
  size_t _header_bytes = 0;
  bool _complete = false;
  std::string _error;
};

// Forwards the node's cancellation (node timeout, trace end) to the request's own
// cancel_source, which also carries the request deadline.
struct cancel_link : io::cancel_source::hook {
  cancel_link(io::cancel_source* parent, io::cancel_source& target) : _parent(parent), _target(target) {
    if (!parent) return;
    if (parent->cancelled()) {
      fired = true;
      target.cancel(parent->reason());
      return;
    }
    fire = &on_fire;
    parent->attach(this);
  }
  ~cancel_link() { io::cancel_source::detach(this); }
  cancel_link(const cancel_link&) = delete;
  cancel_link& operator=(const cancel_link&) = delete;

  bool fired = false;

 private:
  static void on_fire(io::cancel_source::hook* h) {
    auto* self = static_cast<cancel_link*>(h);
    self->fired = true;
    self->_target.cancel(self->_parent->reason());
  }
  io::cancel_source* _parent;
  io::cancel_source& _target;
};

struct header_def {
  std::string name;
  template_string value;
};

struct request {
  parsed_url url;
  std::string bytes;  // the whole request
  std::string what;   // "GET http://..." for messages
};

struct http_impl : node_impl {
  std::string method = "GET";
  template_string url;
  std::vector<header_def> headers;
  std::optional<template_string> body;
  uint64_t timeout_ms = 10'000;

  bool is_async() const override { return true; }

  bool has_header(std::string_view name) const {
    for (const header_def& h : headers)
      if (io::iequals(h.name, name)) return true;
    return false;
  }

  // Renders the templates and writes the request; false with `error` set on a
  // bad url or header value.
  bool build(const selector_source& src, request& req, std::string& error) const {
    std::string text;
    url.render_text(text, src);
    req.what = method + " " + text;
    auto u = parse_url(text, error);
    if (!u) return false;
    req.url = std::move(*u);
    std::string payload;
    if (body && body->is_single_selector()) {
      core::value v = body->render(src);
      core::write_json(payload, v.ref());
    } else if (body) {
      body->render_text(payload, src);
    }
    std::string& out = req.bytes;
    out = method + " " + req.url.target + " HTTP/1.1\r\n";
    if (!has_header("host")) out += "Host: " + req.url.authority + "\r\n";
    if (!has_header("user-agent")) out += "User-Agent: xerv\r\n";
    for (const header_def& h : headers) {
      std::string value;
      h.value.render_text(value, src);
      if (value.find_first_of("\r\n") != std::string::npos || value.find('\0') != std::string::npos) {
        error = "header " + h.name + ": the rendered value contains a line break or NUL";
        return false;
      }
      out += h.name + ": " + value + "\r\n";
    }
    if (body && body->is_single_selector() && !has_header("content-type")) out += "Content-Type: application/json\r\n";
    if (body || method == "POST" || method == "PUT" || method == "PATCH")
      out += "Content-Length: " + std::to_string(payload.size()) + "\r\n";
    out += "Connection: close\r\n\r\n";
    out += payload;
    return true;
  }

  // The node's own cancellation (its node timeout, which the executor reports,
  // or the trace's end) is node_failed; the request's timeout is node_timeout;
  // everything else is http_error.
  node_result failure(const request& req, const char* step, std::error_code ec, const io::cancel_source& cs,
                      const cancel_link& link) const {
    std::string head = "http: " + req.what + ": ";
    if (link.fired) return fail(head + "cancelled (" + ec.message() + ")");
    if (cs.cancelled() && cs.reason() == io::errc::timed_out)
      return fail(head + "timed out after " + std::to_string(timeout_ms) + " ms", error_codes::node_timeout);
    return fail(head + step + " " + req.url.addr.to_string() + " failed: " + ec.message(), error_codes::http_error);
  }

  // Everything the request touches lives in this frame: the request, its cancel
  // source (the deadline and the node's cancellation both fire it) and the reader.
  io::task<node_result> run_async(core::value input, node_env& env) const override {
    (void)input;  // the request is built from selectors only
    request req;
    std::string error;
    if (!build(env.selectors(), req, error)) co_return fail("http: " + req.what + ": " + error, error_codes::invalid_input);
    io::cancel_source cs;
    cancel_link link(env.cancel(), cs);
    io::deadline deadline(std::chrono::milliseconds(timeout_ms), cs);
    auto conn = co_await io::connect(req.url.addr, &cs);
    if (!conn) co_return failure(req, "connect to", conn.error(), cs, link);
    auto sent = co_await conn->send_all(req.bytes, &cs);
    if (!sent) co_return failure(req, "sending to", sent.error(), cs, link);
    response_reader reader;
    reader.skip_body = method == "HEAD";
    for (;;) {
      auto buf = co_await conn->recv(&cs);
      if (!buf) co_return failure(req, "reading from", buf.error(), cs, link);
      bool ok = buf->size() == 0 ? reader.finish() : reader.feed(buf->view());
      if (!ok) co_return fail("http: " + req.what + ": " + reader.error(), error_codes::http_error);
      if (reader.complete()) break;
    }
    co_await conn->close();
    co_return emit(0, reader.to_value());
  }
};

void compile_headers(node_compiler& c, const YAML::Node& hs, http_impl& impl) {
  for (const auto& kv : hs) {
    std::string name = kv.first.Scalar();
    std::string key = "config.headers." + name;
    std::string low = lower(name);
    std::string why;
    if (!is_token(name)) {
      c.error(kv.first, key + ": not a valid header name");
    } else if (low == "content-length" || low == "transfer-encoding" || low == "connection") {
      c.error(kv.first, key + " is set by the node and cannot be configured");
    } else if (!kv.second.IsScalar()) {
      c.error(kv.second, key + " must be a string");
    } else if (auto t = template_string::compile(kv.second.Scalar(), c.lookup(), &why)) {
      impl.headers.push_back({name, std::move(*t)});
    } else {
      c.error(kv.second, key + ": " + why);
    }
  }
}

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<http_impl>();
  if (auto m = c.string("method", false, "GET")) {
    std::string up = *m;
    for (char& ch : up)
      if (ch >= 'a' && ch <= 'z') ch = char(ch - 'a' + 'A');
    static const char* known[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
    if (std::find(std::begin(known), std::end(known), up) == std::end(known))
      c.error(c.config()["method"], "config.method must be GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS");
    impl->method = up;
  }
  YAML::Node url = c.config()["url"];
  if (!url || !url.IsScalar() || url.Scalar().empty()) {
    c.error(url ? url : c.config(), "config.url is required (http://address:port/path, may hold ${selectors})");
  } else {
    // A url without selectors is checked whole now; one with selectors at least
    // for its scheme, and whole once rendered.
    std::string why;
    const std::string& s = url.Scalar();
    auto t = template_string::compile(s, c.lookup(), &why);
    if (!t) c.error(url, "config.url: " + why);
    else if (!t->has_selectors() && !parse_url(s, why)) c.error(url, "config.url: " + why);
    else if (s.size() >= 8 && io::iequals(std::string_view(s).substr(0, 8), "https://"))
      c.error(url, "config.url: https not supported yet");
    else impl->url = std::move(*t);
  }
  if (YAML::Node hs = c.config()["headers"]; hs && !hs.IsNull()) {
    if (hs.IsMap()) compile_headers(c, hs, *impl);
    else c.error(hs, "config.headers must be a map of header name to value");
  }
  if (YAML::Node b = c.config()["body"]; b && !b.IsNull()) {
    std::string why;
    if (!b.IsScalar()) c.error(b, "config.body must be a string (a single ${selector} sends that value as JSON)");
    else if (auto t = template_string::compile(b.Scalar(), c.lookup(), &why)) impl->body = std::move(*t);
    else c.error(b, "config.body: " + why);
  }
  if (auto t = c.integer("timeout_ms", false, 10'000, 1, 3'600'000)) impl->timeout_ms = uint64_t(*t);
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type http_node() { return {"std::http", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
