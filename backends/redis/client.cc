#include "backends/redis/client.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>

#include "core/dispatch.h"
#include "io/log.h"
#include "io/ops.h"

namespace xerv::backends::redis {

namespace {

io::result<reply> unavailable() { return core::make_error_code(core::dispatch_errc::unavailable); }

reply convert(const redisReply* r) {
  reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = reply::kind::string; break;
    case REDIS_REPLY_STATUS: out.type = reply::kind::status; break;
    case REDIS_REPLY_ERROR: out.type = reply::kind::error; break;
    case REDIS_REPLY_INTEGER: out.type = reply::kind::integer; break;
    case REDIS_REPLY_ARRAY: out.type = reply::kind::array; break;
    default: out.type = reply::kind::nil; break;
  }
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
    out.str.assign(r->str, r->len);
  out.integer = r->integer;
  if (r->type == REDIS_REPLY_ARRAY) {
    out.elements.reserve(r->elements);
    for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
  }
  return out;
}

// %XX in a URL's user info (a password may hold '@' or ':').
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= in.size() || std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16).ptr != in.data() + i + 3)
      return false;
    out += char(v);
    i += 2;
  }
  return true;
}

template <class T>
bool parse_number(std::string_view s, T& v, T max) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && v <= max;
}

}  // namespace

io::result<url> url::parse(std::string_view s, std::string* why) {
  auto bad = [why](std::string m) -> io::result<url> {
    if (why) *why = std::move(m);
    return std::make_error_code(std::errc::invalid_argument);
  };
  constexpr std::string_view scheme = "redis://";
  if (s.substr(0, scheme.size()) != scheme) return bad("must start with redis:// (TLS, rediss://, is not supported)");
  s.remove_prefix(scheme.size());
  url u;
  if (size_t at = s.rfind('@'); at != std::string_view::npos) {
    std::string_view info = s.substr(0, at);
    s.remove_prefix(at + 1);
    size_t colon = info.find(':');
    // "user:password", ":password", or a bare password (Redis before 6 has no users).
    std::string_view user = colon == std::string_view::npos ? std::string_view() : info.substr(0, colon);
    std::string_view pass = colon == std::string_view::npos ? info : info.substr(colon + 1);
    if (!percent_decode(user, u.user) || !percent_decode(pass, u.password)) return bad("bad %-escape in the user info");
    if (u.password.empty()) return bad("an empty password");
  }
  std::string_view hostport = s.substr(0, s.find('/'));
  std::string_view path = hostport.size() < s.size() ? s.substr(hostport.size() + 1) : std::string_view();
  std::string_view port;
  if (!hostport.empty() && hostport.front() == '[') {  // [v6]:port
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 host without its ']'");
    u.host = std::string(hostport.substr(1, close - 1));
    std::string_view rest = hostport.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return bad("junk after the IPv6 host");
    if (!rest.empty()) port = rest.substr(1);
  } else {
    size_t colon = hostport.find(':');
    u.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
  }
  if (u.host.empty()) return bad("no host");
  if (hostport.find(':') != std::string_view::npos && port.empty()) return bad("an empty port");
  if (!port.empty() && (!parse_number<uint16_t>(port, u.port, 65535) || u.port == 0)) return bad("port must be 1-65535");
  if (!path.empty() && !parse_number<unsigned>(path, u.db, 1u << 20)) return bad("the database must be a number");
  return u;
}

client::client(client_options o) : _o(std::move(o)) {}

client::~client() {
  ASSERT(_slots.empty() || std::all_of(_slots.begin(), _slots.end(), [](const slot& s) { return s.done; }),
         "redis client destroyed with calls in flight");
  if (_parser) redisReaderFree(_parser);
}

void client::start() { (void)io::spawn(_gate, run()); }

io::task<void> client::stop() {
  _stop.cancel(io::errc::closed);
  if (_current) _current->cancel(io::errc::closed);
  _ready_event.notify();
  auto closing = _gate.close();
  co_await std::move(closing);
  fail_all();
}

io::task<bool> client::wait_connected(std::chrono::milliseconds limit) {
  io::cancel_source cs;
  io::deadline d(limit, cs);
  while (!_ready && !cs.cancelled() && !_stop.cancelled()) {
    auto w = _ready_event.wait(cs);
    co_await w;
  }
  co_return _ready;
}

io::task<io::result<reply>> client::call(std::initializer_list<std::string_view> args,
                                         std::chrono::milliseconds blocks) {
  if (!_ready) return io::make_ready_task(unavailable());
  return await_slot(claim(this, enqueue(args, blocks)));
}

io::task<io::result<reply>> client::call(const std::vector<std::string_view>& args, std::chrono::milliseconds blocks) {
  if (!_ready) return io::make_ready_task(unavailable());
  return await_slot(claim(this, enqueue(args, blocks)));
}

template <class Args>
uint64_t client::enqueue(const Args& args, std::chrono::milliseconds blocks) {
  // RESP: an array of bulk strings.
  char head[24];
  auto count = [&head](char kind, size_t n) {
    head[0] = kind;
    char* end = std::to_chars(head + 1, head + sizeof head - 2, n).ptr;
    *end++ = '\r';
    *end++ = '\n';
    return std::string_view(head, size_t(end - head));
  };
  _out += count('*', args.size());
  for (std::string_view a : args) {
    _out += count('$', a.size());
    _out += a;
    _out += "\r\n";
  }
  slot& s = _slots.emplace_back();
  s.seq = _next_seq++;
  s.due_ns = io::monotonic_ns() + uint64_t(std::chrono::nanoseconds(_o.reply_timeout + blocks).count());
  ++_stats.commands;
  _wrote.notify();
  return s.seq;
}

client::slot* client::find(uint64_t seq) {
  if (_slots.empty() || seq < _slots.front().seq || seq - _slots.front().seq >= _slots.size()) return nullptr;
  return &_slots[seq - _slots.front().seq];
}

io::task<io::result<reply>> client::await_slot(claim k) {
  slot* s = find(k.seq);
  ASSERT(s, "redis call %llu awaited twice", static_cast<unsigned long long>(k.seq));
  while (!s->done) {
    auto w = s->answered.wait(_never);
    co_await w;
  }
  co_return std::move(s->result);
}

void client::release(uint64_t seq) {
  if (slot* s = find(seq)) s->taken = true;
  while (!_slots.empty() && _slots.front().taken && _slots.front().done) _slots.pop_front();
}

bool client::answer(io::result<reply> r) {
  slot* s = find(_answered + 1);
  if (!s) return false;  // a reply nobody asked for: the stream is out of step
  ++_answered;
  s->done = true;
  s->result = std::move(r);
  s->answered.notify();
  release(0);  // a slot whose caller went away leaves once answered
  return true;
}

void client::down(io::cancel_source* cs) {
  _ready = false;
  cs->cancel(io::errc::closed);
  fail_all();  // a handshake in progress hears it too
}

void client::fail_all() {
  _out.clear();  // not sent: failed like the rest
  while (_answered + 1 < _next_seq) answer(unavailable());
}

std::chrono::nanoseconds client::jittered(std::chrono::milliseconds d) {
  // xorshift64*: half to all of d.
  _rng ^= _rng >> 12;
  _rng ^= _rng << 25;
  _rng ^= _rng >> 27;
  uint64_t r = _rng * 0x2545f4914f6cdd1dull;
  auto ns = uint64_t(std::chrono::nanoseconds(d).count());
  return std::chrono::nanoseconds(ns / 2 + r % (ns - ns / 2 + 1));
}

io::task<void> client::run() {
  auto backoff = _o.reconnect_min;
  auto addr = io::socket_address::parse(_o.where.host, _o.where.port);
  if (!addr) {
    XLOG(error, "redis: %s is not a numeric address; the client stays down", _o.where.host.c_str());
    co_return;
  }
  std::string last_error;
  while (!_stop.cancelled()) {
    io::result<io::tcp_connection> c = io::errc::closed;
    {
      io::cancel_source cs;
      _current = &cs;
      io::deadline d(_o.connect_timeout, cs);
      auto connecting = io::connect(*addr, &cs);
      c = co_await std::move(connecting);
      _current = nullptr;
    }
    std::string error;
    uint64_t connects = _stats.connects;
    if (c && !_stop.cancelled()) {
      uint64_t up_ns = io::monotonic_ns();
      auto serving = serve(std::move(*c), error);
      co_await std::move(serving);
      if (io::monotonic_ns() - up_ns >= uint64_t(std::chrono::nanoseconds(_o.reconnect_max).count()))
        backoff = _o.reconnect_min;
    } else if (c) {
      auto closing = c->close();
      co_await std::move(closing);
    } else {
      error = "connect: " + c.error().message();
    }
    if (_stop.cancelled()) break;
    ++_stats.failures;
    if (_stats.connects != connects) last_error.clear();  // it was up: say why it went down
    // Said once per kind of failure, not at every retry.
    if (error != last_error)
      XLOG(warn, "redis %s:%u: %s; retrying with backoff", _o.where.host.c_str(), unsigned(_o.where.port),
           error.c_str());
    last_error = error;
    auto sleeping = io::sleep_for(jittered(backoff), &_stop);
    (void)co_await sleeping;
    backoff = std::min(backoff * 2, _o.reconnect_max);
  }
}

io::task<void> client::serve(io::tcp_connection conn, std::string& error) {
  io::cancel_source cs;
  _current = &cs;
  _parser = redisReaderCreate();
  io::gate tasks;
  (void)io::spawn(tasks, reader(&conn, &cs, &error));
  (void)io::spawn(tasks, writer(&conn, &cs, &error));
  (void)io::spawn(tasks, watchdog(&cs, &error));
  auto greeting = handshake(error);
  if (co_await std::move(greeting)) {
    ++_stats.connects;
    _ready = true;
    _ready_event.notify();
    XLOG(info, "redis %s:%u: connected (db %u)", _o.where.host.c_str(), unsigned(_o.where.port), _o.where.db);
  } else {
    cs.cancel(io::errc::closed);
  }
  // Until the reader, the writer or the watchdog gives up, or stop().
  io::event never;
  while (!cs.cancelled()) {
    auto w = never.wait(cs);
    co_await w;
  }
  _ready = false;
  fail_all();
  auto draining = tasks.close();
  co_await std::move(draining);
  auto closing = conn.close();
  co_await std::move(closing);
  redisReaderFree(std::exchange(_parser, nullptr));
  _current = nullptr;
  if (error.empty() && !_stop.cancelled()) error = "the connection closed";
}

io::task<bool> client::handshake(std::string& error) {
  std::string db = std::to_string(_o.where.db);
  std::vector<uint64_t> seqs;
  if (!_o.where.password.empty()) {
    if (_o.where.user.empty()) seqs.push_back(enqueue(std::initializer_list<std::string_view>{"AUTH", _o.where.password}, {}));
    else seqs.push_back(enqueue(std::initializer_list<std::string_view>{"AUTH", _o.where.user, _o.where.password}, {}));
  }
  if (_o.where.db) seqs.push_back(enqueue(std::initializer_list<std::string_view>{"SELECT", db}, {}));
  seqs.push_back(enqueue(std::initializer_list<std::string_view>{"CLIENT", "SETNAME", _o.name}, {}));
  bool ok = true;
  for (uint64_t s : seqs) {
    auto waiting = await_slot(claim(this, s));
    io::result<reply> r = co_await std::move(waiting);
    if (ok && r && r->is_error()) error = r->str;  // WRONGPASS, NOAUTH, ERR DB index is out of range
    ok = ok && r && !r->is_error();
  }
  co_return ok;
}

io::task<void> client::reader(io::tcp_connection* conn, io::cancel_source* cs, std::string* error) {
  while (!cs->cancelled()) {
    auto receiving = conn->recv(cs);
    auto got = co_await std::move(receiving);
    if (!got || got->size() == 0) {
      if (!got && !cs->cancelled()) *error = "receive: " + got.error().message();
      break;
    }
    if (redisReaderFeed(_parser, got->data(), got->size()) != REDIS_OK) {
      *error = "out of memory parsing a reply";
      break;
    }
    void* r = nullptr;
    bool in_step = true;
    while (in_step) {
      if (redisReaderGetReply(_parser, &r) != REDIS_OK) {
        *error = std::string("protocol error: ") + _parser->errstr;
        in_step = false;
        break;
      }
      if (!r) break;
      reply x = convert(static_cast<redisReply*>(r));
      freeReplyObject(r);
      if (!answer(std::move(x))) {
        *error = "a reply nobody asked for";
        in_step = false;
      }
    }
    if (!in_step) break;
  }
  down(cs);
}

io::task<void> client::writer(io::tcp_connection* conn, io::cancel_source* cs, std::string* error) {
  std::string sending;
  while (!cs->cancelled()) {
    if (_out.empty()) {
      auto w = _wrote.wait(*cs);
      co_await w;
      continue;
    }
    // Everything the shard queued meanwhile, in one send.
    sending.clear();
    sending.swap(_out);
    ++_stats.sends;
    auto sending_all = conn->send_all(sending, cs);
    auto sent = co_await std::move(sending_all);
    if (!sent) {
      if (!cs->cancelled()) *error = "send: " + sent.error().message();
      break;
    }
  }
  down(cs);
}

io::task<void> client::watchdog(io::cancel_source* cs, std::string* error) {
  auto period = std::clamp(_o.reply_timeout / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  while (!cs->cancelled()) {
    auto sleeping = io::sleep_for(period, cs);
    (void)co_await sleeping;
    const slot* s = find(_answered + 1);
    if (s && io::monotonic_ns() > s->due_ns) {
      *error = "no reply within " + std::to_string(_o.reply_timeout.count()) + " ms";
      down(cs);
    }
  }
}

}  // namespace xerv::backends::redis
