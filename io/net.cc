#include "io/net.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "io/log.h"
#include "io/ops.h"

namespace xerv::io {

result<socket_address> socket_address::parse(std::string_view host, uint16_t port) {
  socket_address a;
  std::string h(host);
  if (h.empty() || h == "*") h = "0.0.0.0";
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
  } else {
    return from_errno(EINVAL);
  }
  return a;
}

uint16_t socket_address::port() const {
  if (storage.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
}

std::string socket_address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(port());
}

// ---- recv_buffer ----

recv_buffer::recv_buffer(recv_buffer&& o) noexcept
    : _data(std::exchange(o._data, nullptr)), _size(std::exchange(o._size, 0)), _bid(std::exchange(o._bid, -1)),
      _fallback(std::move(o._fallback)) {}

recv_buffer& recv_buffer::operator=(recv_buffer&& o) noexcept {
  if (this != &o) {
    release();
    _data = std::exchange(o._data, nullptr);
    _size = std::exchange(o._size, 0);
    _bid = std::exchange(o._bid, -1);
    _fallback = std::move(o._fallback);
  }
  return *this;
}

recv_buffer::~recv_buffer() { release(); }

void recv_buffer::release() {
  if (_bid >= 0) this_reactor().recycle_buffer(static_cast<uint16_t>(_bid));
  _bid = -1;
  _fallback.reset();
  _data = nullptr;
  _size = 0;
}

// ---- tcp_connection ----

tcp_connection& tcp_connection::operator=(tcp_connection&& o) noexcept {
  if (this != &o) {
    if (_fd >= 0) ::close(_fd);
    _fd = std::exchange(o._fd, -1);
  }
  return *this;
}

tcp_connection::~tcp_connection() {
  // Prefer `co_await close()`; a socket close does not block, so this is a safe fallback.
  if (_fd >= 0) ::close(_fd);
}

task<result<recv_buffer>> tcp_connection::recv(cancel_source* cs) {
  reactor& r = this_reactor();
  recv_buffer out;
  if (r.has_buffer_ring()) {
    int fd = _fd;
    unsigned len = r.recv_buffer_bytes();
    cqe_result c = co_await ring_op(
        [&](io_uring_sqe* s) {
          io_uring_prep_recv(s, fd, nullptr, len, 0);
          s->flags |= IOSQE_BUFFER_SELECT;
          s->buf_group = 0;
        },
        cs);
    if (c.flags & IORING_CQE_F_BUFFER) {
      auto bid = static_cast<uint16_t>(c.flags >> IORING_CQE_BUFFER_SHIFT);
      out._bid = bid;
      out._data = r.buffer_data(bid);
    }
    if (c.res >= 0) {
      out._size = static_cast<size_t>(c.res);
      co_return out;
    }
    if (c.res != -ENOBUFS) co_return cqe_error(c.res, cs);
    // Every provided buffer is held by someone: fall back to a private buffer.
  }
  size_t fallback_bytes = r.recv_buffer_bytes() ? r.recv_buffer_bytes() : 16384;
  out._fallback = std::make_unique<char[]>(fallback_bytes);
  std::span<char> into(out._fallback.get(), fallback_bytes);
  auto n = co_await recv_into(into, cs);
  if (!n) co_return n.error();
  out._data = out._fallback.get();
  out._size = *n;
  co_return out;
}

task<result<size_t>> tcp_connection::recv_into(std::span<char> buf, cancel_source* cs) {
  int fd = _fd;
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_recv(s, fd, buf.data(), buf.size(), 0); }, cs);
  if (c.res < 0) co_return cqe_error(c.res, cs);
  co_return static_cast<size_t>(c.res);
}

task<result<void>> tcp_connection::send_all(std::span<const char> data, cancel_source* cs) {
  int fd = _fd;
  while (!data.empty()) {
    cqe_result c = co_await ring_op(
        [&](io_uring_sqe* s) { io_uring_prep_send(s, fd, data.data(), data.size(), MSG_NOSIGNAL); }, cs);
    if (c.res < 0) {
      if (c.res == -EINTR || c.res == -EAGAIN) continue;
      co_return cqe_error(c.res, cs);
    }
    data = data.subspan(static_cast<size_t>(c.res));
  }
  co_return result<void>{};
}

task<result<void>> tcp_connection::writev_all(std::span<iovec> iov, cancel_source* cs) {
  int fd = _fd;
  while (!iov.empty() && iov.front().iov_len == 0) iov = iov.subspan(1);
  while (!iov.empty()) {
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = std::min<size_t>(iov.size(), IOV_MAX);
    cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_sendmsg(s, fd, &msg, MSG_NOSIGNAL); }, cs);
    if (c.res < 0) {
      if (c.res == -EINTR || c.res == -EAGAIN) continue;
      co_return cqe_error(c.res, cs);
    }
    auto sent = static_cast<size_t>(c.res);
    while (!iov.empty() && sent >= iov.front().iov_len) {
      sent -= iov.front().iov_len;
      iov = iov.subspan(1);
    }
    if (sent > 0) {
      iov.front().iov_base = static_cast<char*>(iov.front().iov_base) + sent;
      iov.front().iov_len -= sent;
    }
  }
  co_return result<void>{};
}

task<result<void>> tcp_connection::shutdown_write() {
  int fd = _fd;
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_shutdown(s, fd, SHUT_WR); });
  if (c.res < 0) co_return cqe_error(c.res, nullptr);
  co_return result<void>{};
}

task<void> tcp_connection::close() {
  int fd = std::exchange(_fd, -1);
  if (fd < 0) co_return;
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_close(s, fd); });
  (void)c;  // A failed close leaves nothing to retry on Linux.
}

task<result<tcp_connection>> connect(socket_address to, cancel_source* cs) {
  int fd = ::socket(to.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return from_errno(errno);
  tcp_connection conn(fd);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_connect(s, fd, to.addr(), to.length); }, cs);
  if (c.res < 0) co_return cqe_error(c.res, cs);
  co_return conn;
}

result<void> check_port_free(const socket_address& at) {
  int fd = ::socket(at.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return from_errno(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT leftovers are fine
  int rc = ::bind(fd, at.addr(), at.length);
  int err = errno;
  ::close(fd);
  if (rc != 0) return from_errno(err);
  return {};
}

// ---- tcp_listener ----

struct tcp_listener::waiter : cancel_source::hook {
  std::coroutine_handle<> h;
  int fd = -1;
  std::error_code error;
  tcp_listener* listener = nullptr;
  cancel_source* cs = nullptr;
};

result<std::unique_ptr<tcp_listener>> tcp_listener::listen(const socket_address& at, listen_options opts) {
  int fd = ::socket(at.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return from_errno(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (opts.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // inherited by accepted sockets
  if (::bind(fd, at.addr(), at.length) != 0 || ::listen(fd, opts.backlog) != 0) {
    int err = errno;
    ::close(fd);
    return from_errno(err);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  socket_address b;
  b.storage = bound;
  b.length = len;
  return std::unique_ptr<tcp_listener>(new tcp_listener(fd, b.port(), opts));
}

tcp_listener::~tcp_listener() {
  ASSERT(!_armed || this_reactor().stopping(), "listener destroyed while its accept is in flight; close() it first");
  for (int fd : _ready) ::close(fd);
  if (_fd >= 0) ::close(_fd);
}

void tcp_listener::arm() {
  ASSERT(!_armed && !_closing);
  io_uring_sqe* sqe = this_reactor().get_sqe();
  if (this_reactor().features().multishot_accept) io_uring_prep_multishot_accept(sqe, _fd, nullptr, nullptr, SOCK_CLOEXEC);
  else io_uring_prep_accept(sqe, _fd, nullptr, nullptr, SOCK_CLOEXEC);
  on_complete = &on_accept;
  io_uring_sqe_set_data(sqe, static_cast<completion*>(this));
  _armed = true;
}

void tcp_listener::cancel_accept() {
  io_uring_sqe* sqe = this_reactor().get_sqe();
  io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(static_cast<completion*>(this)), 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, 0);
}

void tcp_listener::on_accept(completion* c, int res, uint32_t flags) {
  auto* self = static_cast<tcp_listener*>(c);
  if (!(flags & IORING_CQE_F_MORE)) self->_armed = false;
  if (res >= 0) {
    if (self->_closing) {
      ::close(res);
    } else if (waiter* w = std::exchange(self->_waiter, nullptr)) {
      cancel_source::detach(w);
      w->fd = res;
      this_reactor().schedule(w->h);
    } else {
      self->_ready.push_back(res);
      if (self->_ready.size() >= self->_opts.accept_queue_max && self->_armed) self->cancel_accept();
    }
  } else if (res != -ECANCELED) {
    // EMFILE, ENFILE, ENOBUFS...: the taker decides how to back off; we re-arm on its next accept().
    XLOG(warn, "accept on port %u: %s", unsigned(self->_port), strerror(-res));
    if (waiter* w = std::exchange(self->_waiter, nullptr)) {
      cancel_source::detach(w);
      w->error = from_errno(-res);
      this_reactor().schedule(w->h);
    }
  }
  if (!self->_armed) {
    if (self->_close_waiter) this_reactor().schedule(std::exchange(self->_close_waiter, {}));
    else if (self->_waiter && !self->_closing && res >= 0) self->arm();
  }
}

task<result<tcp_connection>> tcp_listener::accept(cancel_source* cs) {
  ASSERT(_waiter == nullptr, "concurrent accept() on one listener");
  if (!_ready.empty()) {
    int fd = _ready.front();
    _ready.pop_front();
    if (!_armed && !_closing && _ready.size() < _opts.accept_queue_max / 2) arm();
    co_return tcp_connection(fd);
  }
  if (_closing) co_return errc::closed;
  if (cs && cs->cancelled()) co_return cs->reason();
  if (!_armed) arm();
  waiter w;
  w.listener = this;
  struct park {
    waiter& w;
    cancel_source* cs;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      w.h = h;
      w.listener->_waiter = &w;
      if (cs) {
        w.cs = cs;
        w.fire = [](cancel_source::hook* hk) {
          auto* wt = static_cast<waiter*>(hk);
          wt->listener->_waiter = nullptr;
          wt->error = make_error_code(wt->cs->reason());
          this_reactor().schedule(wt->h);
        };
        cs->attach(&w);
      }
    }
    void await_resume() const noexcept {}
  };
  co_await park{w, cs};
  if (w.fd >= 0) co_return tcp_connection(w.fd);
  co_return w.error;
}

task<void> tcp_listener::close() {
  if (_closing) co_return;
  _closing = true;
  if (waiter* w = std::exchange(_waiter, nullptr)) {
    cancel_source::detach(w);
    w->error = make_error_code(errc::closed);
    this_reactor().schedule(w->h);
  }
  if (_armed) {
    cancel_accept();
    struct wait_disarm {
      tcp_listener* l;
      bool await_ready() const noexcept { return !l->_armed; }
      void await_suspend(std::coroutine_handle<> h) { l->_close_waiter = h; }
      void await_resume() const noexcept {}
    };
    co_await wait_disarm{this};
  }
  for (int fd : _ready) ::close(fd);
  _ready.clear();
  int fd = std::exchange(_fd, -1);
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_close(s, fd); });
  (void)c;  // Nothing to retry.
}

}  // namespace xerv::io
