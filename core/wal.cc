#include "core/wal.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "core/crc32c.h"
#include "core/metrics.h"
#include "core/trace_id.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/reactor.h"

namespace xerv::core {
namespace {

counter g_bytes{"xerv_wal_bytes_total", "Bytes written to the write-ahead log (whole 4 KiB blocks)"};
counter g_syncs{"xerv_wal_syncs_total", "WAL writes made durable (RWF_DSYNC writes and fdatasync calls)"};
counter g_errors{"xerv_wal_write_errors_total", "WAL writes or segment creations that failed (disk full, I/O error)"};
histogram g_sync_seconds{"xerv_wal_sync_seconds", "Time to make one WAL batch durable", latency_buckets()};
histogram g_batch{"xerv_wal_batch_records", "Records per WAL write (group commit batch size)",
                  {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}};
gauge g_segments{"xerv_wal_segments", "WAL segment files on disk"};
gauge g_unavailable{"xerv_wal_unavailable", "Shards whose WAL is refusing writes (disk full or I/O errors)"};
gauge g_failed{"xerv_wal_failed", "Shards whose WAL failed for good (a failed fdatasync or write); restart after checking the disk"};

// A torn write can leave good records after a bad one only inside the last write,
// and no write is larger than this (bigger batches go out in several writes, one
// after the other): a good record further away means damage in the middle.
constexpr size_t torn_window = 1u << 20;

size_t pad8(size_t n) { return (n + 7) & ~size_t(7); }
size_t round_block(size_t n) { return (n + wal_block - 1) / wal_block * wal_block; }

bool all_zero(const char* p, size_t n) {
  // Each byte equals the next and the first is zero (memcmp is vectorised).
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

// Running out of space fails a write before it reaches the disk: nothing written
// earlier is at stake, and the write can be retried once space returns.
bool is_space_error(std::error_code e) {
  return e == std::errc::no_space_on_device || e == std::error_code(EDQUOT, std::system_category());
}

struct segment_file {
  std::unique_ptr<wal_file> file;
  std::string bytes;
};

io::task<io::result<segment_file>> read_segment(wal_storage& storage, std::string path) {
  auto f = co_await storage.open(path, wal_open::existing);
  if (!f) co_return f.error();
  segment_file out{std::move(*f), {}};
  auto size = co_await out.file->size();
  if (!size) co_return size.error();
  out.bytes.resize(*size);
  auto got = co_await out.file->read_at(0, out.bytes);
  if (!got) co_return got.error();
  out.bytes.resize(*got);
  co_return std::move(out);
}

// The record at `off`, if it is whole, its checksum holds and its LSN follows
// `prev_lsn`: exactly (the next record of a segment) or anywhere after it.
std::optional<wal_record_header> record_at(std::string_view b, size_t off, uint64_t prev_lsn, bool exact,
                                           std::string* why) {
  wal_record_header h;
  std::memcpy(&h, b.data() + off, sizeof h);
  auto bad = [&](const char* w) {
    if (why) *why = w;
    return std::nullopt;
  };
  if (h.magic != wal_magic) return bad("bad magic");
  if (h.type == 0) return bad("record type 0");
  if (h.length > wal_record_max || off + sizeof h + h.length > b.size()) return bad("length runs past the end");
  if (crc32c(b.data() + off + 4, sizeof h - 4 + h.length) != h.crc) return bad("checksum mismatch");
  if (h.lsn == 0 || h.lsn <= prev_lsn) return bad("LSN goes backwards");
  if (exact && h.lsn != prev_lsn + 1) return bad("LSN out of sequence");
  return h;
}

}  // namespace

const char* to_string(wal_sync s) {
  switch (s) {
    case wal_sync::always: return "always";
    case wal_sync::batch: return "batch";
    case wal_sync::none: return "none";
  }
  return "unknown";
}

segment_scan scan_segment(std::string_view b, uint64_t segment, uint64_t prev_lsn,
                          const std::function<void(const wal_record&)>& on_record) {
  segment_scan s;
  s.last_lsn = prev_lsn;
  size_t off = 0;
  constexpr size_t hs = sizeof(wal_record_header);
  while (off < b.size()) {
    if (b.size() - off < hs) {
      if (!all_zero(b.data() + off, b.size() - off)) {
        s.corrupt = true;
        s.reason = "partial record header";
      }
      break;
    }
    bool zeros = all_zero(b.data() + off, hs);
    std::optional<wal_record_header> h;
    if (!zeros) h = record_at(b, off, s.last_lsn, off > 0 && s.last_lsn, &s.reason);
    if (!h) {
      // Zeros end the log, unless a good record follows (zeroed bytes inside it).
      // Good records close behind damage prove nothing (a torn write leaves them);
      // one beyond torn_window does. A record longer than a write is written in
      // several: the torn one may be its last, so the window starts at its end
      // when its header is intact. Records start 8-aligned.
      size_t window_from = off;
      wal_record_header bad;
      std::memcpy(&bad, b.data() + off, hs);
      if (!zeros && bad.magic == wal_magic && bad.length <= wal_record_max) window_from = off + hs + bad.length;
      for (size_t p = off + 8; p + hs <= b.size(); p += 8) {
        if (std::memcmp(b.data() + p + 20, &wal_magic, 4) != 0) continue;
        if (!record_at(b, p, s.last_lsn, false, nullptr)) continue;
        if (zeros) {
          s.corrupt = true;
          s.reason = "zeroed bytes inside the log";
        }
        if (p >= window_from + torn_window) {
          s.more_after = true;
          break;
        }
      }
      if (!zeros) s.corrupt = true;
      break;
    }
    // Check what was checked before the write, after the read too.
    ASSERT(h->length <= wal_record_max);
    on_record({h->lsn, h->type, segment, b.substr(off + hs, h->length), off});
    s.last_lsn = h->lsn;
    off += pad8(hs + h->length);
  }
  s.valid_end = std::min(off, b.size());
  return s;
}

std::vector<std::pair<uint64_t, std::string>> list_segments(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    uint64_t seq = segment_sequence(e->d_name);
    if (seq) out.emplace_back(seq, dir + "/" + e->d_name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

void wal::buffer::reserve(size_t n) {
  n = round_block(n + wal_block);  // room to pad the last block
  if (n <= cap) return;
  size_t want = std::max(n, cap * 2);
  auto* p = static_cast<char*>(std::aligned_alloc(wal_block, want));
  ASSERT(p != nullptr, "aligned_alloc(%zu)", want);
  if (len) std::memcpy(p, data, len);
  std::free(data);
  data = p;
  cap = want;
}

void wal::buffer::release() {
  std::free(data);
  data = nullptr;
  cap = len = 0;
}

wal::wal(wal_options opts)
    : _opts(std::move(opts)), _storage(_opts.storage ? *_opts.storage : file_storage()) {}

wal::~wal() {
  ASSERT(_tasks.count() == 0, "wal destroyed before close()");
  // The gauges count live WALs (tests open many in one process).
  if (_failing) g_unavailable.add(-1);
  if (_failed) g_failed.add(-1);
  _active.release();
  _flushing.release();
}

std::string wal::segment_path(uint64_t seq) const { return _opts.dir + "/" + segment_file_name(seq); }

std::string wal::failure() const {
  if (!_failing) return {};
  return _failing_what + ": " + _last_error.message();
}

io::task<wal::open_result> wal::open(wal_options opts, replay_fn replay) {
  ASSERT(opts.segment_bytes >= wal_block);
  std::unique_ptr<wal> w(new wal(std::move(opts)));
  wal_storage& storage = w->_storage;
  std::string dir = w->_opts.dir;
  if (auto r = co_await storage.make_dirs(dir); !r) co_return dir + ": " + r.error().message();
  auto segs = storage.list_segments(dir);
  // Trailing segments without a single byte written (prepared ahead, or created
  // just before a crash) never held anything: drop them, so that the newest
  // segment is the one the last write went to. Any other segment is scanned
  // whole, even when it starts with zeros: damage to its first block must not
  // pass for an unused file and silently take acknowledged records with it.
  std::optional<segment_file> newest;
  while (!segs.empty()) {
    std::string path = segs.back().second;
    auto got = co_await read_segment(storage, path);
    if (!got) co_return path + ": " + got.error().message();
    if (!all_zero(got->bytes.data(), got->bytes.size())) {
      newest = std::move(*got);
      break;
    }
    co_await got->file->close();
    if (auto r = co_await storage.remove(path); !r) co_return path + ": " + r.error().message();
    segs.pop_back();
  }
  uint64_t prev_lsn = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    uint64_t seq = segs[i].first;
    std::string path = segs[i].second;
    segment_file seg;
    if (i + 1 == segs.size()) {
      ASSERT(newest.has_value());
      seg = std::move(*newest);
    } else {
      auto got = co_await read_segment(storage, path);
      if (!got) co_return path + ": " + got.error().message();
      seg = std::move(*got);
    }
    auto recovering =
        w->recover_segment(seq, path, std::move(seg.file), std::move(seg.bytes), i + 1 == segs.size(), &prev_lsn, &replay);
    std::string error = co_await std::move(recovering);
    if (!error.empty()) co_return std::move(error);
  }
  w->_next_lsn = prev_lsn + 1;
  w->_durable_lsn = prev_lsn;
  w->_synced_lsn = prev_lsn;
  w->_active.segment = segs.empty() ? 1 : segs.back().first + 1;
  w->_stats.segments = w->_segments.size();
  g_segments.add(int64_t(w->_segments.size()));
  (void)io::spawn(w->_tasks, w->flusher());
  (void)io::spawn(w->_tasks, w->ticker());
  co_return std::move(w);
}

// Replays one segment; cuts a torn tail (newest segment) or, with skip_corrupt,
// the rest of a corrupt one; removes it when no record is left in it, so that
// an empty segment before others is always damage. Returns an error naming the
// file and the offset.
io::task<std::string> wal::recover_segment(uint64_t seq, std::string path, std::unique_ptr<wal_file> file,
                                           std::string bytes, bool newest, uint64_t* prev_lsn, const replay_fn* replay) {
  segment_scan s = scan_segment(bytes, seq, *prev_lsn, [&](const wal_record& r) {
    ++_stats.recovered_records;
    (*replay)(r);
  });
  if (s.corrupt) {
    bool torn = newest && !s.more_after;
    if (!torn && !_opts.skip_corrupt) {
      co_await file->close();
      co_return path + ": corrupt record at offset " + std::to_string(s.valid_end) + " (" + s.reason +
          "); the log continues after it, so this is not a torn write. Restore the data directory from a "
          "backup, or start with --wal-skip-corrupt to drop the rest of this segment";
    }
    if (torn) {
      XLOG(warn, "%s: torn tail at offset %zu (%s): cutting %zu bytes that were never acknowledged", path.c_str(),
           s.valid_end, s.reason.c_str(), bytes.size() - s.valid_end);
    } else {
      XLOG(error, "%s: corrupt record at offset %zu (%s): --wal-skip-corrupt drops the rest of this segment",
           path.c_str(), s.valid_end, s.reason.c_str());
      ++_stats.skipped_corrupt;
    }
    _stats.truncated_bytes += bytes.size() - s.valid_end;
    // Cut it so that the next start sees a clean end, not the same damage.
    if (s.valid_end > 0) {
      if (auto t = file->truncate(s.valid_end); !t) co_return path + ": truncate: " + t.error().message();
      if (auto d = co_await file->datasync(); !d) co_return path + ": " + d.error().message();
    }
  }
  co_await file->close();
  if (s.valid_end == 0) {
    // No record: a segment before others is never written empty (rotation fills
    // it, and one left empty by a crash is removed below at the next start), so
    // this one lost its records, all of them.
    if (!newest && !s.corrupt) {
      if (!_opts.skip_corrupt)
        co_return path + ": no record at offset 0, yet the segments after it hold records: its records were "
                         "lost (a zeroed or replaced file). Restore the data directory from a backup, or start "
                         "with --wal-skip-corrupt to go on without them";
      XLOG(error, "%s: no record in a segment before others: --wal-skip-corrupt goes on without it", path.c_str());
      ++_stats.skipped_corrupt;
      _stats.truncated_bytes += bytes.size();
    }
    if (auto r = co_await _storage.remove(path); !r) co_return path + ": " + r.error().message();
    co_return std::string();
  }
  *prev_lsn = s.last_lsn;
  _segments[seq].path = path;
  co_return std::string();
}

uint64_t wal::append(uint32_t type, std::string_view payload) {
  ASSERT(type != 0);
  ASSERT(payload.size() <= wal_record_max, "WAL record of %zu bytes", payload.size());
  if (_closing || _failed) return 0;
  if (_failing && _active.len + payload.size() > _opts.buffered_max) return 0;
  constexpr size_t hs = sizeof(wal_record_header);
  size_t n = pad8(hs + payload.size());
  _active.reserve(_active.len + n);
  char* p = _active.data + _active.len;
  wal_record_header h{0, uint32_t(payload.size()), _next_lsn++, type, wal_magic};
  std::memcpy(p, &h, hs);
  std::memcpy(p + hs, payload.data(), payload.size());
  std::memset(p + hs + payload.size(), 0, n - hs - payload.size());
  h.crc = crc32c(p + 4, hs - 4 + payload.size());
  std::memcpy(p, &h.crc, 4);
  _last = {_active.segment, _active.file_off + _active.len, uint32_t(payload.size()), h.lsn};
  _active.len += n;
  if (!_active.first_lsn) _active.first_lsn = h.lsn;
  _active.last_lsn = h.lsn;
  ++_active.records;
  notify();
  return h.lsn;
}

io::task<io::result<std::string>> wal::read(wal_location at) {
  constexpr size_t hs = sizeof(wal_record_header);
  std::string bytes(hs + at.length, '\0');
  bool copied = false;
  // Not written yet (or being written): the bytes are in a buffer.
  for (const buffer* b : {&_active, &_flushing})
    if (b->len && b->segment == at.segment && at.offset >= b->file_off &&
        at.offset + bytes.size() <= b->file_off + b->len && b->first_lsn && at.lsn >= b->first_lsn &&
        at.lsn <= b->last_lsn) {
      std::memcpy(bytes.data(), b->data + (at.offset - b->file_off), bytes.size());
      copied = true;
      break;
    }
  if (!copied) {
    auto opened = co_await _storage.open(segment_path(at.segment), wal_open::existing);
    if (!opened) co_return opened.error();
    std::unique_ptr<wal_file> f = std::move(*opened);
    auto n = co_await f->read_at(at.offset, bytes);
    co_await f->close();
    if (!n) co_return n.error();
    if (*n != bytes.size()) co_return io::from_errno(EBADMSG);
  }
  auto h = record_at(bytes, 0, 0, false, nullptr);
  if (!h || h->lsn != at.lsn || h->length != at.length) co_return io::from_errno(EBADMSG);
  bytes.erase(0, hs);
  co_return bytes;
}

struct wal::wait_op {
  wal& w;
  uint64_t lsn;
  io::result<void> out{};
  bool await_ready() noexcept {
    if (lsn <= w._durable_lsn) return true;
    if (w._failing) out = w._last_error;
    return w._failing;
  }
  void await_suspend(std::coroutine_handle<> h) {
    waiter x{lsn, h, &out};
    if (w._waiters.empty() || w._waiters.back().lsn <= lsn) {
      w._waiters.push_back(x);
      return;
    }
    auto at = std::upper_bound(w._waiters.begin(), w._waiters.end(), lsn,
                               [](uint64_t l, const waiter& e) { return l < e.lsn; });
    w._waiters.insert(at, x);
  }
  io::result<void> await_resume() { return out; }
};

io::task<io::result<void>> wal::wait(uint64_t lsn) {
  ASSERT(lsn < _next_lsn, "waiting for LSN %llu never appended", static_cast<unsigned long long>(lsn));
  // Failed for good: only what reached stable storage before is durable.
  if (_failed) co_return lsn <= _synced_lsn ? io::result<void>{} : io::result<void>{_last_error};
  if (_opts.sync == wal_sync::none) co_return io::result<void>{};
  co_return co_await wait_op{*this, lsn};
}

void wal::complete_waiters(uint64_t up_to, io::result<void> r) {
  while (!_waiters.empty() && _waiters.front().lsn <= up_to) {
    waiter x = _waiters.front();
    _waiters.pop_front();
    *x.out = r;
    io::this_reactor().schedule(x.h);
  }
}

void wal::notify() {
  if (_flusher_waiting) io::this_reactor().schedule(std::exchange(_flusher_waiting, {}));
  else _kick = true;
}

void wal::trace_started(uint64_t segment) { ++_segments[segment].unfinished; }

void wal::trace_finished(uint64_t segment, uint64_t end_unix_ms) {
  auto it = _segments.find(segment);
  if (it == _segments.end()) return;
  if (it->second.unfinished) --it->second.unfinished;
  it->second.newest_end_ms = std::max(it->second.newest_end_ms, end_unix_ms);
}

io::task<io::result<std::unique_ptr<wal_file>>> wal::create_segment(uint64_t seq, bool zero_fill) {
  std::string path = segment_path(seq);
  auto opened = co_await _storage.open(path, wal_open::create);
  if (!opened) co_return opened.error();
  std::unique_ptr<wal_file> f = std::move(*opened);
  auto a = co_await f->allocate(0, _opts.segment_bytes);
  if (a.error() == std::errc::operation_not_supported) a = {};
  // Writing the zeros ahead makes every later WAL write an overwrite: an append
  // into fallocate'd space also commits the file system's journal (it converts
  // unwritten extents), which roughly doubles the cost of each durable write.
  static const io::aligned_buffer zeros(1u << 20);
  for (uint64_t off = 0; a && zero_fill && off < _opts.segment_bytes; off += zeros.size()) {
    size_t n = size_t(std::min<uint64_t>(zeros.size(), _opts.segment_bytes - off));
    a = co_await f->write_at(off, {zeros.data(), n}, false);
  }
  if (a && zero_fill) a = co_await f->datasync();
  if (!a) {
    // The file holds no record yet: nothing is lost, whatever the error.
    co_await f->close();
    (void)co_await _storage.remove(path);
    co_return a.error();
  }
  co_return std::move(f);
}

io::task<void> wal::prepare_segment(uint64_t seq) {
  auto f = co_await create_segment(seq, true);
  if (f) {
    _spare = std::move(*f);
    _spare_segment = seq;
  } else {
    XLOG(debug, "WAL %s: preparing segment %llu failed: %s", _opts.dir.c_str(), static_cast<unsigned long long>(seq),
         f.error().message().c_str());
  }
  _preparing = false;
  if (_prepare_waiter) io::this_reactor().schedule(std::exchange(_prepare_waiter, {}));
}

io::task<io::result<void>> wal::open_segment(uint64_t seq) {
  // A segment being prepared in the background has this name: wait for it.
  struct prepared {
    wal& w;
    bool await_ready() const noexcept { return !w._preparing; }
    void await_suspend(std::coroutine_handle<> h) { w._prepare_waiter = h; }
    void await_resume() const noexcept {}
  };
  co_await prepared{*this};
  std::string path = segment_path(seq);
  std::unique_ptr<wal_file> f;
  if (_spare_segment == seq) {
    f = std::move(_spare);
    _spare_segment = 0;
  } else {
    auto made = co_await create_segment(seq, false);
    if (!made) {
      set_failing(made.error(), "creating a segment failed");
      co_return made.error();
    }
    f = std::move(*made);
  }
  // The new name must survive a power cut before records in it are acknowledged.
  // A failed directory sync is a failed sync like any other: the directory's
  // state on disk is unknown, and retrying proves nothing.
  if (auto synced = co_await _storage.sync_dir(_opts.dir); !synced) {
    co_await f->close();
    fail_for_good("fsync of the WAL directory failed", synced.error());
    co_return synced;
  }
  _file = std::move(f);
  _file_segment = seq;
  _segments[seq].path = path;
  _stats.segments = _segments.size();
  g_segments.add(1);
  co_return io::result<void>{};
}

io::task<io::result<void>> wal::write_batch(buffer& b) {
  if (b.segment != _file_segment) {
    if (_file_segment) {
      // Seal the full segment before anything lands in the next one.
      if (_unsynced) {
        uint64_t written = _durable_lsn;
        if (auto s = co_await _file->datasync(); !s) {
          fail_for_good("fdatasync failed", s.error());
          co_return s;
        }
        _synced_lsn = written;
        g_syncs.inc();
      }
      _unsynced = false;
      co_await _file->close();
      _file.reset();
      _file_segment = 0;
    }
    if (auto r = co_await open_segment(b.segment); !r) co_return r;
  }
  size_t n = round_block(b.len);
  std::memset(b.data + b.len, 0, n - b.len);
  uint64_t t0 = io::monotonic_ns();
  bool dsync = _opts.sync == wal_sync::always;
  for (size_t done = 0; done < n;) {
    size_t chunk = std::min(n - done, torn_window);
    if (auto w = co_await _file->write_at(b.file_off + done, {b.data + done, chunk}, dsync); !w) {
      // Only a lack of space is known to leave the disk as it was. Any other
      // error (EIO) may have damaged the block this write rewrote, or, with
      // RWF_DSYNC, failed the sync after the data went out.
      if (is_space_error(w.error())) set_failing(w.error());
      else fail_for_good(dsync ? "write with RWF_DSYNC failed" : "write failed", w.error());
      co_return w;
    }
    done += chunk;
  }
  // A quarter into a segment, the next one is prepared (created, allocated and
  // zero-filled) off the critical path.
  uint64_t next = _file_segment + 1;
  if (_opts.prepare_next && b.file_off + n >= _opts.segment_bytes / 4 && !_preparing && _spare_segment != next &&
      !_closing) {
    _preparing = true;
    (void)io::spawn(_tasks, prepare_segment(next));
  }
  g_bytes.inc({}, double(n));
  g_batch.observe(double(b.records));
  if (dsync) {
    _synced_lsn = b.last_lsn;
    g_syncs.inc();
    g_sync_seconds.observe(double(io::monotonic_ns() - t0) / 1e9);
  } else {
    _unsynced = true;
  }
  co_return io::result<void>{};
}

io::task<void> wal::delete_old_segments() {
  uint64_t now = unix_ms_now();
  while (!_segments.empty()) {
    auto it = _segments.begin();
    const segment_info& s = it->second;
    if (it->first >= _file_segment || it->first >= _active.segment) break;
    if (s.newest_end_ms + uint64_t(_opts.retention.count()) > now) break;
    if (s.unfinished) {
      if (_held) _held(it->first);
      break;
    }
    if (_retire) {
      uint64_t before = _next_lsn;
      bool kept = _retire(it->first);
      if (_next_lsn != before) _retire_lsn = _next_lsn - 1;
      if (!kept) break;
    }
    // The next sweep deletes it, once what _retire wrote again is durable.
    if (!stable(_retire_lsn)) break;
    std::string path = s.path;
    if (auto r = co_await _storage.remove(path); !r) {
      XLOG(warn, "%s: cannot delete an expired WAL segment: %s", path.c_str(), r.error().message().c_str());
      break;
    }
    _segments.erase(it);
    _stats.segments = _segments.size();
    g_segments.add(-1);
  }
}

io::task<void> wal::ticker() {
  auto period = _opts.sync == wal_sync::batch ? _opts.batch_delay : std::chrono::milliseconds(1000);
  for (;;) {
    auto r = co_await io::sleep_for(period, &_stop);
    if (!r) co_return;
    notify();
  }
}

void wal::set_failing(std::error_code why, const char* what) {
  if (_failed) return;  // for good: nothing clears it, and it was logged
  if (why && !_failing) {
    XLOG(error, "WAL %s: %s: %s; refusing new traces until it succeeds (retry every %lld ms)", _opts.dir.c_str(),
         what, why.message().c_str(), static_cast<long long>(_opts.retry_delay.count()));
    g_unavailable.add(1);
  } else if (!why && _failing) {
    XLOG(info, "WAL %s: writes succeed again; accepting traces", _opts.dir.c_str());
    g_unavailable.add(-1);
  }
  _failing = bool(why);
  if (why) {
    _last_error = why;
    _failing_what = what;
  }
}

// After a failed fdatasync the kernel may have dropped the pages it could not
// write and marked them clean, so a later fdatasync can succeed without them
// ever reaching the disk (PostgreSQL's "fsyncgate", 2018). Only a restart, which
// reads back what the disk really holds, is safe.
void wal::fail_for_good(const char* what, std::error_code why) {
  ASSERT(bool(why));
  if (_failed) return;
  XLOG(error,
       "WAL %s: %s: %s. What was written since the last successful sync may not be on disk, and no later sync "
       "can prove it is: this shard refuses new traces until xerv is restarted. Check the disk (dmesg, SMART) "
       "and restart; recovery replays what reached it",
       _opts.dir.c_str(), what, why.message().c_str());
  if (!_failing) g_unavailable.add(1);
  g_failed.add(1);
  _failing = true;
  _failed = true;
  _last_error = why;
  _failing_what = what;
}

io::task<void> wal::flusher() {
  struct kick {
    wal& w;
    bool await_ready() {
      return std::exchange(w._kick, false);
    }
    void await_suspend(std::coroutine_handle<> h) { w._flusher_waiting = h; }
    void await_resume() {}
  };
  uint64_t last_sweep_ns = 0;
  while (!_failed) {
    // Periodic work runs between writes too: under steady load the buffer is
    // never empty when the flusher looks.
    uint64_t now = io::monotonic_ns();
    bool sync_due = _unsynced && (_closing || (_opts.sync == wal_sync::batch &&
                                               now - _last_sync_ns >= uint64_t(_opts.batch_delay.count()) * 1'000'000));
    if (sync_due) {
      uint64_t written = _durable_lsn;
      auto s = co_await _file->datasync();
      _last_sync_ns = now;
      if (!s) {
        g_errors.inc();
        fail_for_good("fdatasync failed", s.error());
        break;
      }
      g_syncs.inc();
      g_sync_seconds.observe(double(io::monotonic_ns() - now) / 1e9);
      _unsynced = false;
      _synced_lsn = written;
      set_failing({});
    }
    if (_sweeping && !_closing && now - last_sweep_ns >= 1'000'000'000) {
      last_sweep_ns = now;
      co_await delete_old_segments();
    }
    if (_active.records == 0) {
      if (_closing && !_unsynced) break;
      if (!_closing) co_await kick{*this};
      continue;
    }
    // Take the batch; new appends go to the other buffer, which starts with a copy
    // of the partial block this write ends in (the next write rewrites it).
    std::swap(_active, _flushing);
    _active.len = 0;
    _active.first_lsn = _active.last_lsn = 0;
    _active.records = 0;
    if (_flushing.file_off + _flushing.len >= _opts.segment_bytes) {
      _active.segment = _flushing.segment + 1;
      _active.file_off = 0;
    } else {
      size_t tail = _flushing.len % wal_block;
      _active.segment = _flushing.segment;
      _active.file_off = _flushing.file_off + _flushing.len - tail;
      _active.reserve(tail);
      std::memcpy(_active.data, _flushing.data + _flushing.len - tail, tail);
      _active.len = tail;
    }
    bool written = false;
    for (;;) {
      auto r = co_await write_batch(_flushing);
      if (r) {
        written = true;
        break;
      }
      g_errors.inc();
      complete_waiters(std::max(_flushing.last_lsn, _active.last_lsn), r.error());
      if (_failed) break;
      if (_closing) {
        XLOG(error, "WAL %s: giving up at shutdown; %u records were not written (none was acknowledged)",
             _opts.dir.c_str(), _flushing.records + _active.records);
        _active.records = 0;
        _flushing.len = 0;
        _unsynced = false;
        break;
      }
      (void)co_await io::sleep_for(_opts.retry_delay, &_stop);
    }
    if (!written) break;
    // batch: the next fdatasync decides; none never syncs before close.
    if (!_unsynced || _opts.sync == wal_sync::none) set_failing({});
    _durable_lsn = _flushing.last_lsn;
    complete_waiters(_durable_lsn, {});
    _flushing.len = 0;
  }
  // Failed for good: every waiter still here waits for a record not proven
  // durable, and no write will follow.
  if (_failed) complete_waiters(~uint64_t(0), _last_error);
  if (_file) co_await _file->close();
}

io::task<void> wal::close() {
  if (_closing) co_return;
  _closing = true;
  notify();
  _stop.cancel();
  co_await _tasks.close();
  complete_waiters(~uint64_t(0), io::errc::closed);
  if (_spare_segment) {
    co_await _spare->close();
    std::string spare = segment_path(std::exchange(_spare_segment, 0));
    (void)co_await _storage.remove(spare);
  }
}

}  // namespace xerv::core
