#include "core/dispatch.h"

#include "core/codec.h"

namespace xerv::core {

namespace {
class dispatch_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dispatch"; }
  std::string message(int e) const override {
    switch (dispatch_errc(e)) {
      case dispatch_errc::unavailable: return "the dispatch backend is unavailable";
      case dispatch_errc::too_large: return "the record is too large for the dispatch backend";
      case dispatch_errc::conflict: return "overtaken by another change";
      case dispatch_errc::not_found: return "no such pipeline";
    }
    return "unknown dispatch error";
  }
};
}  // namespace

const std::error_category& dispatch_category() {
  static const dispatch_category_impl c;
  return c;
}

const char* to_string(pipeline_state s) {
  switch (s) {
    case pipeline_state::stopped: return "stopped";
    case pipeline_state::running: return "running";
    case pipeline_state::paused: return "paused";
    case pipeline_state::draining: return "draining";
  }
  return "unknown";
}

std::optional<pipeline_state> parse_pipeline_state(std::string_view s) {
  if (s == "stopped") return pipeline_state::stopped;
  if (s == "running") return pipeline_state::running;
  if (s == "paused") return pipeline_state::paused;
  if (s == "draining") return pipeline_state::draining;
  return std::nullopt;
}

void encode(std::string& out, const admission& a) {
  out.clear();
  out.reserve(16 + 8 + 5 * 4 + a.pipeline.size() + a.version.size() + a.trigger.size() + a.input.size() +
              a.continuation.size());
  record_writer w{out};
  w.id(a.id);
  w.u64(a.created_ms);
  w.str(a.pipeline);
  w.str(a.version);
  w.str(a.trigger);
  w.str(a.input);
  // Last and only when present: admissions written before resumes existed read the same.
  if (!a.continuation.empty()) w.str(a.continuation);
}

std::optional<admission_record> decode_admission(std::string_view bytes) {
  record_reader rd{bytes};
  admission_record r;
  r.id = rd.id();
  r.created_ms = rd.u64();
  r.pipeline = rd.str();
  r.version = rd.str();
  r.trigger = rd.str();
  r.input = rd.str();
  if (rd.ok && !rd.in.empty()) {
    r.continuation = rd.str();
    if (r.continuation.empty()) return std::nullopt;  // never written empty
  }
  if (!rd.done()) return std::nullopt;
  return r;
}

std::optional<trace_id> record_trace_id(std::string_view bytes) {
  record_reader rd{bytes};
  trace_id t = rd.id();
  if (!rd.ok) return std::nullopt;
  return t;
}

std::optional<final_header> decode_final_header(std::string_view bytes) {
  record_reader rd{bytes};
  final_header h;
  h.id = rd.id();
  h.status = rd.u8();
  h.finished_ms = rd.u64();
  if (!rd.ok) return std::nullopt;
  return h;
}

void write_change(record_writer& w, const pipeline_change& c) {
  w.u8(uint8_t(c.what));
  w.str(c.name);
  w.str(c.source);
  w.u8(uint8_t(c.state));
  w.u64(c.disabled.size());
  for (const auto& d : c.disabled) w.str(d);
  w.u8(c.persist ? 1 : 0);
}

pipeline_change read_change(record_reader& in) {
  pipeline_change c;
  uint8_t what = in.u8();
  if (what > uint8_t(pipeline_change::kind::triggers)) in.ok = false;
  c.what = pipeline_change::kind(what);
  c.name = in.str();
  c.source = in.str();
  uint8_t state = in.u8();
  if (state > uint8_t(pipeline_state::draining)) in.ok = false;
  c.state = pipeline_state(state);
  uint64_t n = in.u64();
  if (n > in.in.size()) in.ok = false;  // each name takes at least 4 bytes
  for (uint64_t i = 0; in.ok && i < n; ++i) c.disabled.push_back(in.str());
  c.persist = in.u8() != 0;
  return c;
}

io::result<pipeline_change> apply_publish(pipeline_change c, const pipeline_change* stored, uint64_t expected) {
  using kind = pipeline_change::kind;
  uint64_t now = stored ? stored->revision : 0;
  bool matches = expected == revision_absent ? now == 0 : expected == 0 || expected == now;
  if (!matches) return make_error_code(dispatch_errc::conflict);
  if (c.what != kind::deploy && !stored) return make_error_code(dispatch_errc::not_found);
  c.revision = c.what == kind::deploy ? now + 1 : now;
  if (c.what != kind::deploy) {
    c.persist = stored->persist;
    if (c.what != kind::remove) c.source = stored->source;
  }
  if (c.what == kind::state) c.disabled = stored->disabled;  // a state change keeps them
  if (c.what == kind::triggers) c.state = stored->state;
  return c;
}

io::task<std::optional<trace_whereabouts>> trace_queue::locate(const trace_id&) { co_return std::nullopt; }

}  // namespace xerv::core
