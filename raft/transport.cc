#include "raft/transport.h"

#include <algorithm>
#include <optional>
#include <variant>

#include "io/event.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/runtime.h"
#include "raft/wire.h"

namespace xerv::raft {

using namespace std::chrono_literals;

namespace {

// Small frames are packed into one buffer of the queue until it reaches this
// size, so a turn of heartbeats is one iovec, not one per frame.
constexpr size_t k_pack_bytes = 16 << 10;
// The first frame of a connection is a hello of a few bytes: nothing bigger is
// buffered from a peer that has not said who it is.
constexpr uint32_t k_hello_bytes_max = 256;

io::result<io::socket_address> parse_address(std::string_view host, uint16_t port) {
  if (host == "localhost") host = "127.0.0.1";
  return io::socket_address::parse(host, port);
}

// For logs: the address a connection comes from.
std::string remote_name(int fd) {
  io::socket_address a;
  a.length = sizeof a.storage;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) return "?";
  return a.to_string();
}

}  // namespace

// This node's side of one peer: the frames queued for it, the writer's wake-up
// and the link's lifecycle (peer_loop).
struct transport::peer {
  struct flush_hook : io::turn_hook {
    peer* p = nullptr;
  } flush;
  node_id id;
  peer_address addr;
  io::socket_address to;
  std::vector<std::string> queue;  // whole frames; small ones share a buffer
  size_t queued_bytes = 0;    // in the queue and in the write in flight: what queue_max_bytes bounds
  size_t queued_frames = 0;   // in the queue
  size_t inflight_bytes = 0;  // of queued_bytes, in the write in flight
  io::event wake;                          // notified at the end of a turn that queued frames
  io::cancel_source stop;                  // removal or transport stop: the loop ends
  io::cancel_source* current = nullptr;    // the connect attempt's or the connection's
  bool active = false;                     // a frame was queued once: keep the link up
  bool connected = false;
  bool removed = false;

  peer() {
    flush.p = this;
    flush.run = [](io::turn_hook* h) { static_cast<flush_hook*>(h)->p->wake.notify(); };
  }
  ~peer() {
    if (flush.queued) io::this_reactor().cancel_turn_end(&flush);
  }
  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;

  // Drops what is queued (a failed or broken connection); returns how many frames.
  size_t drop_queue() {
    size_t n = std::exchange(queued_frames, 0);
    queued_bytes = inflight_bytes;
    queue.clear();
    return n;
  }
};

// One accepted connection, on the intrusive list stop() walks.
struct transport::inbound {
  inbound* prev = nullptr;
  inbound* next = nullptr;
  io::cancel_source* cs = nullptr;
  node_id from;  // 0 until its hello
};

transport::transport(transport_options o, handlers h)
    : _o(std::move(o)), _h(std::move(h)), _rng(io::monotonic_ns() ^ (_o.self.value * 0x9e3779b97f4a7c15ull) ^ 1),
      _shard(io::this_shard_id()) {}

transport::~transport() {
  ASSERT(_tasks.count() == 0, "transport destroyed while running; co_await stop() first");
  ASSERT(_inbound == nullptr);
}

io::result<std::unique_ptr<transport>> transport::start(transport_options o, handlers h) {
  if (o.self.value == 0 || o.reconnect_min.count() <= 0 || o.reconnect_min > o.reconnect_max || o.frame_max == 0 ||
      o.inbound_max == 0)
    return io::from_errno(EINVAL);
  auto addr = parse_address(o.listen_host, o.listen_port);
  if (!addr) return addr.error();
  io::listen_options lo;
  lo.backlog = 128;
  lo.reuse_port = false;  // one transport per port: a second one fails instead of sharing it
  lo.accept_queue_max = 64;
  auto l = io::tcp_listener::listen(*addr, lo);
  if (!l) return l.error();
  std::unique_ptr<transport> t(new transport(std::move(o), std::move(h)));
  t->_listener = std::move(*l);
  if (auto r = io::spawn(t->_tasks, t->accept_loop()); !r) return r.error();
  return t;
}

uint16_t transport::port() const { return _listener->port(); }

bool transport::connected(node_id id) const {
  auto it = _peers.find(id);
  return it != _peers.end() && it->second->connected;
}

transport::peer* transport::find_peer(node_id id) {
  auto it = _peers.find(id);
  return it == _peers.end() ? nullptr : it->second.get();
}

// ---- peers ----

void transport::set_peers(std::vector<peer_address> peers) {
  DEBUG_ASSERT(io::this_shard_id() == _shard, "transport used off its shard");
  if (_stopping) return;
  std::map<node_id, peer_address> want;
  for (peer_address& a : peers)
    if (a.id.value != 0 && a.id != _o.self) want[a.id] = std::move(a);
  std::vector<node_id> gone;
  for (auto& [id, p] : _peers)
    if (!want.count(id)) gone.push_back(id);
  for (node_id id : gone) retire(*_peers.at(id));

  for (auto& [id, a] : want) {
    auto to = a.port != 0 ? parse_address(a.host, a.port) : io::result<io::socket_address>(io::from_errno(EINVAL));
    peer* p = find_peer(id);
    if (!to) {
      XLOG(error, "raft transport: peer %llu has address %s:%u; expected a numeric IPv4/IPv6 address or localhost",
           static_cast<unsigned long long>(id.value), a.host.c_str(), unsigned(a.port));
      if (p) retire(*p);
      continue;
    }
    if (p) {
      if (p->addr.host == a.host && p->addr.port == a.port) continue;
      p->addr = a;
      p->to = *to;
      if (p->current) p->current->cancel(io::errc::closed);  // reconnect to the new address
      continue;
    }
    auto np = std::make_unique<peer>();
    np->id = id;
    np->addr = a;
    np->to = *to;
    peer* raw = np.get();
    _peers.emplace(id, std::move(np));
    if (!io::spawn(_tasks, peer_loop(raw))) _peers.erase(id);
  }
}

void transport::retire(peer& p) {
  ASSERT(!p.removed);
  p.removed = true;
  p.stop.cancel();
  if (p.current) p.current->cancel(io::errc::closed);
  _stats.dropped += p.drop_queue();
  auto it = _peers.find(p.id);
  ASSERT(it != _peers.end() && it->second.get() == &p);
  _retired.push_back(std::move(it->second));
  _peers.erase(it);
}

// ---- sending ----

namespace {

// Where the next frame for `q` is encoded: the last buffer while it is small.
std::string& open_tail(std::vector<std::string>& q) {
  if (q.empty() || q.back().size() >= k_pack_bytes) q.emplace_back();
  return q.back();
}

}  // namespace

// Accounts for the frame just encoded at `before` in p.queue.back() (its body
// `body` bytes), or takes it back out when it breaks a limit.
void transport::admit(peer& p, size_t before, size_t body) {
  std::string& tail = p.queue.back();
  size_t added = tail.size() - before;
  if (body > _o.frame_max || p.queued_bytes + added > _o.queue_max_bytes) {
    tail.resize(before);
    if (tail.empty()) p.queue.pop_back();
    ++_stats.dropped;
    return;
  }
  p.queued_bytes += added;
  ++p.queued_frames;
  p.active = true;
  io::this_reactor().at_turn_end(&p.flush);
}

void transport::send(const message& m) {
  DEBUG_ASSERT(io::this_shard_id() == _shard, "transport used off its shard");
  ASSERT(m.from == _o.self, "message from %llu sent by node %llu", static_cast<unsigned long long>(m.from.value),
         static_cast<unsigned long long>(_o.self.value));
  peer* p = _stopping ? nullptr : find_peer(m.to);
  if (!p) {
    ++_stats.dropped;
    return;
  }
  std::string& tail = open_tail(p->queue);
  size_t before = tail.size();
  size_t body = wire::append_message(tail, m);
  admit(*p, before, body);
}

void transport::send_app(node_id to, uint32_t kind, std::string_view payload) {
  DEBUG_ASSERT(io::this_shard_id() == _shard, "transport used off its shard");
  peer* p = _stopping ? nullptr : find_peer(to);
  // Cheap refusals first: no copy of a payload whose frame would be dropped.
  if (!p || payload.size() > _o.frame_max || p->queued_bytes + payload.size() > _o.queue_max_bytes) {
    ++_stats.dropped;
    return;
  }
  std::string& tail = open_tail(p->queue);
  size_t before = tail.size();
  size_t body = wire::append_app(tail, kind, payload);
  admit(*p, before, body);
}

// ---- the outbound link ----

std::chrono::nanoseconds transport::jittered(std::chrono::milliseconds d) {
  // xorshift64*: jitter needs no more.
  _rng ^= _rng >> 12;
  _rng ^= _rng << 25;
  _rng ^= _rng >> 27;
  uint64_t r = _rng * 0x2545f4914f6cdd1dull;
  auto ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  uint64_t half = ns / 2;
  return std::chrono::nanoseconds(half + r % (ns - half + 1));
}

io::task<void> transport::peer_loop(peer* p) {
  auto backoff = _o.reconnect_min;
  bool first = true;
  while (!p->stop.cancelled()) {
    if (!p->active) {  // lazily: nothing was ever sent to this peer
      auto w = p->wake.wait(p->stop);
      co_await w;
      continue;
    }
    if (!first) ++_stats.reconnects;
    first = false;
    io::result<io::tcp_connection> c = io::errc::closed;
    {
      io::cancel_source cs;
      p->current = &cs;
      io::deadline d(_o.connect_timeout, cs);
      auto t = io::connect(p->to, &cs);
      c = co_await std::move(t);
      p->current = nullptr;
    }
    if (c && !p->stop.cancelled()) {
      uint64_t up_ns = io::monotonic_ns();
      auto t = run_connection(p, std::move(*c));
      co_await std::move(t);
      if (io::monotonic_ns() - up_ns >= uint64_t(std::chrono::nanoseconds(_o.reconnect_max).count()))
        backoff = _o.reconnect_min;
    } else {
      if (c) {
        auto cl = c->close();
        co_await std::move(cl);
      }
      XLOG(debug, "raft transport: connect to node %llu at %s: %s", static_cast<unsigned long long>(p->id.value),
           p->to.to_string().c_str(), c ? "stopped" : c.error().message().c_str());
      _stats.dropped += p->drop_queue();
    }
    if (p->stop.cancelled()) break;
    auto s = io::sleep_for(jittered(backoff), &p->stop);
    auto slept = co_await s;
    (void)slept;  // cancelled: the loop condition ends it
    backoff = std::min(backoff * 2, _o.reconnect_max);
  }
  _stats.dropped += p->drop_queue();
  if (p->removed) std::erase_if(_retired, [p](const std::unique_ptr<peer>& r) { return r.get() == p; });
}

// The peer never writes on our outbound connection: its end of stream, an
// error or any bytes end the connection.
io::task<void> transport::watch_connection(io::tcp_connection* conn, io::cancel_source* cs) {
  auto t = conn->recv(cs);
  auto got = co_await std::move(t);
  if (got && got->size() > 0) XLOG(warn, "raft transport: a peer wrote on our outbound connection; closing it");
  cs->cancel(io::errc::closed);
}

io::task<void> transport::run_connection(peer* p, io::tcp_connection conn) {
  io::cancel_source cs;
  p->current = &cs;
  p->connected = true;
  io::gate watching;
  (void)io::spawn(watching, watch_connection(&conn, &cs));  // a fresh gate: cannot be closed
  std::string hello;
  wire::append_hello(hello, wire::hello{wire::protocol_version, _o.self, p->id});
  bool hello_sent = false;
  std::vector<std::string> batch;
  std::vector<iovec> iov;
  while (!cs.cancelled()) {
    if (hello_sent && p->queue.empty()) {
      auto w = p->wake.wait(cs);
      co_await w;
      continue;
    }
    // Everything queued goes out in one writev.
    batch.clear();
    batch.swap(p->queue);
    size_t frames = std::exchange(p->queued_frames, 0);
    size_t bytes = p->queued_bytes;
    p->inflight_bytes = bytes;
    iov.clear();
    if (!hello_sent) {
      iov.push_back({hello.data(), hello.size()});
      bytes += hello.size();
    }
    for (std::string& b : batch) iov.push_back({b.data(), b.size()});
    io::result<void> wrote;
    {
      io::deadline d(_o.write_timeout, cs);
      auto t = conn.writev_all(iov, &cs);
      wrote = co_await std::move(t);
    }
    ++_stats.writes;
    p->queued_bytes -= p->inflight_bytes;
    p->inflight_bytes = 0;
    if (!wrote) {
      _stats.dropped += frames;
      XLOG(debug, "raft transport: write to node %llu: %s", static_cast<unsigned long long>(p->id.value),
           wrote.error().message().c_str());
      break;
    }
    hello_sent = true;
    _stats.frames_sent += frames;
    _stats.bytes_sent += bytes;
  }
  p->connected = false;
  p->current = nullptr;
  cs.cancel(io::errc::closed);
  auto drained = watching.close();
  co_await std::move(drained);
  auto closed = conn.close();
  co_await std::move(closed);
  _stats.dropped += p->drop_queue();
}

// ---- inbound ----

io::task<void> transport::accept_loop() {
  for (;;) {
    auto t = _listener->accept(&_stop);
    auto c = co_await std::move(t);
    if (!c) {
      if (_stopping || _stop.cancelled() || c.error() == io::errc::closed) break;
      // Out of descriptors or memory: back off instead of spinning on the error.
      auto s = io::sleep_for(10ms, &_stop);
      auto slept = co_await s;
      (void)slept;
      continue;
    }
    if (!io::spawn(_tasks, serve_inbound(std::move(*c)))) break;
  }
}

io::task<void> transport::serve_inbound(io::tcp_connection conn) {
  if (_stopping || _inbound_count >= _o.inbound_max) {
    if (!_stopping) XLOG(warn, "raft transport: %zu inbound connections; refusing another", _inbound_count);
    auto closed = conn.close();
    co_await std::move(closed);
    co_return;
  }
  inbound self;
  self.next = _inbound;
  if (_inbound) _inbound->prev = &self;
  _inbound = &self;
  ++_inbound_count;

  io::cancel_source cs;
  self.cs = &cs;
  {
    wire::frame_reader reader(std::min(k_hello_bytes_max, _o.frame_max));
    std::optional<io::deadline> hello_deadline;
    hello_deadline.emplace(_o.hello_timeout, cs);
    while (!cs.cancelled()) {
      auto t = conn.recv(&cs);
      auto got = co_await std::move(t);
      if (!got || got->size() == 0) break;
      _stats.bytes_received += got->size();
      reader.feed(got->view());
      io::result<void> ok;
      for (;;) {
        auto f = reader.next();
        if (!f) {
          ok = f.error();
          break;
        }
        if (!*f) break;
        ok = on_frame(self, **f);
        if (ok && self.from.value != 0) reader.set_frame_max(_o.frame_max);
        if (!ok) break;
      }
      if (!ok) {
        ++_stats.bad_frames;
        XLOG(warn, "raft transport: closing the connection from %s (node %llu): %s", remote_name(conn.fd()).c_str(),
             static_cast<unsigned long long>(self.from.value), ok.error().message().c_str());
        break;
      }
      if (self.from.value != 0 && hello_deadline) hello_deadline.reset();
    }
  }

  if (self.prev) self.prev->next = self.next;
  else _inbound = self.next;
  if (self.next) self.next->prev = self.prev;
  --_inbound_count;
  auto closed = conn.close();
  co_await std::move(closed);
}

io::result<void> transport::on_frame(inbound& in, std::string_view body) {
  auto f = wire::decode(body);
  if (!f) return f.error();
  if (auto* h = std::get_if<wire::hello>(&*f)) {
    if (in.from.value != 0) return wire::make_error_code(wire::errc::unexpected_hello);
    if (h->version != wire::protocol_version) return wire::make_error_code(wire::errc::bad_version);
    if (h->from.value == 0 || h->from == _o.self || (h->to.value != 0 && h->to != _o.self))
      return wire::make_error_code(wire::errc::bad_hello);
    in.from = h->from;
    // A peer that connects again has given up its older connections (half open after a restart, say).
    for (inbound* o = _inbound; o; o = o->next)
      if (o != &in && o->from == in.from) o->cs->cancel(io::errc::closed);
    return {};
  }
  if (in.from.value == 0) return wire::make_error_code(wire::errc::missing_hello);
  if (auto* m = std::get_if<message>(&*f)) {
    if (m->from != in.from || m->to != _o.self) return wire::make_error_code(wire::errc::wrong_sender);
    ++_stats.frames_received;
    if (_h.on_message) _h.on_message(std::move(*m));
    return {};
  }
  auto& a = std::get<wire::app>(*f);
  ++_stats.frames_received;
  if (_h.on_app) _h.on_app(in.from, a.kind, std::move(a.payload));
  return {};
}

// ---- stop ----

io::task<void> transport::stop() {
  DEBUG_ASSERT(io::this_shard_id() == _shard, "transport used off its shard");
  if (_stopping) co_return;
  _stopping = true;
  _stop.cancel();
  for (auto& [id, p] : _peers) {
    p->stop.cancel();
    if (p->current) p->current->cancel(io::errc::closed);
  }
  for (inbound* in = _inbound; in; in = in->next) in->cs->cancel(io::errc::closed);
  auto closed = _listener->close();
  co_await std::move(closed);
  auto drained = _tasks.close();
  co_await std::move(drained);
  ASSERT(_inbound == nullptr && _retired.empty(), "transport coroutines outlived stop()");
  for (auto& [id, p] : _peers) _stats.dropped += p->drop_queue();
  _peers.clear();
}

}  // namespace xerv::raft
