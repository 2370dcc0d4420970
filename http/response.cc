#include "http/response.h"

#include <time.h>

#include <charconv>
#include <cstdio>

#include "io/strings.h"

namespace xerv::http {

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
  }
  return "Unknown";
}

response json_error(int status, std::string_view code, std::string_view message, std::string_view details) {
  response r;
  r.status = status;
  r.body.reserve(64 + message.size() + details.size());
  r.body += "{\"error\":";
  io::append_json_string(r.body, code);
  r.body += ",\"message\":";
  io::append_json_string(r.body, message);
  r.body += ",\"details\":";
  r.body += details.empty() ? std::string_view("{}") : details;
  r.body += '}';
  return r;
}

std::string_view http_date() {
  thread_local char buf[40];
  thread_local time_t cached = 0;
  time_t now = time(nullptr);
  if (now != cached) {
    tm t{};
    gmtime_r(&now, &t);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &t);
    cached = now;
  }
  return buf;
}

void append_head(std::string& out, const response& r, bool keep_alive) {
  // to_chars, not snprintf: this runs for every response.
  char digits[24];
  out += "HTTP/1.1 ";
  out.append(digits, size_t(std::to_chars(digits, digits + sizeof digits, r.status).ptr - digits));
  out += ' ';
  out += reason_phrase(r.status);
  out += "\r\nDate: ";
  out += http_date();
  out += "\r\nServer: xerv\r\n";
  if (!r.content_type.empty()) {
    out += "Content-Type: ";
    out += r.content_type;
    out += "\r\n";
  }
  if (r.streamer) {
    out += "Transfer-Encoding: chunked\r\n";
  } else {
    out += "Content-Length: ";
    out.append(digits, size_t(std::to_chars(digits, digits + sizeof digits, r.body.size()).ptr - digits));
    out += "\r\n";
  }
  if (!keep_alive) out += "Connection: close\r\n";
  for (const auto& [k, v] : r.headers) {
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += "\r\n";
}

io::task<io::result<void>> stream::write(std::string_view data) {
  if (data.empty()) co_return io::result<void>{};  // a zero chunk would end the stream
  char size_line[24];
  int n = snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  _frame.assign(size_line, static_cast<size_t>(n));
  iovec iov[3] = {{_frame.data(), _frame.size()},
                  {const_cast<char*>(data.data()), data.size()},
                  {const_cast<char*>("\r\n"), 2}};
  co_return co_await _conn.writev_all(iov);
}

io::task<io::result<void>> stream::finish() { co_return co_await _conn.send_all(std::string_view("0\r\n\r\n")); }

}  // namespace xerv::http
