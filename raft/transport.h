#pragma once
// The Raft transport: TCP on the shard's ring, one outbound connection per peer
// (this node -> peer, carrying this node's frames) and the inbound connections
// peers open to us (carrying theirs), like etcd's per-direction streams.
//
// Wire format (raft/wire.h, raft/raft.proto): each frame is a 4-byte
// little-endian length, then a protobuf Frame (oneof Hello, Message, App). A
// connection starts with a Hello naming its sender, the node it means to reach
// and the transport protocol version (a first frame over 256 bytes is refused
// unread). Garbage, a length beyond frame_max, an unknown version, a failed
// decode, a frame before the hello, a second hello, or a message whose from/to
// contradict the hello close that connection (bad_frames counts them); a new
// hello from a node closes its older inbound connections.
//
// Sending never suspends: send() encodes the frame into the peer's queue and
// the peer's writer coroutine, woken at the end of the loop turn, writes all
// that is queued with one writev (heartbeats to a peer thus coalesce). Frames
// queued while a write is in flight go out together in the next one.
//
// Outbound links connect lazily, on the first frame queued for the peer, and
// from then on stay up: a failed connect or a broken connection is retried
// after an exponential backoff with jitter (reconnect_min doubling up to
// reconnect_max, each wait drawn from [d/2, d]; back to reconnect_min once a
// connection has stayed up for reconnect_max). A failed connect or a broken
// connection drops what was queued for it (Raft retries); a frame is dropped
// when it would take the peer's queue (with the write in flight) past
// queue_max_bytes, when it is bigger than frame_max, or when its peer is unknown.
//
// Addresses: numeric IPv4 or IPv6 (optionally in brackets), or "localhost",
// which means 127.0.0.1. No name resolution: it would block the shard.
//
// Everything lives on the shard that called start(); no threads, no locks.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/cancel.h"
#include "io/gate.h"
#include "io/net.h"
#include "io/result.h"
#include "io/task.h"
#include "raft/types.h"

namespace xerv::raft {

struct peer_address {
  node_id id;
  std::string host;
  uint16_t port = 0;
};

struct transport_options {
  node_id self;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0: any free port (tests)
  std::chrono::milliseconds reconnect_min{50}, reconnect_max{2000};  // exponential backoff with jitter
  size_t queue_max_bytes = 64u << 20;  // per peer; beyond it messages are dropped (Raft retries)
  uint32_t frame_max = 80u << 20;      // a bigger frame closes the connection
  // Beyond the brief's fields: bounds on the connections and their waits.
  size_t inbound_max = 256;                      // accepted connections; beyond it new ones are closed
  std::chrono::milliseconds connect_timeout{5000};  // a connect attempt (then backoff)
  std::chrono::milliseconds write_timeout{10'000};  // one writev; past it the connection is closed
  std::chrono::milliseconds hello_timeout{5000};    // an accepted connection's first frame
};

class transport {
 public:
  struct handlers {
    std::function<void(message&&)> on_message;                                       // a decoded raft message
    std::function<void(node_id from, uint32_t kind, std::string&& payload)> on_app;  // an application frame
  };

  // Listens now, on the calling shard.
  static io::result<std::unique_ptr<transport>> start(transport_options o, handlers h);
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  uint16_t port() const;
  // Adds, removes and updates peers (self is ignored); connects lazily on the
  // first send. A changed address closes the current connection. A host that
  // is not an accepted address is logged and the peer left out.
  void set_peers(std::vector<peer_address> peers);
  // Never suspend: queue the frame for the peer's writer coroutine, which writes
  // everything queued in one turn with one writev. Unknown peer: dropped.
  // m.from must be this node.
  void send(const message& m);
  void send_app(node_id to, uint32_t kind, std::string_view payload);
  // The outbound connection to `peer` is established.
  bool connected(node_id peer) const;

  struct stats {
    uint64_t frames_sent = 0, frames_received = 0, bytes_sent = 0, bytes_received = 0, dropped = 0, reconnects = 0,
             bad_frames = 0;
    uint64_t writes = 0;  // writev calls of the writers (frames_sent / writes: the coalescing)
  };
  const stats& counters() const { return _stats; }

  // Closes the listener and the connections, and waits for its coroutines.
  io::task<void> stop();

 private:
  struct peer;
  struct inbound;
  transport(transport_options o, handlers h);

  peer* find_peer(node_id id);
  void admit(peer& p, size_t before, size_t body);
  void retire(peer& p);
  io::task<void> accept_loop();
  io::task<void> serve_inbound(io::tcp_connection conn);
  io::result<void> on_frame(inbound& in, std::string_view body);
  io::task<void> peer_loop(peer* p);
  io::task<void> run_connection(peer* p, io::tcp_connection conn);
  io::task<void> watch_connection(io::tcp_connection* conn, io::cancel_source* cs);
  std::chrono::nanoseconds jittered(std::chrono::milliseconds d);

  transport_options _o;
  handlers _h;
  std::unique_ptr<io::tcp_listener> _listener;
  std::map<node_id, std::unique_ptr<peer>> _peers;
  std::vector<std::unique_ptr<peer>> _retired;  // removed, their loops still ending
  inbound* _inbound = nullptr;                  // intrusive list of accepted connections
  size_t _inbound_count = 0;
  io::cancel_source _stop;  // the accept loop's
  io::gate _tasks;
  stats _stats;
  uint64_t _rng;
  bool _stopping = false;
  unsigned _shard;
};

}  // namespace xerv::raft
