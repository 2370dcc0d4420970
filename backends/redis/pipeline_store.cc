#include "backends/redis/pipeline_store.h"

#include <algorithm>
#include <charconv>

#include "io/log.h"
#include "io/ops.h"

namespace xerv::backends::redis {

namespace {

constexpr int publish_attempts = 20;

io::result<core::pipeline_change> unavailable() { return core::make_error_code(core::dispatch_errc::unavailable); }

std::string encode_stored(const core::pipeline_change& c) {
  std::string out;
  core::record_writer w{out};
  core::write_change(w, c);
  w.u64(c.revision);
  w.u64(c.seq);
  return out;
}

std::optional<core::pipeline_change> decode_stored(std::string_view bytes) {
  core::record_reader in{bytes};
  core::pipeline_change c = core::read_change(in);
  c.revision = in.u64();
  c.seq = in.u64();
  if (!in.done()) return std::nullopt;
  return c;
}

uint64_t parse_u64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

}  // namespace

pipeline_store::pipeline_store(client& commands, client& blocking, store_options o)
    : _commands(commands),
      _blocking(blocking),
      _o(std::move(o)),
      _hash(_o.prefix + ":pipelines"),
      _seq_key(_o.prefix + ":pipelines:seq"),
      _log(_o.prefix + ":pipelines:log") {}

pipeline_store::~pipeline_store() = default;

io::task<io::result<void>> pipeline_store::start() {
  // The log's end now: changes from here on reach the watches.
  auto asking = _commands.call({"XREVRANGE", _log, "+", "-", "COUNT", "1"});
  io::result<reply> last = co_await std::move(asking);
  if (!last) co_return last.error();
  if (last->is_error()) {
    XLOG(error, "redis pipeline store: XREVRANGE %s: %s", _log.c_str(), last->str.c_str());
    co_return core::make_error_code(core::dispatch_errc::unavailable);
  }
  if (!last->elements.empty() && !last->elements[0].elements.empty()) _last_id = last->elements[0].elements[0].str;
  (void)io::spawn(_gate, read_log());
  co_return io::result<void>{};
}

io::task<void> pipeline_store::stop() {
  _stop.cancel(io::errc::closed);
  auto closing = _gate.close();  // the log reader's XREAD ends within store_options::block
  co_await std::move(closing);
}

io::task<io::result<std::vector<core::pipeline_change>>> pipeline_store::load() {
  auto asking = _commands.call({"HGETALL", _hash});
  io::result<reply> all = co_await std::move(asking);
  if (!all) co_return all.error();
  if (all->is_error()) co_return core::make_error_code(core::dispatch_errc::unavailable);
  std::vector<core::pipeline_change> out;
  for (size_t i = 0; i + 1 < all->elements.size(); i += 2) {
    auto c = decode_stored(all->elements[i + 1].str);
    if (!c) {
      XLOG(error, "redis pipeline store: %s holds a bad entry for %s; skipped", _hash.c_str(),
           all->elements[i].str.c_str());
      continue;
    }
    c->what = core::pipeline_change::kind::deploy;
    out.push_back(std::move(*c));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  co_return out;
}

io::task<io::result<core::pipeline_change>> pipeline_store::publish(core::pipeline_change c, uint64_t expected) {
  // One at a time on this connection: a WATCH lasts until the next EXEC.
  auto held = co_await _publishing.lock();
  for (int attempt = 0; attempt < publish_attempts; ++attempt) {
    bool raced = false;
    auto trying = try_publish(c, expected, raced);
    io::result<core::pipeline_change> r = co_await std::move(trying);
    if (!raced) co_return r;
    ++_races;
  }
  XLOG(warn, "redis pipeline store: %d publishes of %s raced others; giving up", publish_attempts, c.name.c_str());
  co_return unavailable();
}

io::task<io::result<core::pipeline_change>> pipeline_store::try_publish(const core::pipeline_change& c,
                                                                        uint64_t expected, bool& raced) {
  // Read under WATCH: a change elsewhere before EXEC bumps the seq and aborts it.
  auto watching = _commands.call({"WATCH", _seq_key});
  auto reading = _commands.call({"HGET", _hash, c.name});
  auto counting = _commands.call({"GET", _seq_key});
  io::result<reply> watched = co_await std::move(watching);
  io::result<reply> stored_reply = co_await std::move(reading);
  io::result<reply> seq_reply = co_await std::move(counting);
  if (!watched || !stored_reply || !seq_reply) co_return unavailable();  // the WATCH went with the connection
  std::optional<core::pipeline_change> stored;
  bool bad = watched->is_error() || stored_reply->is_error() || seq_reply->is_error();
  if (!bad && !stored_reply->is_nil()) {
    stored = decode_stored(stored_reply->str);
    bad = !stored;
  }
  io::result<core::pipeline_change> ruled =
      bad ? unavailable() : core::apply_publish(c, stored ? &*stored : nullptr, expected);
  if (bad) XLOG(error, "redis pipeline store: %s of %s is unreadable", _hash.c_str(), c.name.c_str());
  if (!ruled) {
    auto unwatching = _commands.call({"UNWATCH"});
    (void)co_await std::move(unwatching);
    co_return ruled;
  }
  ruled->seq = (seq_reply->is_nil() ? 0 : parse_u64(seq_reply->str)) + 1;
  std::string seq = std::to_string(ruled->seq), bytes = encode_stored(*ruled), cap = std::to_string(_o.log_max);
  bool removing = ruled->what == core::pipeline_change::kind::remove;
  auto multi = _commands.call({"MULTI"});
  auto set_seq = _commands.call({"SET", _seq_key, seq});
  auto write = removing ? _commands.call({"HDEL", _hash, ruled->name}) : _commands.call({"HSET", _hash, ruled->name, bytes});
  auto log = _commands.call({"XADD", _log, "MAXLEN", "~", cap, "*", "c", bytes});
  auto exec = _commands.call({"EXEC"});
  for (auto* queued : {&multi, &set_seq, &write, &log}) {
    io::result<reply> q = co_await std::move(*queued);
    if (!q) co_return unavailable();
  }
  io::result<reply> done = co_await std::move(exec);
  if (!done) co_return unavailable();  // sent, maybe applied: the watches will tell
  if (done->is_nil()) {
    raced = true;
    co_return unavailable();
  }
  if (done->is_error() || done->elements.size() != 3 ||
      std::any_of(done->elements.begin(), done->elements.end(), [](const reply& r) { return r.is_error(); })) {
    XLOG(error, "redis pipeline store: publishing %s failed: %s", ruled->name.c_str(),
         done->is_error() ? done->str.c_str() : "an error inside the transaction");
    co_return unavailable();
  }
  co_return ruled;
}

std::unique_ptr<core::pipeline_watch> pipeline_store::watch() { return _feed.watch(); }

io::task<void> pipeline_store::read_log() {
  std::string block = std::to_string(_o.block.count());
  while (!_stop.cancelled()) {
    if (!_blocking.connected()) {
      auto waiting = _blocking.wait_connected(_o.block);
      (void)co_await std::move(waiting);
      continue;
    }
    auto reading = _blocking.call({"XREAD", "COUNT", "100", "BLOCK", block, "STREAMS", _log, _last_id}, _o.block);
    io::result<reply> got = co_await std::move(reading);
    if (!got || got->is_error()) {
      if (got) XLOG(warn, "redis pipeline store: XREAD %s: %s", _log.c_str(), got->str.c_str());
      auto pausing = io::sleep_for(std::chrono::milliseconds(100), &_stop);
      (void)co_await pausing;
      continue;
    }
    // [[stream, [[id, [field, value, ...]], ...]]]; nil when BLOCK ran out.
    for (const reply& stream : got->elements) {
      if (stream.elements.size() < 2) continue;
      for (const reply& entry : stream.elements[1].elements) {
        if (entry.elements.size() < 2) continue;
        _last_id = entry.elements[0].str;
        const auto& fields = entry.elements[1].elements;
        for (size_t i = 0; i + 1 < fields.size(); i += 2) {
          if (fields[i].str != "c") continue;
          if (auto c = decode_stored(fields[i + 1].str)) _feed.push(*c);
          else XLOG(error, "redis pipeline store: bad entry %s in %s; skipped", _last_id.c_str(), _log.c_str());
        }
      }
    }
  }
}

}  // namespace xerv::backends::redis
