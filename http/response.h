#pragma once
// Responses and their wire form. A response is written with one writev: the head
// (status line, Date, Content-Type, Content-Length, Connection, extra headers) and
// the body. Streaming responses (chunked, Server-Sent Events) hand the handler a
// stream instead of a body.

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/net.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::http {

// Writes the body of a streaming response as HTTP/1.1 chunks.
class stream {
 public:
  explicit stream(io::tcp_connection& conn) : _conn(conn) {}
  io::task<io::result<void>> write(std::string_view data);
  io::task<io::result<void>> finish();  // the terminating zero-size chunk

 private:
  io::tcp_connection& _conn;
  std::string _frame;
};

struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the head goes out with `Transfer-Encoding: chunked` and this
  // produces the body; the connection stays usable if it calls finish().
  std::function<io::task<io::result<void>>(stream&)> streamer;
};

const char* reason_phrase(int status);

// `{"error":code,"message":message,"details":details}`; details is raw JSON.
response json_error(int status, std::string_view code, std::string_view message, std::string_view details = "{}");

// Appends the head of `r` (everything before the body) to `out`.
void append_head(std::string& out, const response& r, bool keep_alive);

// The current Date header value, refreshed at most once a second per thread.
std::string_view http_date();

}  // namespace xerv::http
