#pragma once
// The write-ahead log of one shard (SPEC §6). Design note: docs/durability.md.
//
// Records are appended to an in-memory buffer and made durable by one flusher
// coroutine per shard: while one write is in flight, new records accumulate, and
// the next write carries all of them (group commit). Every write starts on a 4 KiB
// boundary of an O_DIRECT segment file and rewrites the partial block the previous
// write ended in. With sync=always the write carries RWF_DSYNC, so one ring op makes
// a whole batch durable.
//
// On-disk record: a 24-byte header {crc32c, length, lsn, type, magic} followed by
// the payload, padded to 8 bytes. The CRC covers everything after the crc field.
// LSNs increase by one per record. A zero header (the preallocated, never written
// part of a segment) ends a segment.
//
// Lifecycle: open() on the owning shard (it replays the log), append()/wait() from
// that shard only, close() before destruction. No locks: everything is shard-local.
//
// Failures: a write refused for lack of space (ENOSPC, EDQUOT), and a failure to
// create the next segment (nothing is in it yet), are retried every retry_delay;
// the WAL is unhealthy meanwhile. Any other failed write, and every failed
// fdatasync (of a segment or of the directory), fails the WAL for good: the kernel
// may have dropped the unwritten pages, so a later successful sync proves
// nothing. From then on it refuses every append and every wait for a record not
// proven durable, until the process restarts and recovery reads what is on disk.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "core/wal_storage.h"
#include "io/cancel.h"
#include "io/file.h"
#include "io/gate.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::core {

enum class wal_sync { always, batch, none };
const char* to_string(wal_sync s);

struct wal_options {
  std::string dir;  // one directory per shard
  wal_sync sync = wal_sync::always;
  uint64_t segment_bytes = 64ull << 20;
  std::chrono::milliseconds batch_delay{10};  // sync=batch: fdatasync at least this often
  std::chrono::milliseconds retention{3'600'000};  // finished traces stay this long
  std::chrono::milliseconds retry_delay{1'000};  // after a failed write (disk full)
  bool skip_corrupt = false;
  bool prepare_next = true;  // create and zero-fill the next segment in the background
  size_t buffered_max = 64u << 20;  // appends beyond this while the disk refuses writes are refused
  wal_storage* storage = nullptr;  // null: the real file system; else it must outlive the wal
};

struct wal_record_header {
  uint32_t crc;
  uint32_t length;
  uint64_t lsn;
  uint32_t type;
  uint32_t magic;
};
static_assert(sizeof(wal_record_header) == 24);
inline constexpr uint32_t wal_magic = 0x4c415758;  // "XWAL"
inline constexpr uint32_t wal_record_max = 64u << 20;
inline constexpr size_t wal_block = io::aligned_buffer::alignment;

struct wal_record {
  uint64_t lsn;
  uint32_t type;
  uint64_t segment;  // sequence number of the segment file holding it
  std::string_view payload;
  uint64_t offset = 0;  // of its header in the segment file
};

// Where a record is, to read it back later (wal::read).
struct wal_location {
  uint64_t segment = 0;
  uint64_t offset = 0;  // of its header
  uint32_t length = 0;  // of its payload
  uint64_t lsn = 0;
  static wal_location of(const wal_record& r) {
    return {r.segment, r.offset, uint32_t(r.payload.size()), r.lsn};
  }
};

// The result of decoding one segment's bytes.
struct segment_scan {
  size_t valid_end = 0;   // end of the last good record
  uint64_t last_lsn = 0;
  bool corrupt = false;   // bytes at valid_end are not a record (or are zeros with records after them)
  bool more_after = false;  // ... and a good record follows far enough to rule out a torn write
  std::string reason;
};

// Decodes records from `bytes` (pure; used by recovery and by `xerv inspect`).
// `prev_lsn` is the last LSN of the previous segment (0: any).
segment_scan scan_segment(std::string_view bytes, uint64_t segment, uint64_t prev_lsn,
                          const std::function<void(const wal_record&)>& on_record);

// Segment files of `dir`, oldest first: {sequence, path}.
std::vector<std::pair<uint64_t, std::string>> list_segments(const std::string& dir);

struct wal_stats {
  uint64_t segments = 0;
  uint64_t recovered_records = 0;
  uint64_t truncated_bytes = 0;  // torn tail cut at open
  uint64_t skipped_corrupt = 0;  // segments cut short by --wal-skip-corrupt
};

class wal {
 public:
  using replay_fn = std::function<void(const wal_record&)>;
  // An error names the file and the offset.
  using open_result = std::variant<std::unique_ptr<wal>, std::string>;

  // Creates `dir`, replays every record through `replay` (oldest first), cuts a
  // torn tail, and starts a fresh segment for new records.
  static io::task<open_result> open(wal_options opts, replay_fn replay);
  ~wal();

  // Appends a record; returns its LSN, or 0 when refused (the disk has been
  // refusing writes and the buffer is full). Never suspends.
  uint64_t append(uint32_t type, std::string_view payload);
  // Where the last record append() took is (and will stay).
  wal_location last_location() const { return _last; }
  // Reads back the payload of a record appended or replayed earlier, checked
  // (CRC, LSN); the caller keeps its segment from being deleted (trace_started).
  // From memory while it is not written yet, else from its segment file.
  io::task<io::result<std::string>> read(wal_location at);
  // Completes when `lsn` is durable as the sync mode defines it: always: written
  // and synced; batch: written (fdatasync follows within batch_delay); none: at once.
  // Fails when the write carrying it failed (disk full: it is retried later), and
  // once the WAL has failed for good, unless `lsn` was synced before that.
  io::task<io::result<void>> wait(uint64_t lsn);
  // False while writes are failing, for a while (disk full) or for good (failed());
  // admissions should be refused meanwhile.
  bool healthy() const { return !_failing; }
  // Up to `lsn` is as safe as the sync mode makes it: on stable storage
  // (always, batch), or written (none).
  bool stable(uint64_t lsn) const { return lsn <= (_opts.sync == wal_sync::batch ? _synced_lsn : _durable_lsn); }
  // True once a sync or a write failed in a way no retry can repair; stays true
  // until the process restarts.
  bool failed() const { return _failed; }
  // Why the WAL is unhealthy ("fdatasync failed: Input/output error",
  // "write failed: No space left on device"); empty while healthy.
  std::string failure() const;
  // The segment new records go to (for retention accounting).
  uint64_t active_segment() const { return _active.segment; }

  // Retention accounting: a segment is deleted once every trace started in it has
  // finished more than `retention` ago, and the segments before it are gone.
  // Nothing is deleted before start_sweeping(): the replayed traces must be
  // accounted for first.
  void trace_started(uint64_t segment);
  void trace_finished(uint64_t segment, uint64_t end_unix_ms);
  void start_sweeping() { _sweeping = true; }
  // Called on the shard right before an expired segment is deleted; records it
  // appends (state that must outlive the segment, written again) are durable
  // (synced, with sync=batch) before the segment goes. It returns false when an
  // append was refused: the segment stays.
  void on_retire(std::function<bool(uint64_t segment)> fn) { _retire = std::move(fn); }
  // Called on the shard, at most once a second, while the oldest segment has
  // expired but traces started in it are unfinished (trace_started without
  // trace_finished), which keeps it and every later segment: a holder that can
  // write its state again (a suspension, flows/engine.h) does so, and calls
  // trace_finished once the copy is durable.
  void on_held(std::function<void(uint64_t segment)> fn) { _held = std::move(fn); }

  const wal_stats& stats() const { return _stats; }
  const wal_options& options() const { return _opts; }

  // Writes and syncs everything appended, then stops the flusher.
  io::task<void> close();

 private:
  struct buffer {
    char* data = nullptr;
    size_t cap = 0;
    size_t len = 0;
    uint64_t file_off = 0;   // where data[0] goes; a multiple of wal_block
    uint64_t segment = 0;
    uint64_t first_lsn = 0;  // 0: no record in it yet
    uint64_t last_lsn = 0;
    uint32_t records = 0;
    void reserve(size_t n);
    void release();
  };
  struct waiter {
    uint64_t lsn;
    std::coroutine_handle<> h;
    io::result<void>* out;
  };
  struct wait_op;
  struct segment_info {
    std::string path;
    uint32_t unfinished = 0;
    uint64_t newest_end_ms = 0;
  };

  explicit wal(wal_options opts);
  io::task<std::string> recover_segment(uint64_t seq, std::string path, std::unique_ptr<wal_file> file,
                                        std::string bytes, bool newest, uint64_t* prev_lsn, const replay_fn* replay);
  io::task<void> flusher();
  io::task<void> ticker();
  io::task<io::result<void>> write_batch(buffer& b);
  io::task<io::result<std::unique_ptr<wal_file>>> create_segment(uint64_t seq, bool zero_fill);
  io::task<void> prepare_segment(uint64_t seq);
  io::task<io::result<void>> open_segment(uint64_t seq);
  io::task<void> delete_old_segments();
  void complete_waiters(uint64_t up_to, io::result<void> r);
  void notify();
  void set_failing(std::error_code why, const char* what = "write failed");  // none: healthy again
  void fail_for_good(const char* what, std::error_code why);
  std::string segment_path(uint64_t seq) const;

  wal_options _opts;
  wal_storage& _storage;
  buffer _active, _flushing;
  uint64_t _next_lsn = 1;
  uint64_t _durable_lsn = 0;     // waits up to here have completed (written as the sync mode asks)
  uint64_t _synced_lsn = 0;      // up to here is on stable storage (RWF_DSYNC or fdatasync)
  std::deque<waiter> _waiters;  // ordered by lsn
  std::unique_ptr<wal_file> _file;
  uint64_t _file_segment = 0;   // 0: none open
  std::unique_ptr<wal_file> _spare;  // the next segment, prepared ahead
  wal_location _last;
  std::function<bool(uint64_t)> _retire;
  std::function<void(uint64_t)> _held;
  uint64_t _retire_lsn = 0;  // the last record _retire appended
  uint64_t _spare_segment = 0;  // 0: none
  bool _preparing = false;
  std::coroutine_handle<> _prepare_waiter;
  bool _unsynced = false;       // sync=batch/none: written but not fdatasync'ed
  uint64_t _last_sync_ns = 0;
  bool _failing = false;
  std::error_code _last_error;  // why writes are failing
  std::string _failing_what;    // which operation failed
  bool _failed = false;         // for good: see failed()
  bool _closing = false;
  bool _sweeping = false;
  std::coroutine_handle<> _flusher_waiting;
  bool _kick = false;
  io::cancel_source _stop;
  io::gate _tasks;
  std::map<uint64_t, segment_info> _segments;
  wal_stats _stats;
};

}  // namespace xerv::core
