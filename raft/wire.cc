#include "raft/wire.h"

#include <climits>
#include <cstring>

#include "io/assert.h"
#include "raft/raft.pb.h"

namespace xerv::raft::wire {

static_assert(static_cast<int>(msg_type::pre_vote) == pb::PRE_VOTE);
static_assert(static_cast<int>(msg_type::append) == pb::APPEND);
static_assert(static_cast<int>(msg_type::snapshot_reply) == pb::SNAPSHOT_REPLY);
static_assert(pb::MsgType_MAX == pb::SNAPSHOT_REPLY, "a message type the transport does not know");
static_assert(static_cast<int>(entry_kind::data) == pb::ENTRY_DATA);
static_assert(static_cast<int>(entry_kind::config) == pb::ENTRY_CONFIG);
static_assert(pb::EntryKind_MAX == pb::ENTRY_CONFIG, "an entry kind the transport does not know");

namespace {

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "raft-wire"; }
  std::string message(int e) const override {
    switch (errc(e)) {
      case errc::frame_too_big: return "frame longer than the limit";
      case errc::malformed: return "malformed frame";
      case errc::empty_frame: return "frame without a body";
      case errc::bad_value: return "field out of range";
      case errc::bad_version: return "unknown transport protocol version";
      case errc::bad_hello: return "hello without a sender or for another node";
      case errc::unexpected_hello: return "second hello on a connection";
      case errc::missing_hello: return "frame before the hello";
      case errc::wrong_sender: return "message sender or recipient differs from the hello";
    }
    return "unknown wire error";
  }
};

void put_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t get_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

size_t append_frame(std::string& out, const pb::Frame& f) {
  size_t body = f.ByteSizeLong();
  ASSERT(body <= UINT32_MAX, "frame of %zu bytes", body);
  size_t at = out.size();
  out.resize(at + prefix_bytes + body);
  put_le32(out.data() + at, static_cast<uint32_t>(body));
  auto* p = reinterpret_cast<uint8_t*>(out.data() + at + prefix_bytes);
  uint8_t* end = f.SerializeWithCachedSizesToArray(p);
  ASSERT(end == p + body, "protobuf wrote %zu bytes of %zu", size_t(end - p), body);
  return body;
}

void to_proto(const message& m, pb::Message* out) {
  out->set_type(static_cast<pb::MsgType>(m.type));
  out->set_from(m.from.value);
  out->set_to(m.to.value);
  out->set_term(m.term.value);
  out->set_index(m.index.value);
  out->set_log_term(m.log_term.value);
  out->mutable_entries()->Reserve(static_cast<int>(m.entries.size()));
  for (const entry& e : m.entries) {
    pb::Entry* pe = out->add_entries();
    pe->set_term(e.term.value);
    pe->set_index(e.index.value);
    pe->set_data(e.data);
    pe->set_kind(static_cast<pb::EntryKind>(e.kind));
  }
  out->set_commit(m.commit.value);
  out->set_granted(m.granted);
  out->set_heartbeat(m.heartbeat);
  out->set_transfer(m.transfer);
  out->set_context(m.context);
  out->set_offset(m.offset);
  out->set_chunk(m.chunk);
  out->set_last(m.last);
  out->set_config(m.config);
  out->set_match(m.match.value);
}

io::result<message> from_proto(pb::Message& pm) {
  if (!pb::MsgType_IsValid(pm.type())) return make_error_code(errc::bad_value);
  message m;
  m.type = static_cast<msg_type>(pm.type());
  m.from = node_id(pm.from());
  m.to = node_id(pm.to());
  m.term = term_t(pm.term());
  m.index = index_t(pm.index());
  m.log_term = term_t(pm.log_term());
  m.entries.reserve(static_cast<size_t>(pm.entries_size()));
  for (pb::Entry& pe : *pm.mutable_entries()) {
    if (!pb::EntryKind_IsValid(pe.kind())) return make_error_code(errc::bad_value);
    entry& e = m.entries.emplace_back();
    e.term = term_t(pe.term());
    e.index = index_t(pe.index());
    e.data = std::move(*pe.mutable_data());
    e.kind = static_cast<entry_kind>(pe.kind());
  }
  m.commit = index_t(pm.commit());
  m.granted = pm.granted();
  m.heartbeat = pm.heartbeat();
  m.transfer = pm.transfer();
  m.context = pm.context();
  m.offset = pm.offset();
  m.chunk = std::move(*pm.mutable_chunk());
  m.last = pm.last();
  m.config = std::move(*pm.mutable_config());
  m.match = index_t(pm.match());
  return m;
}

}  // namespace

const std::error_category& category() {
  static const category_impl c;
  return c;
}

size_t append_hello(std::string& out, const hello& h) {
  pb::Frame f;
  pb::Hello* ph = f.mutable_hello();
  ph->set_version(h.version);
  ph->set_from(h.from.value);
  ph->set_to(h.to.value);
  return append_frame(out, f);
}

size_t append_message(std::string& out, const message& m) {
  pb::Frame f;
  to_proto(m, f.mutable_message());
  return append_frame(out, f);
}

size_t append_app(std::string& out, uint32_t kind, std::string_view payload) {
  pb::Frame f;
  pb::App* pa = f.mutable_app();
  pa->set_kind(kind);
  pa->set_payload(payload.data(), payload.size());
  return append_frame(out, f);
}

io::result<frame> decode(std::string_view body) {
  if (body.size() > size_t(INT_MAX)) return make_error_code(errc::frame_too_big);
  pb::Frame f;
  if (!f.ParseFromArray(body.data(), static_cast<int>(body.size()))) return make_error_code(errc::malformed);
  switch (f.body_case()) {
    case pb::Frame::kHello: {
      const pb::Hello& ph = f.hello();
      return frame(hello{ph.version(), node_id(ph.from()), node_id(ph.to())});
    }
    case pb::Frame::kMessage: {
      auto m = from_proto(*f.mutable_message());
      if (!m) return m.error();
      return frame(std::move(*m));
    }
    case pb::Frame::kApp: {
      pb::App* pa = f.mutable_app();
      return frame(app{pa->kind(), std::move(*pa->mutable_payload())});
    }
    case pb::Frame::BODY_NOT_SET: break;
  }
  return make_error_code(errc::empty_frame);
}

// ---- frame_reader ----

void frame_reader::feed(std::string_view data) {
  ASSERT(_in.empty(), "feed() before next() consumed the previous bytes");
  _in = data;
}

io::result<std::optional<std::string_view>> frame_reader::next() {
  if (_buf_done) {
    _buf.clear();
    _buf_done = false;
  }
  if (_buf.empty()) {
    // The common case: whole frames inside this receive, returned in place.
    if (_in.size() >= prefix_bytes) {
      uint32_t len = get_le32(_in.data());
      if (len > _frame_max) return make_error_code(errc::frame_too_big);
      if (_in.size() - prefix_bytes >= len) {
        std::string_view body = _in.substr(prefix_bytes, len);
        _in.remove_prefix(prefix_bytes + len);
        return std::optional<std::string_view>(body);
      }
    }
    _buf.assign(_in);
    _in = {};
    if (_buf.size() >= prefix_bytes && get_le32(_buf.data()) > _frame_max) return make_error_code(errc::frame_too_big);
    return std::optional<std::string_view>();
  }
  // A frame begun in an earlier receive: complete its prefix, then its body.
  if (_buf.size() < prefix_bytes) {
    size_t take = std::min(prefix_bytes - _buf.size(), _in.size());
    _buf.append(_in.substr(0, take));
    _in.remove_prefix(take);
    if (_buf.size() < prefix_bytes) return std::optional<std::string_view>();
  }
  uint32_t len = get_le32(_buf.data());
  if (len > _frame_max) return make_error_code(errc::frame_too_big);
  size_t want = prefix_bytes + len - _buf.size();
  size_t take = std::min(want, _in.size());
  _buf.append(_in.substr(0, take));
  _in.remove_prefix(take);
  if (take < want) return std::optional<std::string_view>();
  _buf_done = true;
  return std::optional<std::string_view>(std::string_view(_buf).substr(prefix_bytes));
}

}  // namespace xerv::raft::wire
