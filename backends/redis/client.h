#pragma once
// A Redis client on the shard's ring (RESP2). Commands are pipelined: every
// command a shard issues in one turn goes out in one send, and the replies
// are matched to their callers in order. Replies are parsed by libhiredis's
// reader; the socket I/O is io/net's, on io_uring (README.md says why not
// hiredis's async API). The client connects (AUTH, SELECT, CLIENT SETNAME),
// and after a failure reconnects with exponential backoff; while it is not
// connected, calls fail at once with dispatch_errc::unavailable, and so do
// the calls in flight when a connection drops (their effect is unknown: the
// command may or may not have run). A reply that does not come within
// reply_timeout (plus the time a blocking command may take) drops the
// connection as dead.
//
// Lives on the shard that created it; only that shard calls it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/cancel.h"
#include "io/event.h"
#include "io/gate.h"
#include "io/net.h"
#include "io/result.h"
#include "io/task.h"

struct redisReader;

namespace xerv::backends::redis {

// redis://[[user]:password@]host[:port][/db]; the host numeric (resolved by
// the caller: name resolution would block a shard).
struct url {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  std::string user, password;  // AUTH [user] password, when a password is set
  unsigned db = 0;
  // Errors say what is wrong with `s` (std::errc::invalid_argument).
  static io::result<url> parse(std::string_view s, std::string* why = nullptr);
};

// One reply, copied out of hiredis's (which frees its own at once).
struct reply {
  enum class kind : uint8_t { nil, status, error, integer, string, array };
  kind type = kind::nil;
  std::string str;  // status, error, string
  long long integer = 0;
  std::vector<reply> elements;  // array

  bool is_error() const { return type == kind::error; }
  bool is_nil() const { return type == kind::nil; }
  bool is_ok() const { return type == kind::status && str == "OK"; }
};

struct client_options {
  url where;
  std::string name = "xerv";  // CLIENT SETNAME
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds reply_timeout{5000};
  std::chrono::milliseconds reconnect_min{50};
  std::chrono::milliseconds reconnect_max{5000};
};

struct client_stats {
  uint64_t connects = 0;    // connections made (the first included)
  uint64_t failures = 0;    // connect attempts or connections that failed
  uint64_t commands = 0;    // commands sent
  uint64_t sends = 0;       // sends (one per turn with commands)
};

class client {
 public:
  explicit client(client_options o);
  ~client();  // after stop()
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Starts connecting (in the background).
  void start();
  // Closes the connection; calls in flight fail with unavailable.
  io::task<void> stop();

  bool connected() const { return _ready; }
  // Until connected, or `limit` passes (false), or stop().
  io::task<bool> wait_connected(std::chrono::milliseconds limit);

  // Sends one command (its arguments are copied at once) and completes with
  // its reply; a Redis error is a reply of kind error. `blocks` is how long
  // the command itself may wait in Redis (XREADGROUP BLOCK, WAIT): added to
  // reply_timeout for this reply.
  io::task<io::result<reply>> call(std::initializer_list<std::string_view> args,
                                   std::chrono::milliseconds blocks = {});
  io::task<io::result<reply>> call(const std::vector<std::string_view>& args, std::chrono::milliseconds blocks = {});

  const client_stats& stats() const { return _stats; }
  const client_options& options() const { return _o; }

 private:
  struct slot {
    uint64_t seq = 0;
    uint64_t due_ns = 0;  // the reply is late after this
    bool done = false;
    bool taken = false;  // its caller is done with it
    io::result<reply> result = reply{};
    io::event answered;
  };

  // A caller's hold on its slot: released when the call's task goes, awaited
  // or not (a task dropped unawaited must not pin the slots behind it).
  struct claim {
    client* c = nullptr;
    uint64_t seq = 0;
    claim(client* owner, uint64_t s) : c(owner), seq(s) {}
    claim(claim&& o) noexcept : c(std::exchange(o.c, nullptr)), seq(o.seq) {}
    claim(const claim&) = delete;
    ~claim() {
      if (c) c->release(seq);
    }
  };
  template <class Args>
  uint64_t enqueue(const Args& args, std::chrono::milliseconds blocks);
  io::task<io::result<reply>> await_slot(claim k);
  void release(uint64_t seq);
  slot* find(uint64_t seq);
  bool answer(io::result<reply> r);  // false: a reply nobody asked for
  void fail_all();
  void down(io::cancel_source* cs);  // the connection is lost: calls in flight fail
  std::chrono::nanoseconds jittered(std::chrono::milliseconds d);

  io::task<void> run();
  // One connection, until it fails or stop(); `error` says why it ended.
  io::task<void> serve(io::tcp_connection conn, std::string& error);
  io::task<bool> handshake(std::string& error);
  io::task<void> reader(io::tcp_connection* conn, io::cancel_source* cs, std::string* error);
  io::task<void> writer(io::tcp_connection* conn, io::cancel_source* cs, std::string* error);
  io::task<void> watchdog(io::cancel_source* cs, std::string* error);

  client_options _o;
  client_stats _stats;
  bool _ready = false;
  std::string _out;      // encoded commands not sent yet
  std::deque<slot> _slots;
  uint64_t _next_seq = 1;
  uint64_t _answered = 0;  // the highest seq answered
  redisReader* _parser = nullptr;
  io::event _wrote;      // _out has bytes
  io::event _ready_event;
  io::cancel_source _stop;
  io::cancel_source* _current = nullptr;  // the connect attempt's or the connection's
  io::cancel_source _never;
  io::gate _gate;
  uint64_t _rng = 0x9e3779b97f4a7c15ull;
};

}  // namespace xerv::backends::redis
