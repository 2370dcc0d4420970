#include "http/parser.h"

#include <algorithm>

#include "io/strings.h"

namespace xerv::http {
namespace {

request_parser* self_of(llhttp_t* p) { return static_cast<request_parser*>(p->data); }

}  // namespace

std::string_view request::path() const {
  std::string_view t = target();
  size_t q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

std::string_view request::query() const {
  std::string_view t = target();
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::pair<std::string_view, std::string_view> request::header_at(size_t i) const {
  const header_pos& h = _headers[i];
  return {std::string_view(_storage).substr(h.name_off, h.name_len),
          std::string_view(_storage).substr(h.value_off, h.value_len)};
}

std::string_view request::header(std::string_view name) const {
  for (size_t i = 0; i < _headers.size(); ++i) {
    auto [n, v] = header_at(i);
    if (io::iequals(n, name)) return v;
  }
  return {};
}

std::string_view request::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

void request::clear() {
  _method = {};
  _storage.clear();  // keeps capacity: no allocation for the next request
  _target_len = 0;
  _headers.clear();
  _body.clear();
  _keep_alive = true;
  params.clear();
  route = {};
}

request_parser::request_parser(parser_limits limits) : _limits(limits) {
  // Callbacks are set per parser: llhttp_settings_t is copied by pointer only.
  static const llhttp_settings_t callbacks = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &on_message_begin;
    s.on_url = &on_url;
    s.on_header_field = &on_header_field;
    s.on_header_field_complete = &on_header_field_complete;
    s.on_header_value = &on_header_value;
    s.on_header_value_complete = &on_header_value_complete;
    s.on_headers_complete = &on_headers_complete;
    s.on_body = &on_body;
    s.on_message_complete = &on_message_complete;
    return s;
  }();
  llhttp_init(&_parser, HTTP_REQUEST, &callbacks);
  _parser.data = this;
}

int request_parser::fail(int status, const char* reason) {
  _error_status = status;
  _error_reason = reason;
  return -1;
}

bool request_parser::count_header_bytes(size_t len) {
  _header_bytes += len;
  return _header_bytes <= _limits.header_bytes_max;
}

int request_parser::on_message_begin(llhttp_t* p) {
  request_parser* self = self_of(p);
  self->_req.clear();
  self->_header_bytes = 0;
  self->_in_message = true;
  self->_headers_complete = false;
  self->_field_done = false;
  self->_value_done = false;
  return 0;
}

int request_parser::on_url(llhttp_t* p, const char* at, size_t len) {
  request_parser* self = self_of(p);
  if (!self->count_header_bytes(len)) return self->fail(431, "request line too long");
  self->_req._storage.append(at, len);
  self->_req._target_len += len;
  return 0;
}

int request_parser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  request_parser* self = self_of(p);
  if (!self->count_header_bytes(len)) return self->fail(431, "request headers too large");
  request& r = self->_req;
  if (self->_field_done || r._headers.empty()) {
    // A new header starts (llhttp may deliver one name in several pieces).
    if (r._headers.size() >= self->_limits.headers_count_max) return self->fail(431, "too many request headers");
    auto off = static_cast<uint32_t>(r._storage.size());
    r._headers.push_back({off, 0, off, 0});
    self->_field_done = false;
  }
  r._storage.append(at, len);
  r._headers.back().name_len += static_cast<uint32_t>(len);
  r._headers.back().value_off = static_cast<uint32_t>(r._storage.size());
  return 0;
}

int request_parser::on_header_field_complete(llhttp_t* p) {
  request_parser* self = self_of(p);
  self->_field_done = true;
  self->_value_done = false;
  if (self->_req._headers.empty() || self->_req._headers.back().name_len == 0)
    return self->fail(400, "empty header name");
  return 0;
}

int request_parser::on_header_value_complete(llhttp_t* p) {
  request_parser* self = self_of(p);
  self->_value_done = true;
  // Trailing whitespace is not part of a field value (RFC 9110 §5.5).
  request::header_pos& h = self->_req._headers.back();
  while (h.value_len > 0) {
    char c = self->_req._storage[h.value_off + h.value_len - 1];
    if (c != ' ' && c != '\t') break;
    --h.value_len;
  }
  return 0;
}

int request_parser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  request_parser* self = self_of(p);
  if (!self->count_header_bytes(len)) return self->fail(431, "request headers too large");
  // A value with no name of its own (": x") would otherwise extend the previous header.
  if (self->_value_done || self->_req._headers.empty()) return self->fail(400, "empty header name");
  self->_req._storage.append(at, len);
  self->_req._headers.back().value_len += static_cast<uint32_t>(len);
  return 0;
}

int request_parser::on_headers_complete(llhttp_t* p) {
  request_parser* self = self_of(p);
  self->_req._method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  self->_headers_complete = true;
  // xerv speaks plain HTTP/1.1 only: an Upgrade (h2c, WebSocket) or CONNECT is
  // answered as an ordinary request and the connection stays HTTP/1.1.
  p->upgrade = 0;
  const parser_limits& lim = self->_limits;
  self->_body_limit = !lim.large_body_prefix.empty() && self->_req.path().starts_with(lim.large_body_prefix)
                          ? std::max(lim.large_body_bytes_max, lim.body_bytes_max)
                          : lim.body_bytes_max;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > self->_body_limit)
    return self->fail(413, "request body too large");
  // Pause only when the client waits for our go-ahead before sending its body; a
  // pause elsewhere would hold back the message-complete step of body-less requests.
  bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  return has_body && self->expects_continue() ? HPE_PAUSED : 0;
}

int request_parser::on_body(llhttp_t* p, const char* at, size_t len) {
  request_parser* self = self_of(p);
  if (self->_req._body.size() + len > self->_body_limit) return self->fail(413, "request body too large");
  self->_req._body.append(at, len);
  return 0;
}

int request_parser::on_message_complete(llhttp_t* p) {
  request_parser* self = self_of(p);
  self->_req._keep_alive = llhttp_should_keep_alive(p) != 0;
  self->_message_complete = true;
  self->_in_message = false;
  return HPE_PAUSED;
}

bool request_parser::expects_continue() const {
  std::string_view e = _req.header("expect");
  return io::iequals(e, "100-continue");
}

request_parser::outcome request_parser::feed(const char* data, size_t len) {
  if (_error_status) return {parse_event::error, 0};
  llhttp_errno_t err = llhttp_execute(&_parser, data, len);
  if (err == HPE_OK) return {parse_event::need_more, len};
  if (err == HPE_PAUSED) {
    size_t used = static_cast<size_t>(llhttp_get_error_pos(&_parser) - data);
    llhttp_resume(&_parser);
    if (_message_complete) return {parse_event::message_done, used};
    return {parse_event::headers_done, used};
  }
  if (!_error_status) {
    // llhttp's own verdict (bad method, bad chunk, invalid header token).
    _error_status = 400;
    _error_reason = llhttp_get_error_reason(&_parser);
    if (!_error_reason) _error_reason = llhttp_errno_name(err);
  }
  return {parse_event::error, 0};
}

void request_parser::next() {
  _message_complete = false;
  _headers_complete = false;
  _req.clear();
}

}  // namespace xerv::http
