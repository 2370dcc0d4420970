#pragma once
// HTTP/1.1 request parsing on llhttp, with xerv's limits. Pure: bytes in, requests
// out, no I/O, so the fuzzer drives exactly what the server runs. A declared body
// over the limit is refused as soon as the headers are in (413, before reading
// it); the parser pauses after the headers of a request that expects
// `100-continue`, and after each message, so pipelined requests are handled one at
// a time.

#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xerv::http {

struct parser_limits {
  size_t header_bytes_max = 16 * 1024;  // request line + headers; beyond: 431
  size_t headers_count_max = 128;       // beyond: 431
  size_t body_bytes_max = 1 << 20;      // beyond: 413
  // Requests whose path starts with this prefix may carry up to large_body_bytes_max
  // (flow YAML is deployed through POST /api/v1/pipelines whatever the body limit).
  std::string large_body_prefix;
  size_t large_body_bytes_max = 0;
};

class request {
 public:
  std::string_view method() const { return _method; }
  std::string_view target() const { return {_storage.data(), _target_len}; }
  std::string_view path() const;   // target without the query string
  std::string_view query() const;  // after '?', or empty
  // First header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
  size_t header_count() const { return _headers.size(); }
  std::pair<std::string_view, std::string_view> header_at(size_t i) const;
  const std::string& body() const { return _body; }
  bool keep_alive() const { return _keep_alive; }

  // Set by the router: values of `{name}` segments of the matched pattern.
  std::vector<std::pair<std::string_view, std::string_view>> params;
  std::string_view param(std::string_view name) const;
  // The matched route pattern (metrics label), or empty.
  std::string_view route;

  void clear();

 private:
  friend class request_parser;
  struct header_pos {
    uint32_t name_off, name_len, value_off, value_len;
  };
  std::string_view _method;
  std::string _storage;  // target, then header names and values, back to back
  size_t _target_len = 0;
  std::vector<header_pos> _headers;
  std::string _body;
  bool _keep_alive = true;
};

enum class parse_event {
  need_more,     // every byte consumed, the message is not complete
  headers_done,  // the client sent `Expect: 100-continue`: answer it, then feed the rest
  message_done,  // a whole request is ready in current()
  error,         // error_status() says which response to send, then close
};

class request_parser {
 public:
  explicit request_parser(parser_limits limits = {});
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  struct outcome {
    parse_event event;
    size_t consumed;  // bytes of the input used; feed the rest again
  };
  outcome feed(const char* data, size_t len);

  request& current() { return _req; }
  // After message_done: forget the request and parse the next one.
  void next();

  bool expects_continue() const;
  // True once any byte of a request arrived and until its message completed.
  bool in_message() const { return _in_message; }
  bool headers_complete() const { return _headers_complete; }

  // After error: 400, 413 or 431, and a short reason.
  int error_status() const { return _error_status; }
  const char* error_reason() const { return _error_reason; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_field_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  int fail(int status, const char* reason);
  bool count_header_bytes(size_t len);

  llhttp_t _parser{};
  parser_limits _limits;
  request _req;
  size_t _header_bytes = 0;
  size_t _body_limit = 0;  // for the current request
  bool _in_message = false;
  bool _headers_complete = false;
  bool _field_done = false;
  bool _value_done = false;
  bool _message_complete = false;
  int _error_status = 0;
  const char* _error_reason = "";
};

}  // namespace xerv::http
