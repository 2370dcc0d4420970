#pragma once
// The HTTP/1.1 server of one shard: a SO_REUSEPORT listener, one coroutine per
// connection, keep-alive and pipelining, 100-continue, limits (431, 413, 400),
// slow-client timeouts, a per-shard connection cap, and a graceful stop. Lives on
// the shard that created it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "http/parser.h"
#include "http/router.h"
#include "io/gate.h"
#include "io/net.h"

namespace xerv::http {

struct server_options {
  std::string host = "0.0.0.0";
  uint16_t port = 8080;  // 0: any free port (the first shard's choice is reused by the others)
  parser_limits limits;
  std::chrono::milliseconds header_timeout{10'000};  // first byte of a request to its last header
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  size_t connections_max = 10'000;                   // per shard; beyond: 503 and close
};

class server {
 public:
  server(const router& routes, server_options opts);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and starts accepting. Returns the bound port.
  io::result<uint16_t> start();
  // Stops accepting, closes idle connections, lets in-flight requests finish (their
  // responses say `Connection: close`), and after `grace` cancels what is left.
  io::task<void> stop(std::chrono::milliseconds grace);

  size_t open_connections() const { return _open; }

 private:
  struct connection;
  io::task<void> accept_loop();
  io::task<void> serve(io::tcp_connection conn);
  io::task<void> reject(io::tcp_connection conn);

  const router& _routes;
  server_options _opts;
  std::unique_ptr<io::tcp_listener> _listener;
  io::gate _accepting;
  io::gate _connections;
  size_t _open = 0;
  bool _stopping = false;
  connection* _live = nullptr;  // intrusive list, for stop() to interrupt idle waits
};

}  // namespace xerv::http
