#include "raft/storage.h"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <tuple>

#include "core/codec.h"
#include "core/crc32c.h"
#include "io/file.h"
#include "io/log.h"

namespace xerv::raft {
namespace {

enum record_type : uint32_t { rec_hard = 1, rec_entries = 2, rec_snapshot = 3 };
enum class marker_kind : uint8_t { install = 1, compact = 2 };

struct snap_header {
  uint32_t crc;  // crc32c of everything after this field: the rest of the header, the config, the data
  uint32_t magic;
  uint32_t version;
  uint32_t reserved;
  uint64_t index;
  uint64_t term;
  uint64_t config_length;
  uint64_t data_length;
};
static_assert(sizeof(snap_header) == 48);
constexpr uint32_t snap_magic = 0x4e535258;  // "XRSN"
constexpr uint32_t snap_version = 1;

// Entries per WAL record: a big append is split, each part replacing the log
// from its first index (a no-op truncation for all but the first).
constexpr size_t entries_record_bytes = 16u << 20;
constexpr size_t entries_head = 16;     // first index, count
constexpr size_t entry_overhead = 13;  // term, kind, data length
static_assert(entries_record_bytes * 2 <= core::wal_record_max);

unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

std::string encode_hard(const hard_state& h) {
  std::string out;
  core::record_writer w{out};
  w.u64(h.term.value);
  w.u64(h.vote.value);
  w.u64(h.commit.value);
  return out;
}

std::string encode_marker(marker_kind k, index_t i, term_t t) {
  std::string out;
  core::record_writer w{out};
  w.u8(uint8_t(k));
  w.u64(i.value);
  w.u64(t.value);
  return out;
}

// "<index>-<term>.snap", both 20 digits so that names sort by index.
bool parse_snap_name(std::string_view n, uint64_t& index, uint64_t& term) {
  constexpr std::string_view suffix = ".snap";
  if (n.size() != 20 + 1 + 20 + suffix.size() || n.substr(41) != suffix || n[20] != '-') return false;
  index = term = 0;
  for (size_t i = 0; i < 41; ++i) {
    if (i == 20) continue;
    if (n[i] < '0' || n[i] > '9') return false;
    uint64_t& v = i < 20 ? index : term;
    v = v * 10 + uint64_t(n[i] - '0');
  }
  return index > 0;
}

struct snap_name {
  uint64_t index = 0, term = 0;
  std::string path;
};

// Blocking, at open only (as the WAL's own list_segments). Newest first.
void list_snapshots(const std::string& dir, std::vector<snap_name>& snaps, std::vector<std::string>& temps) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    snap_name s;
    if (parse_snap_name(n, s.index, s.term)) {
      s.path = dir + "/" + std::string(n);
      snaps.push_back(std::move(s));
    } else if (n.size() > 9 && n.substr(n.size() - 9) == ".snap.tmp") {
      temps.push_back(dir + "/" + std::string(n));
    }
  }
  closedir(d);
  std::sort(snaps.begin(), snaps.end(),
            [](const snap_name& a, const snap_name& b) { return std::tie(a.index, a.term) > std::tie(b.index, b.term); });
}

// Why `bytes` is not the snapshot its name says (empty: it is, in *out).
std::string decode_snapshot(std::string_view bytes, uint64_t index, uint64_t term, snapshot* out) {
  snap_header h;
  if (bytes.size() < sizeof h) return "shorter than its header (" + std::to_string(bytes.size()) + " bytes)";
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.magic != snap_magic) return "bad magic";
  if (h.version != snap_version) return "unknown version " + std::to_string(h.version);
  uint64_t body = bytes.size() - sizeof h;
  if (h.config_length > body || h.data_length != body - h.config_length)
    return "lengths (config " + std::to_string(h.config_length) + ", data " + std::to_string(h.data_length) +
           ") do not match the file size " + std::to_string(bytes.size());
  uint32_t crc = core::crc32c(bytes.data() + 4, bytes.size() - 4);
  if (crc != h.crc) return "checksum mismatch";
  if (h.index != index || h.term != term)
    return "holds " + std::to_string(h.index) + "-" + std::to_string(h.term) + ", not what its name says";
  out->index = index_t(h.index);
  out->term = term_t(h.term);
  out->config.assign(bytes.substr(sizeof h, h.config_length));
  out->data.assign(bytes.substr(sizeof h + h.config_length));
  return {};
}

struct loaded {
  std::optional<snapshot> snap;
  std::string why;
};

io::task<loaded> read_snapshot(std::string path, uint64_t index, uint64_t term) {
  loaded out;
  auto opening = io::file::open(path, {.flags = O_RDONLY, .direct = io::direct_io::off});
  auto f = co_await std::move(opening);
  if (!f) {
    out.why = "cannot open: " + f.error().message();
    co_return out;
  }
  std::string bytes;
  auto sizing = f->size();
  auto size = co_await std::move(sizing);
  if (size) {
    bytes.resize(*size);
    auto reading = f->read_at(0, bytes);
    auto got = co_await std::move(reading);
    if (got) bytes.resize(*got);
    else out.why = "cannot read: " + got.error().message();
  } else {
    out.why = "cannot stat: " + size.error().message();
  }
  auto closing = f->close();
  co_await std::move(closing);
  if (!out.why.empty()) co_return out;
  snapshot s;
  out.why = decode_snapshot(bytes, index, term, &s);
  if (out.why.empty()) out.snap = std::move(s);
  co_return out;
}

// The names of the files created or renamed in `dir` survive a power cut.
io::task<io::result<void>> sync_dir(std::string dir) {
  auto opening = io::file::open(dir, {.flags = O_RDONLY | O_DIRECTORY, .direct = io::direct_io::off});
  auto d = co_await std::move(opening);
  if (!d) co_return d.error();
  auto syncing = d->datasync();
  auto synced = co_await std::move(syncing);
  auto closing = d->close();
  co_await std::move(closing);
  co_return synced;
}

io::task<io::result<void>> write_synced(std::string path, std::string head, std::string data) {
  auto opening = io::file::open(path, {.flags = O_WRONLY | O_CREAT | O_TRUNC, .direct = io::direct_io::off});
  auto f = co_await std::move(opening);
  if (!f) co_return f.error();
  auto writing = f->write_at(0, head);
  io::result<void> r = co_await std::move(writing);
  if (r && !data.empty()) {
    auto more = f->write_at(head.size(), data);
    r = co_await std::move(more);
  }
  if (r) {
    auto syncing = f->datasync();
    r = co_await std::move(syncing);
  }
  auto closing = f->close();
  co_await std::move(closing);
  co_return r;
}

// Written under a temporary name, synced, renamed, the directory synced: a
// crash leaves the whole file or none under its final name (§5.1: the
// snapshot must be durable before the log it replaces may go).
io::task<io::result<void>> write_snapshot(std::string dir, std::string path, snapshot s) {
  snap_header h{0, snap_magic, snap_version, 0, s.index.value, s.term.value, s.config.size(), s.data.size()};
  uint32_t crc = core::crc32c(reinterpret_cast<const char*>(&h) + 4, sizeof h - 4);
  crc = core::crc32c(s.config.data(), s.config.size(), crc);
  h.crc = core::crc32c(s.data.data(), s.data.size(), crc);
  std::string head(sizeof h, '\0');
  std::memcpy(head.data(), &h, sizeof h);
  head += s.config;
  std::string tmp = path + ".tmp";
  auto writing = write_synced(tmp, std::move(head), std::move(s.data));
  auto w = co_await std::move(writing);
  if (w) {
    auto renaming = io::rename_file(tmp, path);
    w = co_await std::move(renaming);
  }
  if (!w) {
    auto removing = io::remove_file(tmp);
    (void)co_await std::move(removing);  // best effort: open() removes leftovers too
    co_return w;
  }
  auto syncing = sync_dir(dir);
  co_return co_await std::move(syncing);
}

}  // namespace

// What replay found on the WAL, before a snapshot is picked.
struct storage::replayed {
  std::string wal_dir;
  std::vector<entry> log;  // contiguous; may reach below the snapshot (kept for a fallback)
  std::optional<hard_state> hard;
  index_t marker_index;  // the newest snapshot marker
  term_t marker_term;
  uint64_t hard_segment = 0, marker_segment = 0;
  std::map<uint64_t, index_t> segment_max;  // the highest entry index per segment (live or truncated)
  std::string error;

  void bad(const core::wal_record& r, const std::string& why) {
    if (error.empty())
      error = wal_dir + "/" + core::segment_file_name(r.segment) + " offset " + std::to_string(r.offset) +
              " (LSN " + std::to_string(r.lsn) + "): " + why;
  }

  void on(const core::wal_record& r) {
    if (!error.empty()) return;
    core::record_reader in{r.payload};
    switch (r.type) {
      case rec_hard: {
        hard_state h{term_t(in.u64()), node_id(in.u64()), index_t(in.u64())};
        if (!in.done()) return bad(r, "bad hard-state record");
        // Checked on save too (persist): a term never decreases (§3.8).
        if (hard && h.term < hard->term)
          return bad(r, "term goes back from " + std::to_string(hard->term.value) + " to " + std::to_string(h.term.value));
        hard = h;
        hard_segment = r.segment;
        return;
      }
      case rec_snapshot: {
        auto kind = marker_kind(in.u8());
        index_t i(in.u64());
        term_t t(in.u64());
        if (!in.done() || (kind != marker_kind::install && kind != marker_kind::compact) || i.value == 0)
          return bad(r, "bad snapshot marker");
        marker_segment = r.segment;
        if (kind == marker_kind::install) {
          // The whole log before it is gone; what follows starts after it.
          log.clear();
          segment_max.erase(segment_max.begin(), segment_max.lower_bound(r.segment));
          marker_index = i;
          marker_term = t;
        } else if (i > marker_index) {
          marker_index = i;
          marker_term = t;
        }
        return;
      }
      case rec_entries: return on_entries(r, in);
      default: return bad(r, "unknown record type " + std::to_string(r.type));
    }
  }

  void on_entries(const core::wal_record& r, core::record_reader& in) {
    uint64_t first = in.u64(), n = in.u64();
    if (!in.ok || first == 0 || n == 0) return bad(r, "bad entries record");
    // A record starting at i replaces the log from i on (§3.5).
    if (log.empty() || first <= log.front().index.value) log.clear();
    else if (first <= log.back().index.value + 1) log.resize(first - log.front().index.value);
    else return bad(r, "entries start at " + std::to_string(first) + ", the log ends at " +
                           std::to_string(log.back().index.value));
    for (uint64_t k = 0; k < n; ++k) {
      entry e;
      e.index = index_t(first + k);
      e.term = term_t(in.u64());
      uint8_t kind = in.u8();
      e.data = in.str();
      if (!in.ok || kind > uint8_t(entry_kind::config)) return bad(r, "bad entry " + std::to_string(first + k));
      e.kind = entry_kind(kind);
      if (!log.empty() && e.term < log.back().term) return bad(r, "terms decrease at " + std::to_string(first + k));
      log.push_back(std::move(e));
    }
    if (!in.done()) return bad(r, "bad entries record (bytes after the last entry)");
    index_t& m = segment_max[r.segment];
    m = std::max(m, log.back().index);
  }

  // Whether the log connects to a snapshot at (c, t): it holds every entry
  // after c up to the newest marker, and agrees with the snapshot at c.
  bool connects(uint64_t c, uint64_t t) const {
    uint64_t mark = marker_index.value;
    if (c == 0) return log.empty() ? mark == 0 : log.front().index.value == 1 && log.back().index.value >= mark;
    if (log.empty() || log.back().index.value <= c) return c == mark;
    uint64_t front = log.front().index.value;
    if (front > c + 1 || log.back().index.value < mark) return false;
    return front > c || log[c - front].term.value == t;
  }
};

// Counts a coroutine that close() must wait for.
struct storage::busy {
  storage* s;
  explicit busy(storage* st) : s(st) { ++s->_busy; }
  ~busy() {
    if (--s->_busy == 0) s->_idle.notify();
  }
  busy(const busy&) = delete;
  busy& operator=(const busy&) = delete;
};

storage::storage(storage_options o) : _opts(std::move(o)) {}

storage::~storage() {
  ASSERT(_busy == 0, "raft storage destroyed with %u operations in flight", _busy);
  ASSERT(!_wal || _closing, "raft storage destroyed without close()");
}

std::string storage::snap_path(index_t i, term_t t) const {
  char name[64];
  snprintf(name, sizeof name, "%020llu-%020llu.snap", ull(i.value), ull(t.value));
  return _opts.dir + "/snap/" + name;
}

io::task<storage::open_result> storage::open(storage_options o) {
  ASSERT(!o.dir.empty());
  std::string snap_dir = o.dir + "/snap";
  auto making = io::make_dirs(snap_dir);
  auto made = co_await std::move(making);
  if (!made) co_return snap_dir + ": cannot create: " + made.error().message();
  auto syncing = sync_dir(o.dir);
  auto synced = co_await std::move(syncing);
  if (!synced) co_return o.dir + ": cannot sync: " + synced.error().message();

  std::unique_ptr<storage> s(new storage(std::move(o)));
  auto rp = std::make_unique<replayed>();
  rp->wal_dir = s->_opts.dir + "/wal";
  core::wal_options wo;
  wo.dir = rp->wal_dir;
  wo.sync = s->_opts.sync;
  wo.segment_bytes = s->_opts.segment_bytes;
  // Segments go as soon as nothing in them is needed: the holds below say what is.
  wo.retention = std::chrono::milliseconds(0);
  wo.storage = s->_opts.files;
  replayed* sink = rp.get();
  auto opening = core::wal::open(wo, [sink](const core::wal_record& r) { sink->on(r); });
  core::wal::open_result res = co_await std::move(opening);
  if (auto* e = std::get_if<std::string>(&res)) co_return *e;
  s->_wal = std::move(std::get<std::unique_ptr<core::wal>>(res));
  std::string error = rp->error;
  if (error.empty()) {
    auto recovering = s->recover(std::move(rp));
    error = co_await std::move(recovering);
  }
  if (!error.empty()) {
    auto closing = s->close();
    co_await std::move(closing);
    co_return error;
  }
  co_return std::move(s);
}

io::task<std::string> storage::recover(std::unique_ptr<replayed> rp) {
  std::string snap_dir = _opts.dir + "/snap";
  std::vector<snap_name> names;
  std::vector<std::string> temps;
  list_snapshots(snap_dir, names, temps);
  for (auto& t : temps) {
    auto removing = io::remove_file(t);
    (void)co_await std::move(removing);  // a leftover of a crash mid-write; harmless if it stays
  }
  const uint64_t mark = rp->marker_index.value;
  std::optional<snapshot> chosen;
  std::optional<snap_file> older;
  for (auto& n : names) {
    if (n.index > mark || (n.index == mark && n.term != rp->marker_term.value)) {
      // Its marker never became durable: the persist or save that wrote it did
      // not complete, so the log it would replace is still whole.
      auto removing = io::remove_file(n.path);
      (void)co_await std::move(removing);  // should it stay, the next open skips it again
      continue;
    }
    if (!rp->connects(n.index, n.term)) {
      _stale.push_back(n.path);
      continue;
    }
    if (chosen) {
      // The fallback should the chosen one rot; checked when it is needed.
      if (!older) older = snap_file{index_t(n.index), term_t(n.term), n.path};
      else _stale.push_back(n.path);
      continue;
    }
    auto reading = read_snapshot(n.path, n.index, n.term);
    loaded got = co_await std::move(reading);
    if (!got.snap) {
      std::string w = n.path + ": " + got.why + "; skipped";
      XLOG(warn, "raft storage: snapshot %s", w.c_str());
      _warnings.push_back(std::move(w));
      _stale.push_back(n.path);
      continue;
    }
    chosen = std::move(got.snap);
    _snaps.push_back({chosen->index, chosen->term, n.path});
  }
  if (!chosen && !rp->connects(0, 0)) {
    std::string why = snap_dir + ": no snapshot file connects to the log on the WAL (";
    why += rp->log.empty() ? std::string("empty")
                           : "entries " + std::to_string(rp->log.front().index.value) + ".." +
                                 std::to_string(rp->log.back().index.value);
    why += ", newest snapshot marker at " + std::to_string(mark) + ")";
    for (auto& w : _warnings) why += "; " + w;
    co_return why;
  }
  if (older) _snaps.insert(_snaps.begin(), *older);
  co_return adopt(*rp, std::move(chosen));
}

std::string storage::adopt(replayed& rp, std::optional<snapshot> chosen) {
  index_t base = chosen ? chosen->index : index_t();
  term_t base_term = chosen ? chosen->term : term_t();
  restored out;
  for (auto& e : rp.log)
    if (e.index > base) out.log.push_back(std::move(e));
  index_t last = out.log.empty() ? base : out.log.back().index;
  term_t last_term = out.log.empty() ? base_term : out.log.back().term;
  if (!out.log.empty() && out.log.front().term < base_term)
    return rp.wal_dir + ": entry " + std::to_string(out.log.front().index.value) + " has term " +
           std::to_string(out.log.front().term.value) + ", below its snapshot's " + std::to_string(base_term.value);
  out.hard = rp.hard.value_or(hard_state{});
  // Every record was appended after a hard state with a term at least its own
  // (persist appends the hard state first), so this is damage, not a torn tail.
  if (out.hard.term < last_term)
    return rp.wal_dir + ": saved term " + std::to_string(out.hard.term.value) + " is below the log's " +
           std::to_string(last_term.value);
  // The commit index may have been saved ahead of entries a torn tail lost;
  // a snapshot holds committed entries only (§5.1).
  out.hard.commit = std::max(std::min(out.hard.commit, last), base);
  out.snap = std::move(chosen);

  if (rp.hard) _hard = out.hard;
  _hard_segment = rp.hard_segment;
  _marker_index = base;
  _marker_term = base_term;
  _marker_segment = rp.marker_segment;
  _promised_term = out.hard.term;
  _promised_snapshot = base;
  _restored = std::move(out);

  // The entries after the older kept snapshot stay (its fallback); the rest
  // may go once the WAL has written its new segment.
  index_t keep_after = _snaps.empty() ? index_t() : _snaps.front().index;
  for (auto& [segment, top] : rp.segment_max)
    if (top > keep_after) hold(segment, top);
  _wal->on_retire([this](uint64_t segment) { return on_retire(segment); });
  _wal->start_sweeping();
  return {};
}

restored storage::take_restored() {
  ASSERT(!_taken, "take_restored() called twice");
  _taken = true;
  return std::move(_restored);
}

bool storage::encode_entries(const std::vector<entry>& es, std::vector<pending>& out) {
  for (auto& e : es)
    if (entries_head + entry_overhead + e.data.size() > core::wal_record_max) return false;
  size_t i = 0;
  while (i < es.size()) {
    std::string p;
    core::record_writer w{p};
    w.u64(es[i].index.value);
    w.u64(0);  // the count, once known
    uint64_t n = 0;
    while (i < es.size() && (n == 0 || p.size() + entry_overhead + es[i].data.size() <= entries_record_bytes)) {
      w.u64(es[i].term.value);
      w.u8(uint8_t(es[i].kind));
      w.str(es[i].data);
      ++n;
      ++i;
    }
    std::memcpy(p.data() + 8, &n, 8);
    out.push_back({rec_entries, std::move(p), es[i - 1].index});
  }
  return true;
}

io::task<io::result<void>> storage::persist(const ready& r) {
  ASSERT(!_closing, "persist after close");
  if (!_failure.empty()) return io::make_ready_task(io::result<void>(failed_code()));
  std::optional<hard_state> hard = r.hard;
  term_t term = hard ? hard->term : _promised_term;
  // Checked on load too (replay): a term never decreases (§3.8).
  ASSERT(term >= _promised_term, "saving term %llu after %llu", ull(term.value), ull(_promised_term.value));
  if (r.snap) {
    ASSERT(r.snap->index > _promised_snapshot, "installing snapshot %llu over %llu", ull(r.snap->index.value),
           ull(_promised_snapshot.value));
    ASSERT(r.snap->term <= term);
  }
  index_t base = r.snap ? r.snap->index : _promised_snapshot;
  if (!r.entries.empty()) {
    // A follower never rewrites what is committed, and a snapshot holds only that.
    ASSERT(r.entries.front().index > base, "entries from %llu at or below snapshot %llu",
           ull(r.entries.front().index.value), ull(base.value));
    for (size_t i = 0; i < r.entries.size(); ++i) {
      ASSERT(r.entries[i].index.value == r.entries.front().index.value + i, "entries not contiguous");
      ASSERT(r.entries[i].term <= term, "entry of term %llu, saved term %llu", ull(r.entries[i].term.value),
             ull(term.value));
    }
  }
  std::vector<pending> recs;
  // The hard state goes first: a torn tail that keeps entries (or a snapshot)
  // of a new term also keeps the term they need.
  if (hard) recs.push_back({rec_hard, encode_hard(*hard), {}});
  if (r.snap) recs.push_back({rec_snapshot, encode_marker(marker_kind::install, r.snap->index, r.snap->term), {}});
  if (!encode_entries(r.entries, recs))
    return io::make_ready_task(io::result<void>(std::make_error_code(std::errc::message_size)));
  _promised_term = term;
  if (r.snap) {
    _promised_snapshot = r.snap->index;
    return persist_install(_next_ticket++, *r.snap, std::move(recs), std::move(hard));
  }
  if (_serving != _next_ticket) return persist_queued(_next_ticket++, std::move(recs), std::move(hard));
  if (!append(recs, hard, std::nullopt)) return io::make_ready_task(io::result<void>(failed_code()));
  return appended(_last_lsn);
}

bool storage::append(std::vector<pending>& recs, const std::optional<hard_state>& hard,
                     const std::optional<snap_file>& installed) {
  for (auto& rec : recs) {
    uint64_t lsn = _wal->append(rec.type, rec.payload);
    if (!lsn) {
      // A later record would follow a hole: nothing may be appended any more.
      std::string why = _wal->failure();
      fail("the WAL refused a record" + (why.empty() ? std::string() : " (" + why + ")"));
      return false;
    }
    _last_lsn = lsn;
    uint64_t segment = _wal->last_location().segment;
    if (rec.type == rec_hard) _hard_segment = segment;
    else if (rec.type == rec_snapshot) _marker_segment = segment;
    else hold(segment, rec.last);
  }
  if (hard) _hard = *hard;
  if (installed) {
    _marker_index = installed->index;
    _marker_term = installed->term;
  }
  return true;
}

io::task<io::result<void>> storage::appended(uint64_t lsn) {
  if (lsn == 0) co_return io::result<void>{};
  auto waiting = _wal->wait(lsn);
  co_return co_await std::move(waiting);
}

io::task<io::result<void>> storage::wait_in_turn(uint64_t ticket) {
  while (_serving != ticket) {
    if (_stop.cancelled()) co_return io::errc::closed;
    auto woken = _turn.wait(_stop);
    co_await woken;
  }
  if (_closing) co_return io::errc::closed;
  co_return io::result<void>{};
}

io::task<io::result<void>> storage::persist_queued(uint64_t ticket, std::vector<pending> recs,
                                                   std::optional<hard_state> hard) {
  busy b(this);
  auto waiting = wait_in_turn(ticket);
  auto turn = co_await std::move(waiting);
  if (!turn) co_return turn;
  bool ok = _failure.empty() && append(recs, hard, std::nullopt);
  ++_serving;
  _turn.notify();
  if (!ok) co_return failed_code();
  auto durable = appended(_last_lsn);
  co_return co_await std::move(durable);
}

io::task<io::result<void>> storage::persist_install(uint64_t ticket, snapshot s, std::vector<pending> recs,
                                                    std::optional<hard_state> hard) {
  busy b(this);
  snap_file f{s.index, s.term, snap_path(s.index, s.term)};
  // The file first: the marker tells recovery the log before it is gone
  // (§5.1, InstallSnapshot of Figure 5.3).
  auto writing = write_snapshot(_opts.dir + "/snap", f.path, std::move(s));
  auto written = co_await std::move(writing);
  if (!written) fail(f.path + ": cannot write the installed snapshot: " + written.error().message());
  auto waiting = wait_in_turn(ticket);
  auto turn = co_await std::move(waiting);
  if (!turn) co_return turn;
  bool ok = _failure.empty() && append(recs, hard, f);
  uint64_t marker_segment = _marker_segment;
  ++_serving;
  _turn.notify();
  if (!ok) co_return failed_code();
  auto durable = appended(_last_lsn);
  auto d = co_await std::move(durable);
  if (!d) co_return d;
  auto keeping = snapshot_durable(std::move(f), marker_segment);
  co_await std::move(keeping);
  co_return io::result<void>{};
}

io::task<io::result<void>> storage::save_snapshot(const snapshot& s) {
  ASSERT(!_closing, "save_snapshot after close");
  if (!_failure.empty()) return io::make_ready_task(io::result<void>(failed_code()));
  if (s.index <= _promised_snapshot) return io::make_ready_task(io::result<void>{});  // covered already
  return save(s);
}

io::task<io::result<void>> storage::save(snapshot s) {
  busy b(this);
  index_t before = std::exchange(_promised_snapshot, s.index);
  snap_file f{s.index, s.term, snap_path(s.index, s.term)};
  auto writing = write_snapshot(_opts.dir + "/snap", f.path, std::move(s));
  auto written = co_await std::move(writing);
  if (!written) {
    if (_promised_snapshot == f.index) _promised_snapshot = before;  // a retry writes it again
    co_return written;
  }
  if (_closing) co_return io::errc::closed;
  if (f.index <= _marker_index) {
    // An installed snapshot overtook it.
    auto removing = io::remove_file(f.path);
    (void)co_await std::move(removing);  // unmarked: the next open deletes it
    co_return io::result<void>{};
  }
  uint64_t lsn = _wal->append(rec_snapshot, encode_marker(marker_kind::compact, f.index, f.term));
  if (!lsn) co_return std::make_error_code(std::errc::no_buffer_space);  // the file stays unmarked; nothing is lost
  _last_lsn = lsn;
  _marker_segment = _wal->last_location().segment;
  _marker_index = f.index;
  _marker_term = f.term;
  auto waiting = _wal->wait(lsn);
  auto durable = co_await std::move(waiting);
  if (!durable) co_return durable;
  auto keeping = snapshot_durable(std::move(f), 0);
  co_await std::move(keeping);
  co_return io::result<void>{};
}

io::task<void> storage::snapshot_durable(snap_file f, uint64_t install_segment) {
  if (!_snaps.empty() && f.index <= _snaps.back().index) _stale.push_back(f.path);
  else _snaps.push_back(f);
  while (_snaps.size() > 2) {
    _stale.push_back(_snaps.front().path);
    _snaps.erase(_snaps.begin());
  }
  // Before an installed snapshot, the log is gone whatever its indexes.
  if (install_segment) release_before(install_segment);
  // Either kept snapshot restores the state, given the entries after the older one.
  release_upto(_snaps.front().index);
  std::vector<std::string> stale = std::move(_stale);
  _stale.clear();
  for (auto& p : stale) {
    bool kept = std::any_of(_snaps.begin(), _snaps.end(), [&p](const snap_file& k) { return k.path == p; });
    if (kept) continue;
    auto removing = io::remove_file(p);
    auto removed = co_await std::move(removing);
    if (!removed) XLOG(warn, "raft storage: cannot delete %s: %s", p.c_str(), removed.error().message().c_str());
  }
}

void storage::hold(uint64_t segment, index_t last) {
  auto [it, fresh] = _holds.try_emplace(segment, last);
  if (fresh) _wal->trace_started(segment);
  else it->second = std::max(it->second, last);
}

void storage::release_upto(index_t i) {
  for (auto it = _holds.begin(); it != _holds.end();) {
    if (it->second > i) {
      ++it;
      continue;
    }
    _wal->trace_finished(it->first, 0);
    it = _holds.erase(it);
  }
}

void storage::release_before(uint64_t segment) {
  while (!_holds.empty() && _holds.begin()->first < segment) {
    _wal->trace_finished(_holds.begin()->first, 0);
    _holds.erase(_holds.begin());
  }
}

// The WAL is about to delete `segment`: the newest hard state and snapshot
// marker must outlive it (§3.8), so they are written again first.
bool storage::on_retire(uint64_t segment) {
  if (_hard && segment >= _hard_segment) {
    if (!_wal->append(rec_hard, encode_hard(*_hard))) return false;
    _hard_segment = _wal->last_location().segment;
  }
  if (_marker_index.value && segment >= _marker_segment) {
    // As a compaction: an install's "the log before it is gone" is true of
    // what replay will still find, and must not clear what follows it.
    if (!_wal->append(rec_snapshot, encode_marker(marker_kind::compact, _marker_index, _marker_term))) return false;
    _marker_segment = _wal->last_location().segment;
  }
  return true;
}

void storage::fail(std::string why) {
  if (!_failure.empty()) return;
  XLOG(error, "raft storage %s: %s; refusing to persist until restarted", _opts.dir.c_str(), why.c_str());
  _failure = std::move(why);
}

std::error_code storage::failed_code() const { return std::make_error_code(std::errc::io_error); }

bool storage::healthy() const { return _failure.empty() && _wal && _wal->healthy(); }

std::string storage::failure() const {
  if (!_failure.empty()) return _failure;
  return _wal ? _wal->failure() : std::string();
}

io::task<void> storage::close() {
  if (_closing) co_return;
  _closing = true;
  _stop.cancel(io::errc::closed);
  if (_wal) {
    auto closing = _wal->close();
    co_await std::move(closing);
  }
  while (_busy) {
    auto idle = _idle.wait(_never);
    co_await idle;
  }
}

}  // namespace xerv::raft
