#pragma once
// The transport's wire format (raft/raft.proto), as pure functions: encoding
// raft::message, hello and application frames into length-prefixed frames,
// splitting a byte stream back into frames, and decoding and validating them.
//
// A frame is a 4-byte little-endian length L, then L bytes of a serialized
// pb::Frame (a oneof of Hello, Message, App). No I/O here; raft/transport.h
// moves the bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

#include "io/result.h"
#include "raft/types.h"

namespace xerv::raft::wire {

// The transport protocol's version, carried by every hello. A peer speaking
// another version is refused (its connection closed).
inline constexpr uint32_t protocol_version = 1;
inline constexpr size_t prefix_bytes = 4;

enum class errc {
  frame_too_big = 1,  // a length prefix beyond the frame limit
  malformed,          // not a serialized Frame
  empty_frame,        // a Frame with none of its oneof set
  bad_value,          // a field out of range (an unknown message type or entry kind)
  bad_version,        // a hello of another protocol version
  bad_hello,          // a hello without a sender, or meant for another node
  unexpected_hello,   // a second hello on one connection
  missing_hello,      // a message or app frame before the hello
  wrong_sender,       // a message whose `from`/`to` contradict the hello
};
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

struct hello {
  uint32_t version = protocol_version;
  node_id from;
  node_id to;  // 0: not said
};

struct app {
  uint32_t kind = 0;
  std::string payload;
};

using frame = std::variant<hello, message, app>;

// Appends one whole frame (prefix and body) to `out`; returns the body's size.
size_t append_hello(std::string& out, const hello& h);
size_t append_message(std::string& out, const message& m);
size_t append_app(std::string& out, uint32_t kind, std::string_view payload);

// Decodes one frame's body (without its prefix). Checks the oneof and enum
// ranges; the hello's version and the connection rules are the caller's.
io::result<frame> decode(std::string_view body);

// Splits a byte stream into frame bodies. feed() the bytes of one receive,
// then call next() until it gives nullopt (it has buffered any incomplete
// tail) or an error (a length beyond frame_max: the stream is unusable).
// A body returned by next() stays valid until the next next() or feed().
// Whole frames inside one receive are returned in place, without a copy.
class frame_reader {
 public:
  explicit frame_reader(uint32_t frame_max) : _frame_max(frame_max) {}

  // Applies from the next frame on (a connection allows only a small hello first).
  void set_frame_max(uint32_t frame_max) { _frame_max = frame_max; }
  void feed(std::string_view data);
  io::result<std::optional<std::string_view>> next();
  size_t buffered() const { return _buf.size(); }

 private:
  uint32_t _frame_max;
  std::string_view _in;  // bytes fed, not yet consumed
  std::string _buf;      // an incomplete frame carried across receives (prefix included)
  bool _buf_done = false;  // _buf holds a frame next() returned: drop it on the next call
};

}  // namespace xerv::raft::wire

template <>
struct std::is_error_code_enum<xerv::raft::wire::errc> : std::true_type {};
