// raft/wire and raft/transport: every message field through encode/decode, the
// frame splitter at every boundary, malformed input refused; then transports
// on loopback: messages and app frames both ways in order, a peer restarted on
// its port reconnected, garbage and oversized frames closing only their
// connection, a turn of sends written in one writev, and the queue bound.

#include <gtest/gtest.h>

#include <functional>

#include "io/net.h"
#include "io/ops.h"
#include "raft/transport.h"
#include "raft/wire.h"
#include "tests/run_on.h"

using namespace xerv;
using namespace xerv::raft;
using namespace std::chrono_literals;

namespace raft_transport_test {

message full_message(msg_type t) {
  message m;
  m.type = t;
  m.from = node_id(7);
  m.to = node_id(9);
  m.term = term_t(1ull << 40);
  m.index = index_t(123456789);
  m.log_term = term_t(41);
  m.entries.push_back(entry{term_t(41), index_t(123456790), std::string("data\0with nul", 13), entry_kind::data});
  m.entries.push_back(entry{term_t(42), index_t(123456791), "voters=1,2,3;learners=4", entry_kind::config});
  m.entries.push_back(entry{term_t(42), index_t(123456792), "", entry_kind::data});  // a leader's no-op
  m.commit = index_t(123456000);
  m.granted = true;
  m.heartbeat = true;
  m.transfer = true;
  m.context = ~uint64_t{0};
  m.offset = 65536;
  m.chunk = std::string(100000, 'c') + std::string(1, '\0');
  m.last = true;
  m.config = "voters=7,9;learners=";
  m.match = index_t(123456792);
  return m;
}

void expect_same(const message& a, const message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.term, b.term);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.log_term, b.log_term);
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    EXPECT_EQ(a.entries[i].term, b.entries[i].term) << i;
    EXPECT_EQ(a.entries[i].index, b.entries[i].index) << i;
    EXPECT_EQ(a.entries[i].data, b.entries[i].data) << i;
    EXPECT_EQ(a.entries[i].kind, b.entries[i].kind) << i;
  }
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.granted, b.granted);
  EXPECT_EQ(a.heartbeat, b.heartbeat);
  EXPECT_EQ(a.transfer, b.transfer);
  EXPECT_EQ(a.context, b.context);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.chunk, b.chunk);
  EXPECT_EQ(a.last, b.last);
  EXPECT_EQ(a.config, b.config);
  EXPECT_EQ(a.match, b.match);
}

// Splits `stream` into frames, fed in pieces of `step` bytes; decodes each.
std::vector<wire::frame> split(const std::string& stream, size_t step, uint32_t frame_max = 1u << 24) {
  std::vector<wire::frame> out;
  wire::frame_reader r(frame_max);
  for (size_t at = 0; at < stream.size(); at += step) {
    r.feed(std::string_view(stream).substr(at, step));
    for (;;) {
      auto body = r.next();
      EXPECT_TRUE(body.ok()) << body.error().message();
      if (!body || !*body) break;
      auto f = wire::decode(**body);
      EXPECT_TRUE(f.ok()) << f.error().message();
      if (f) out.push_back(std::move(*f));
    }
  }
  EXPECT_EQ(r.buffered(), 0u);
  return out;
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = char((v >> (8 * i)) & 0xff);
  return s;
}

std::error_code decode_error(std::string_view body) {
  auto f = wire::decode(body);
  return f ? std::error_code() : f.error();
}

// ---- loopback harness ----

// What one transport received, in arrival order.
struct sink {
  std::vector<message> messages;
  std::vector<std::tuple<node_id, uint32_t, std::string>> apps;
  std::vector<std::string> order;  // "m<context>" and "a<payload>"
};

transport::handlers handlers_into(sink* s) {
  transport::handlers h;
  h.on_message = [s](message&& m) {
    s->order.push_back("m" + std::to_string(m.context));
    s->messages.push_back(std::move(m));
  };
  h.on_app = [s](node_id from, uint32_t kind, std::string&& payload) {
    s->order.push_back("a" + payload);
    s->apps.emplace_back(from, kind, std::move(payload));
  };
  return h;
}

transport_options options_for(uint64_t self, uint16_t port = 0) {
  transport_options o;
  o.self = node_id(self);
  o.listen_port = port;
  o.reconnect_min = 5ms;
  o.reconnect_max = 80ms;
  return o;
}

std::unique_ptr<transport> start(transport_options o, sink* s) {
  auto t = transport::start(std::move(o), handlers_into(s));
  EXPECT_TRUE(t.ok()) << t.error().message();
  return t ? std::move(*t) : nullptr;
}

// Polls `done` every millisecond until it holds or `timeout` passes.
io::task<bool> wait_until(std::function<bool()> done, std::chrono::milliseconds timeout) {
  io::cancel_source cs;
  io::deadline d(timeout, cs);
  while (!done()) {
    auto s = io::sleep_for(1ms, &cs);
    auto r = co_await s;
    if (!r) co_return done();
  }
  co_return true;
}

io::task<void> stop_all(transport* a, transport* b) {
  if (a) {
    auto t = a->stop();
    co_await std::move(t);
  }
  if (b) {
    auto t = b->stop();
    co_await std::move(t);
  }
}

message heartbeat(uint64_t from, uint64_t to, uint64_t context) {
  message m;
  m.type = msg_type::append;
  m.from = node_id(from);
  m.to = node_id(to);
  m.term = term_t(3);
  m.heartbeat = true;
  m.context = context;
  return m;
}

// A raw client: connects, writes `bytes`, and reports whether the server
// closed the connection (end of stream or reset) within `timeout`.
io::task<bool> closed_after_writing(uint16_t port, std::string bytes, std::chrono::milliseconds timeout) {
  auto connecting = io::connect(*io::socket_address::parse("127.0.0.1", port));
  auto c = co_await std::move(connecting);
  if (!c) co_return false;
  auto sending = c->send_all(bytes);
  auto sent = co_await std::move(sending);
  bool closed = !sent.ok();  // reset while still writing
  if (!closed) {
    io::cancel_source cs;
    io::deadline d(timeout, cs);
    for (;;) {
      auto t = c->recv(&cs);
      auto got = co_await std::move(t);
      if (!got || got->size() == 0) {
        closed = got.ok() || got.error() != io::errc::timed_out;
        break;
      }
    }
  }
  auto closing = c->close();
  co_await std::move(closing);
  co_return closed;
}

// ---- the scenarios (each returns 0, the EXPECTs tell the rest) ----

io::task<int> exchange_both_ways() {
  sink sa, sb;
  auto a = start(options_for(1), &sa);
  auto b = start(options_for(2), &sb);
  if (!a || !b) co_return 1;
  a->set_peers({{node_id(2), "127.0.0.1", b->port()}, {node_id(1), "127.0.0.1", a->port()}});  // self: ignored
  b->set_peers({{node_id(1), "localhost", a->port()}});
  EXPECT_FALSE(a->connected(node_id(2)));  // lazily: nothing sent yet

  constexpr uint64_t n = 200;
  auto from_b = [](uint64_t i) {
    message m = full_message(msg_type(i % 9));
    m.from = node_id(2);
    m.to = node_id(1);
    m.context = i;
    if (i % 37 != 0) m.chunk.resize(100);
    return m;
  };
  for (uint64_t i = 0; i < n; ++i) {
    a->send(heartbeat(1, 2, i));
    if (i % 10 == 0) a->send_app(node_id(2), 5, "x" + std::to_string(i));
    b->send(from_b(i));
    b->send_app(node_id(1), uint32_t(i), "y" + std::to_string(i));
  }
  a->send(heartbeat(1, 3, 0));  // unknown peer: dropped
  auto waiting = wait_until(
      [&] {
        return sa.messages.size() == n && sa.apps.size() == n && sb.messages.size() == n && sb.apps.size() == n / 10 &&
               a->counters().frames_sent == n + n / 10 && b->counters().frames_sent == 2 * n;
      },
      5s);
  bool got = co_await std::move(waiting);
  EXPECT_TRUE(got) << sa.messages.size() << " " << sa.apps.size() << " " << sb.messages.size() << " " << sb.apps.size();
  EXPECT_TRUE(a->connected(node_id(2)));
  EXPECT_TRUE(b->connected(node_id(1)));

  // Order per peer: exactly as sent, messages and app frames interleaved.
  std::vector<std::string> want_b, want_a;
  for (uint64_t i = 0; i < n; ++i) {
    want_b.push_back("m" + std::to_string(i));
    if (i % 10 == 0) want_b.push_back("ax" + std::to_string(i));
    want_a.push_back("m" + std::to_string(i));
    want_a.push_back("ay" + std::to_string(i));
  }
  EXPECT_EQ(sb.order, want_b);
  EXPECT_EQ(sa.order, want_a);
  for (uint64_t i = 0; i < sa.messages.size(); i += 37) expect_same(sa.messages[i], from_b(i));
  if (sa.apps.size() > 3) {
    EXPECT_EQ(std::get<0>(sa.apps[3]), node_id(2));
    EXPECT_EQ(std::get<1>(sa.apps[3]), 3u);
  }
  if (!sb.apps.empty()) {
    EXPECT_EQ(std::get<0>(sb.apps[0]), node_id(1));
    EXPECT_EQ(std::get<1>(sb.apps[0]), 5u);
  }
  EXPECT_EQ(b->counters().frames_received, n + n / 10);
  EXPECT_EQ(a->counters().frames_received, 2 * n);
  EXPECT_EQ(a->counters().dropped, 1u);
  EXPECT_EQ(b->counters().dropped, 0u);
  EXPECT_EQ(a->counters().bad_frames + b->counters().bad_frames, 0u);
  EXPECT_EQ(b->counters().bytes_received, a->counters().bytes_sent);
  auto stopping = stop_all(a.get(), b.get());
  co_await std::move(stopping);
  co_return 0;
}

io::task<int> restarted_peer_is_reconnected() {
  sink sa, sb1, sb2;
  auto a = start(options_for(1), &sa);
  auto b = start(options_for(2), &sb1);
  if (!a || !b) co_return 1;
  uint16_t b_port = b->port();
  a->set_peers({{node_id(2), "127.0.0.1", b_port}});
  a->send(heartbeat(1, 2, 1));
  auto w1 = wait_until([&] { return sb1.messages.size() == 1; }, 5s);
  bool first = co_await std::move(w1);
  EXPECT_TRUE(first);

  auto stopping = b->stop();
  co_await std::move(stopping);
  b.reset();
  auto w2 = wait_until([&] { return !a->connected(node_id(2)); }, 5s);
  bool noticed = co_await std::move(w2);
  EXPECT_TRUE(noticed) << "the broken connection was not noticed";
  // Frames for a peer that is down go with the next connect attempt, which fails.
  for (uint64_t i = 0; i < 5; ++i) a->send(heartbeat(1, 2, 100 + i));
  uint64_t attempts = a->counters().reconnects;
  auto w3 = wait_until([&] { return a->counters().reconnects >= attempts + 2; }, 5s);
  bool retried = co_await std::move(w3);
  EXPECT_TRUE(retried) << "no retries while the peer was down";
  EXPECT_GE(a->counters().dropped, 5u);

  b = start(options_for(2, b_port), &sb2);
  if (!b) {
    auto s = stop_all(a.get(), nullptr);
    co_await std::move(s);
    co_return 1;
  }
  // Raft resends: keep sending until one arrives through the new connection.
  uint64_t next = 1000;
  auto w4 = wait_until(
      [&] {
        a->send(heartbeat(1, 2, next++));
        return !sb2.messages.empty();
      },
      5s);
  bool back = co_await std::move(w4);
  EXPECT_TRUE(back) << "not reconnected after the peer restarted";
  EXPECT_TRUE(a->connected(node_id(2)));
  if (!sb2.messages.empty()) {
    EXPECT_GE(sb2.messages.front().context, 1000u);
  }
  // From then on, in order with no gaps.
  for (int i = 0; i < 10; ++i) a->send(heartbeat(1, 2, next++));
  auto w5 = wait_until([&] { return !sb2.messages.empty() && sb2.messages.back().context == next - 1; }, 5s);
  bool rest = co_await std::move(w5);
  EXPECT_TRUE(rest);
  for (size_t i = 1; i < sb2.messages.size(); ++i) EXPECT_EQ(sb2.messages[i].context, sb2.messages[i - 1].context + 1);
  auto s = stop_all(a.get(), b.get());
  co_await std::move(s);
  co_return 0;
}

io::task<int> bad_input_closes_only_its_connection() {
  sink sa, sb;
  auto a = start(options_for(1), &sa);
  auto b = start(options_for(2), &sb);
  if (!a || !b) co_return 1;
  a->set_peers({{node_id(2), "127.0.0.1", b->port()}});
  a->send(heartbeat(1, 2, 0));
  auto w1 = wait_until([&] { return sb.messages.size() == 1; }, 5s);
  bool first = co_await std::move(w1);
  EXPECT_TRUE(first);

  std::string hello;
  wire::append_hello(hello, wire::hello{wire::protocol_version, node_id(5), node_id(2)});
  std::string newer;
  wire::append_hello(newer, wire::hello{wire::protocol_version + 1, node_id(5), node_id(2)});
  std::string misdirected;
  wire::append_hello(misdirected, wire::hello{wire::protocol_version, node_id(5), node_id(3)});
  std::string early;
  wire::append_app(early, 1, "before the hello");
  std::string impostor;  // a message claiming another sender than its hello
  wire::append_message(impostor, heartbeat(6, 2, 0));
  const std::vector<std::string> cases = {
      std::string("\x05\x00\x00\x00\xff\xff\xff\xff\xff", 9),  // garbage body
      le32(80u << 20 | 1),                                     // a length past frame_max
      le32(1000) + std::string(1000, '\0'),                    // a first frame too big for a hello
      hello + le32(80u << 20 | 1),                             // the same after a good hello
      hello + le32(4) + "\x12\x02\x08\x63",                    // a message of an unknown type
      newer,
      misdirected,
      early,
      hello + hello,
      hello + impostor,
  };
  uint64_t bad = 0;
  for (const std::string& bytes : cases) {
    auto writing = closed_after_writing(b->port(), bytes, 2s);
    bool closed = co_await std::move(writing);
    EXPECT_TRUE(closed) << "case " << bad;
    ++bad;
    auto w = wait_until([&] { return b->counters().bad_frames == bad; }, 2s);
    bool counted = co_await std::move(w);
    EXPECT_TRUE(counted) << "case " << bad - 1 << ": bad_frames " << b->counters().bad_frames;
  }
  EXPECT_TRUE(sb.apps.empty());
  EXPECT_EQ(sb.messages.size(), 1u);

  // A raw client with a good hello is served, alongside.
  auto connecting = io::connect(*io::socket_address::parse("127.0.0.1", b->port()));
  auto c = co_await std::move(connecting);
  EXPECT_TRUE(c.ok());
  if (c) {
    std::string bytes = hello;
    wire::append_app(bytes, 9, "raw");
    auto sending = c->send_all(bytes);
    auto sent = co_await std::move(sending);
    EXPECT_TRUE(sent.ok());
    auto w = wait_until([&] { return sb.apps.size() == 1; }, 2s);
    bool got = co_await std::move(w);
    EXPECT_TRUE(got);
    if (got) {
      EXPECT_EQ(std::get<0>(sb.apps[0]), node_id(5));
    }
    auto closing = c->close();
    co_await std::move(closing);
  }
  // And the real peer's connection was never disturbed.
  a->send(heartbeat(1, 2, 1));
  auto w2 = wait_until([&] { return sb.messages.size() == 2; }, 5s);
  bool still = co_await std::move(w2);
  EXPECT_TRUE(still);
  EXPECT_EQ(a->counters().reconnects, 0u);
  EXPECT_EQ(b->counters().bad_frames, bad);
  auto s = stop_all(a.get(), b.get());
  co_await std::move(s);
  co_return 0;
}

io::task<int> one_turn_is_one_write() {
  sink sa, sb;
  auto a = start(options_for(1), &sa);
  auto b = start(options_for(2), &sb);
  if (!a || !b) co_return 1;
  a->set_peers({{node_id(2), "127.0.0.1", b->port()}});
  a->send(heartbeat(1, 2, 0));
  auto w1 = wait_until([&] { return sb.messages.size() == 1 && a->counters().frames_sent == 1; }, 5s);
  bool up = co_await std::move(w1);
  EXPECT_TRUE(up);
  uint64_t writes = a->counters().writes, frames = a->counters().frames_sent;

  constexpr uint64_t n = 1000;
  for (uint64_t i = 1; i <= n; ++i) a->send(heartbeat(1, 2, i));
  auto w2 = wait_until([&] { return sb.messages.size() == n + 1 && a->counters().frames_sent == n + 1; }, 5s);
  bool all = co_await std::move(w2);
  EXPECT_TRUE(all) << sb.messages.size();
  EXPECT_EQ(a->counters().frames_sent - frames, n);
  EXPECT_EQ(a->counters().writes - writes, 1u) << "a turn of sends took several writes";
  auto s = stop_all(a.get(), b.get());
  co_await std::move(s);
  co_return 0;
}

io::task<int> queue_bound_drops() {
  sink sa, sb;
  auto o = options_for(1);
  o.queue_max_bytes = 64 << 10;
  auto a = start(o, &sa);
  auto b = start(options_for(2), &sb);
  if (!a || !b) co_return 1;
  a->set_peers({{node_id(2), "127.0.0.1", b->port()}});
  std::string payload(10 << 10, 'p');
  for (int i = 0; i < 20; ++i) a->send_app(node_id(2), uint32_t(i), payload);  // 200 KiB into 64 KiB
  auto w = wait_until([&] { return sb.apps.size() + a->counters().dropped == 20; }, 5s);
  bool got = co_await std::move(w);
  EXPECT_TRUE(got);
  EXPECT_EQ(sb.apps.size(), 6u);  // 6 x (10 KiB + framing) fit in 64 KiB
  EXPECT_EQ(a->counters().dropped, 14u);
  for (size_t i = 0; i < sb.apps.size(); ++i) EXPECT_EQ(std::get<1>(sb.apps[i]), i);
  auto s = stop_all(a.get(), b.get());
  co_await std::move(s);
  co_return 0;
}

io::task<int> peers_change() {
  sink sa, sb, sc;
  auto a = start(options_for(1), &sa);
  auto b = start(options_for(2), &sb);
  auto c = start(options_for(2), &sc);  // node 2 moved to another address
  if (!a || !b || !c) co_return 1;
  a->set_peers({{node_id(2), "127.0.0.1", b->port()}});
  a->send(heartbeat(1, 2, 1));
  auto w1 = wait_until([&] { return sb.messages.size() == 1; }, 5s);
  bool first = co_await std::move(w1);
  EXPECT_TRUE(first);

  a->set_peers({{node_id(2), "::1", c->port()}});  // c listens on 127.0.0.1 only: refused
  a->set_peers({{node_id(2), "localhost", c->port()}});
  uint64_t next = 2;
  auto w2 = wait_until(
      [&] {
        a->send(heartbeat(1, 2, next++));
        return !sc.messages.empty();
      },
      5s);
  bool moved = co_await std::move(w2);
  EXPECT_TRUE(moved) << "frames did not follow the new address";
  EXPECT_EQ(sb.messages.size(), 1u);

  a->set_peers({{node_id(2), "not-an-ip.example", 1}});  // refused: removes the peer
  uint64_t dropped = a->counters().dropped;
  a->send(heartbeat(1, 2, 999));
  EXPECT_EQ(a->counters().dropped, dropped + 1);
  EXPECT_FALSE(a->connected(node_id(2)));
  auto s1 = stop_all(a.get(), b.get());
  co_await std::move(s1);
  auto s2 = stop_all(c.get(), nullptr);
  co_await std::move(s2);
  co_return 0;
}

}  // namespace raft_transport_test

using namespace raft_transport_test;

TEST(raft_transport_wire, every_message_field_round_trips) {
  std::string stream;
  std::vector<message> sent;
  for (int t = 0; t <= int(msg_type::snapshot_reply); ++t) {
    sent.push_back(full_message(msg_type(t)));
    size_t body = wire::append_message(stream, sent.back());
    EXPECT_GT(body, 100000u);
  }
  message empty;  // every field at its default
  sent.push_back(empty);
  wire::append_message(stream, empty);
  wire::append_hello(stream, wire::hello{wire::protocol_version, node_id(3), node_id(4)});
  wire::append_app(stream, 77, std::string("app\0payload", 11));

  auto frames = split(stream, stream.size());
  ASSERT_EQ(frames.size(), sent.size() + 2);
  for (size_t i = 0; i < sent.size(); ++i) {
    auto* m = std::get_if<message>(&frames[i]);
    ASSERT_NE(m, nullptr) << i;
    expect_same(*m, sent[i]);
  }
  auto* h = std::get_if<wire::hello>(&frames[sent.size()]);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->version, wire::protocol_version);
  EXPECT_EQ(h->from, node_id(3));
  EXPECT_EQ(h->to, node_id(4));
  auto* a = std::get_if<wire::app>(&frames[sent.size() + 1]);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->kind, 77u);
  EXPECT_EQ(a->payload, std::string("app\0payload", 11));
}

TEST(raft_transport_wire, reader_splits_at_every_boundary) {
  std::string stream;
  for (uint64_t i = 0; i < 5; ++i) wire::append_message(stream, heartbeat(1, 2, i));
  wire::append_app(stream, 1, std::string(40000, 'z'));  // spans several receives
  wire::append_app(stream, 2, "");
  for (size_t step : {size_t(1), size_t(2), size_t(3), size_t(5), size_t(7), size_t(4096), stream.size()}) {
    auto frames = split(stream, step);
    ASSERT_EQ(frames.size(), 7u) << "step " << step;
    for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(std::get<message>(frames[i]).context, i) << "step " << step;
    EXPECT_EQ(std::get<wire::app>(frames[5]).payload.size(), 40000u);
    EXPECT_EQ(std::get<wire::app>(frames[6]).kind, 2u);
  }
}

TEST(raft_transport_wire, refuses_bad_frames) {
  // Lengths past the limit, whether whole or split before the prefix completes.
  wire::frame_reader r(100);
  std::string big = le32(101) + "x";
  r.feed(std::string_view(big).substr(0, 2));
  auto first = r.next();
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->has_value());
  r.feed(std::string_view(big).substr(2));
  EXPECT_EQ(r.next().error(), wire::errc::frame_too_big);
  wire::frame_reader r2(100);
  r2.feed(big);
  EXPECT_EQ(r2.next().error(), wire::errc::frame_too_big);
  wire::frame_reader r3(100);
  std::string at_limit = le32(100);
  r3.feed(at_limit);
  auto fine = r3.next();
  EXPECT_TRUE(fine.ok() && !fine->has_value());  // exactly the limit: waits for its body

  EXPECT_EQ(decode_error(""), wire::errc::empty_frame);
  EXPECT_EQ(decode_error(std::string("\xff\xff\xff\xff\xff", 5)), wire::errc::malformed);
  EXPECT_EQ(decode_error("\x12\x02\x08\x63"), wire::errc::bad_value);  // message type 99
  EXPECT_EQ(decode_error("\x12\x04\x3a\x02\x20\x05"), wire::errc::bad_value);  // entry kind 5
  EXPECT_FALSE(decode_error("\x12\x02\x08\x08"));  // type 8 (snapshot_reply) is fine
  // A field this version does not know is skipped (a newer peer may add some).
  EXPECT_FALSE(decode_error("\x12\x03\xa8\x06\x01"));  // Message field 101
}

TEST(raft_transport, exchanges_messages_and_app_frames_both_ways_in_order) {
  EXPECT_EQ(xerv::testing::run_on(1, exchange_both_ways()), 0);
}

TEST(raft_transport, reconnects_to_a_restarted_peer) {
  EXPECT_EQ(xerv::testing::run_on(1, restarted_peer_is_reconnected()), 0);
}

TEST(raft_transport, bad_input_closes_only_that_connection) {
  EXPECT_EQ(xerv::testing::run_on(1, bad_input_closes_only_its_connection()), 0);
}

TEST(raft_transport, coalesces_a_turn_of_sends_into_one_write) {
  EXPECT_EQ(xerv::testing::run_on(1, one_turn_is_one_write()), 0);
}

TEST(raft_transport, drops_beyond_the_queue_bound) { EXPECT_EQ(xerv::testing::run_on(1, queue_bound_drops()), 0); }

TEST(raft_transport, follows_changed_addresses_and_forgets_removed_peers) {
  EXPECT_EQ(xerv::testing::run_on(1, peers_change()), 0);
}
