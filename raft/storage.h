#pragma once
// The persistent state of one Raft node (Ongaro's dissertation §3.8: the term,
// the vote and the log reach stable storage before the node answers anyone;
// §5: snapshots replace the log before them).
//
// Layout under storage_options::dir:
//   wal/   one core::wal: hard-state, entries and snapshot-marker records
//   snap/  <index>-<term>.snap files: a 48-byte header (crc32c, magic, version,
//          index, term, config length, data length), the configuration, the data
//
// WAL records (payloads in core/codec.h's framing):
//   hard     {term, vote, commit}: the latest one wins
//   entries  {first index, count, then per entry {term, kind, data}}: replaces
//            the log from `first index` on (a follower's conflicting suffix, §3.5)
//   snapshot {kind, index, term}: install (from a leader: the whole log before
//            it is gone) or compact (the node's own snapshot: entries up to it
//            are covered by the file)
//
// Recovery (after kill -9 at any instant): replay rebuilds the log, then the
// newest snapshot file whose CRC holds and that the log connects to is picked;
// files newer than the newest marker (written, marker not yet durable) are
// deleted. The commit index is clamped into [snapshot index, last index].
//
// Retention: the WAL keeps the entries after the older of the two newest
// snapshots, so a newest file found corrupt at open falls back to the previous
// one and the log after it. Segments go through the WAL's retention hooks.
//
// Lives on one shard; after open() it makes no blocking call. Call close()
// once every persist() and save_snapshot() has completed.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/wal.h"
#include "io/cancel.h"
#include "io/event.h"
#include "io/result.h"
#include "io/task.h"
#include "raft/node.h"

namespace xerv::raft {

struct storage_options {
  std::string dir;  // e.g. DATA_DIR/raft; created if missing
  core::wal_sync sync = core::wal_sync::always;
  uint64_t segment_bytes = 64ull << 20;
  // The WAL's file system (null: the real one; tests inject faults). Snapshot
  // files always use io/file.h: the seam has no rename.
  core::wal_storage* files = nullptr;
};

class storage {
 public:
  using open_result = std::variant<std::unique_ptr<storage>, std::string>;  // an error names file and offset

  // On the owning shard: replays the WAL, picks the snapshot, starts compaction.
  static io::task<open_result> open(storage_options o);
  ~storage();
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  // What was on disk, for node's constructor; moved out once.
  restored take_restored();

  // One ready's durable part: r.snap (written as a file first), r.hard, then
  // r.entries (replacing the stored log from entries.front().index on).
  // Completes when durable per the sync mode, and never before an earlier
  // persist() has. Appends at the call, before returning the task, unless an
  // earlier persist is still writing its snapshot file: then its records queue
  // behind that one's, in call order. A failed persist leaves the stored log
  // behind the node's: the caller stops the node (a restart replays the disk).
  io::task<io::result<void>> persist(const ready& r);

  // The state machine's own snapshot as of s.index (applied): a synced file,
  // then a WAL marker. Afterwards segments holding only entries at or below
  // the previous snapshot's index are deleted. Older than the newest: a no-op.
  io::task<io::result<void>> save_snapshot(const snapshot& s);

  bool healthy() const;
  std::string failure() const;  // empty while healthy
  // Snapshot files found corrupt at open (skipped), one line each.
  const std::vector<std::string>& warnings() const { return _warnings; }

  io::task<void> close();

 private:
  struct snap_file {
    index_t index;
    term_t term;
    std::string path;
  };
  struct pending {  // a record encoded at the call, appended in turn
    uint32_t type = 0;
    std::string payload;
    index_t last;  // entries records: the last index in it
  };
  struct replayed;
  struct busy;

  explicit storage(storage_options o);
  // Picks the snapshot, builds what take_restored() hands out; an error names the file.
  io::task<std::string> recover(std::unique_ptr<replayed> rp);
  std::string adopt(replayed& rp, std::optional<snapshot> chosen);
  std::string snap_path(index_t i, term_t t) const;
  // False: an entry too big for one WAL record.
  static bool encode_entries(const std::vector<entry>& es, std::vector<pending>& out);
  // Appends `recs` in order; false when the WAL refused one (the storage fails).
  bool append(std::vector<pending>& recs, const std::optional<hard_state>& hard,
              const std::optional<snap_file>& installed);
  io::task<io::result<void>> wait_in_turn(uint64_t ticket);
  io::task<io::result<void>> appended(uint64_t lsn);
  io::task<io::result<void>> persist_queued(uint64_t ticket, std::vector<pending> recs, std::optional<hard_state> hard);
  io::task<io::result<void>> persist_install(uint64_t ticket, snapshot s, std::vector<pending> recs,
                                             std::optional<hard_state> hard);
  io::task<io::result<void>> save(snapshot s);
  void hold(uint64_t segment, index_t last);
  void release_upto(index_t i);
  void release_before(uint64_t segment);
  // A snapshot's marker is durable: keep the newest two files, let the WAL go.
  io::task<void> snapshot_durable(snap_file f, uint64_t install_segment);
  bool on_retire(uint64_t segment);
  void fail(std::string why);
  std::error_code failed_code() const;

  storage_options _opts;
  std::unique_ptr<core::wal> _wal;
  restored _restored;
  bool _taken = false;
  std::vector<std::string> _warnings;
  std::string _failure;  // set once: a record or a snapshot file was lost
  bool _closing = false;

  // As appended (what on_retire writes again before a segment goes).
  std::optional<hard_state> _hard;
  index_t _marker_index;
  term_t _marker_term;
  uint64_t _hard_segment = 0, _marker_segment = 0;
  uint64_t _last_lsn = 0;
  // As promised at the calls (the checks of the next call).
  term_t _promised_term;
  index_t _promised_snapshot;

  std::vector<snap_file> _snaps;   // marker durable, oldest first, at most two
  std::vector<std::string> _stale;  // snapshot files to delete
  std::map<uint64_t, index_t> _holds;  // segment → the highest entry index in it (trace_started)

  // Call order for appends while an installed snapshot's file is written.
  uint64_t _next_ticket = 0, _serving = 0;
  io::event _turn;
  io::cancel_source _stop;
  unsigned _busy = 0;
  io::event _idle;
  io::cancel_source _never;
};

}  // namespace xerv::raft
