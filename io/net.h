#pragma once
// TCP over the shard's ring: per-shard SO_REUSEPORT listeners with multishot
// accept, receives into the shard's provided-buffer ring, sends that finish partial
// writes themselves, non-blocking connect, orderly shutdown and close. Objects here
// belong to the shard that created them.

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "io/cancel.h"
#include "io/reactor.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::io {

struct socket_address {
  sockaddr_storage storage{};
  socklen_t length = 0;

  // Numeric IPv4 or IPv6 host only: name resolution would block the shard.
  static result<socket_address> parse(std::string_view host, uint16_t port);
  uint16_t port() const;
  std::string to_string() const;
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Received bytes. Holds a provided buffer until destroyed, then hands it back to the
// ring; keep it briefly (parse or copy, then drop). size() == 0 means end of stream.
class recv_buffer {
 public:
  recv_buffer() = default;
  recv_buffer(recv_buffer&& o) noexcept;
  recv_buffer& operator=(recv_buffer&& o) noexcept;
  ~recv_buffer();

  const char* data() const { return _data; }
  size_t size() const { return _size; }
  std::string_view view() const { return {_data, _size}; }

 private:
  friend class tcp_connection;
  void release();
  const char* _data = nullptr;
  size_t _size = 0;
  int _bid = -1;                       // provided buffer id, or -1
  std::unique_ptr<char[]> _fallback;  // used when the buffer ring ran dry
};

class tcp_connection {
 public:
  tcp_connection() = default;
  explicit tcp_connection(int fd) : _fd(fd) {}
  tcp_connection(tcp_connection&& o) noexcept : _fd(std::exchange(o._fd, -1)) {}
  tcp_connection& operator=(tcp_connection&& o) noexcept;
  ~tcp_connection();

  int fd() const { return _fd; }
  bool is_open() const { return _fd >= 0; }

  task<result<recv_buffer>> recv(cancel_source* cs = nullptr);
  task<result<size_t>> recv_into(std::span<char> out, cancel_source* cs = nullptr);
  task<result<void>> send_all(std::span<const char> data, cancel_source* cs = nullptr);
  // Sends every iovec in order; advances the array in place on partial sends.
  task<result<void>> writev_all(std::span<iovec> iov, cancel_source* cs = nullptr);
  task<result<void>> shutdown_write();
  task<void> close();

 private:
  int _fd = -1;
};

task<result<tcp_connection>> connect(socket_address to, cancel_source* cs = nullptr);

// Fails with EADDRINUSE when anything listens on the address. SO_REUSEPORT
// listeners would otherwise silently share a port with another process; call this
// once before the shards bind theirs.
result<void> check_port_free(const socket_address& at);

struct listen_options {
  int backlog = 4096;
  bool reuse_port = true;
  size_t accept_queue_max = 1024;  // accepted but not yet taken; beyond it accept pauses
};

// A listening socket with a multishot accept. Not movable: the ring holds its address.
class tcp_listener : completion {
 public:
  static result<std::unique_ptr<tcp_listener>> listen(const socket_address& at, listen_options opts = {});
  ~tcp_listener();
  tcp_listener(const tcp_listener&) = delete;
  tcp_listener& operator=(const tcp_listener&) = delete;

  uint16_t port() const { return _port; }
  // One caller at a time.
  task<result<tcp_connection>> accept(cancel_source* cs = nullptr);
  // Stops accepting, waits for the ring to let go, closes queued sockets and the fd.
  task<void> close();

 private:
  tcp_listener(int fd, uint16_t port, listen_options opts) : _fd(fd), _port(port), _opts(opts) {}
  void arm();
  void cancel_accept();
  static void on_accept(completion* c, int res, uint32_t flags);
  struct waiter;

  int _fd;
  uint16_t _port;
  listen_options _opts;
  bool _armed = false;
  bool _closing = false;
  std::deque<int> _ready;
  waiter* _waiter = nullptr;
  std::coroutine_handle<> _close_waiter;
};

}  // namespace xerv::io
