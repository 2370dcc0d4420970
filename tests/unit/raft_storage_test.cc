// raft::storage on a real runtime and real files under a fresh /tmp directory:
// hard state and log across close and reopen (conflicting suffixes), installed
// and saved snapshots, compaction of WAL segments, a corrupt snapshot file, torn
// WAL tails (what kill -9 or a power cut leaves) and the clamped commit index.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/wal.h"
#include "io/ops.h"
#include "io/when_all.h"
#include "raft/membership.h"
#include "raft/node.h"
#include "raft/storage.h"
#include "tests/run_on.h"

using namespace xerv;
using namespace std::chrono_literals;
using raft::entry;
using raft::hard_state;
using raft::index_t;
using raft::node_id;
using raft::ready;
using raft::restored;
using raft::snapshot;
using raft::storage;
using raft::storage_options;
using raft::term_t;

namespace xerv::raft {
std::ostream& operator<<(std::ostream& os, const entry& e) {
  return os << "{" << e.index.value << "@" << e.term.value << (e.kind == entry_kind::config ? " config " : " ")
            << e.data.substr(0, 12) << "}";
}
bool operator==(const entry& a, const entry& b) {
  return a.index == b.index && a.term == b.term && a.kind == b.kind && a.data == b.data;
}
std::ostream& operator<<(std::ostream& os, const hard_state& h) {
  return os << "{term " << h.term.value << ", vote " << h.vote.value << ", commit " << h.commit.value << "}";
}
}  // namespace xerv::raft

namespace {

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = "/tmp/xerv-raft-storage-test.XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    _path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(_path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return _path; }

 private:
  std::string _path;
};

std::string data_for(uint64_t index, uint64_t term, size_t size) {
  std::string d = std::to_string(index) + "@" + std::to_string(term) + ":";
  while (d.size() < size) d.push_back(char('a' + (d.size() * 7 + index) % 26));
  return d;
}

// Entries from..to of one term.
std::vector<entry> entries(uint64_t from, uint64_t to, uint64_t term, size_t size = 16) {
  std::vector<entry> out;
  for (uint64_t i = from; i <= to; ++i) out.push_back({term_t(term), index_t(i), data_for(i, term, size)});
  return out;
}

void append(std::vector<entry>& log, std::vector<entry> more) {
  uint64_t from = more.front().index.value;
  while (!log.empty() && log.back().index.value >= from) log.pop_back();
  log.insert(log.end(), more.begin(), more.end());
}

hard_state hs(uint64_t term, uint64_t vote, uint64_t commit) { return {term_t(term), node_id(vote), index_t(commit)}; }

struct opened {
  std::unique_ptr<storage> s;
  std::string error;
  restored from;
};

io::task<opened> open_storage(storage_options o) {
  opened out;
  auto opening = storage::open(std::move(o));
  storage::open_result r = co_await std::move(opening);
  if (auto* e = std::get_if<std::string>(&r)) {
    out.error = *e;
    co_return out;
  }
  out.s = std::move(std::get<std::unique_ptr<storage>>(r));
  out.from = out.s->take_restored();
  co_return out;
}

io::task<void> close_storage(storage& s) {
  auto closing = s.close();
  co_await std::move(closing);
}

// Opens, takes what was restored, closes.
io::task<opened> reopen(storage_options o) {
  auto opening = open_storage(std::move(o));
  opened out = co_await std::move(opening);
  if (out.s) {
    auto closing = close_storage(*out.s);
    co_await std::move(closing);
  }
  co_return out;
}

io::task<bool> persist(storage& s, ready r) {
  auto persisting = s.persist(r);
  auto res = co_await std::move(persisting);
  EXPECT_TRUE(res) << res.error().message();
  co_return bool(res);
}

io::task<bool> save(storage& s, snapshot snap) {
  auto saving = s.save_snapshot(snap);
  auto res = co_await std::move(saving);
  EXPECT_TRUE(res) << res.error().message();
  co_return bool(res);
}

// Persists entries from..to in readies of `batch`, the hard state's commit
// following the last index (as a leader's would).
io::task<bool> persist_range(storage& s, std::vector<entry>& model, uint64_t from, uint64_t to, uint64_t term,
                             size_t size, size_t batch) {
  for (uint64_t i = from; i <= to; i += batch) {
    ready r;
    r.hard = hs(term, 1, std::min<uint64_t>(i + batch - 1, to));
    r.entries = entries(i, std::min<uint64_t>(i + batch - 1, to), term, size);
    append(model, r.entries);
    auto persisting = persist(s, std::move(r));
    bool ok = co_await std::move(persisting);
    if (!ok) co_return false;
  }
  co_return true;
}

std::vector<entry> after(const std::vector<entry>& log, uint64_t index) {
  std::vector<entry> out;
  for (auto& e : log)
    if (e.index.value > index) out.push_back(e);
  return out;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string snap_file(const std::string& dir, uint64_t index, uint64_t term) {
  char name[64];
  snprintf(name, sizeof name, "%020llu-%020llu.snap", static_cast<unsigned long long>(index),
           static_cast<unsigned long long>(term));
  return dir + "/snap/" + name;
}

void flip_byte(const std::string& path, uint64_t offset) {
  ASSERT_LT(offset, std::filesystem::file_size(path)) << path;
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x5a);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
  ASSERT_TRUE(f.good()) << path;
}

struct located {
  uint64_t offset = 0;
  uint32_t type = 0;
  size_t length = 0;
};

// The records of the newest segment holding any, and its path.
std::vector<located> last_segment_records(const std::string& wal_dir, std::string* path) {
  std::vector<located> out;
  for (auto& [seq, p] : core::list_segments(wal_dir)) {
    std::ifstream in(p, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<located> recs;
    core::scan_segment(bytes, seq, 0, [&recs](const core::wal_record& r) {
      recs.push_back({r.offset, r.type, r.payload.size()});
    });
    if (!recs.empty()) {
      out = std::move(recs);
      *path = p;
    }
  }
  return out;
}

// What kill -9 in the middle of a write leaves: the file ends inside a record.
void tear_at(const std::string& path, uint64_t length) { std::filesystem::resize_file(path, length); }

// The configuration of a snapshot (node decodes it): voter 1.
std::string one_voter() {
  raft::configuration c;
  c.voters.push_back(node_id(1));
  return c.encode();
}

// A node restarted from what the storage restored: its last index and commit
// index. A plain function: GCC 12 miscompiles some temporaries in coroutines.
std::pair<index_t, index_t> node_restored(uint64_t id, uint64_t voters, restored from) {
  raft::options no;
  no.id = node_id(id);
  for (uint64_t v = 1; v <= voters; ++v) no.voters.push_back(node_id(v));
  raft::node n(no, std::move(from));
  return {n.log().last_index(), n.commit_index()};
}

// ---------- tests ----------

io::task<int> round_trip(std::string dir) {
  storage_options o{.dir = dir};
  std::vector<entry> model;
  {
    auto opening = open_storage(o);
    opened a = co_await std::move(opening);
    EXPECT_EQ(a.error, "");
    if (!a.s) co_return 1;
    EXPECT_EQ(a.from.hard, hard_state{});
    EXPECT_FALSE(a.from.snap);
    EXPECT_TRUE(a.from.log.empty());
    ready r1;
    r1.hard = hs(2, 1, 3);
    r1.entries = entries(1, 3, 1);
    auto more = entries(4, 5, 2);
    more[1].kind = raft::entry_kind::config;
    r1.entries.insert(r1.entries.end(), more.begin(), more.end());
    append(model, r1.entries);
    auto p1 = persist(*a.s, r1);
    co_await std::move(p1);
    // A follower's conflicting suffix from 4 on, in a new term.
    ready r2;
    r2.hard = hs(3, 2, 4);
    r2.entries = entries(4, 6, 3);
    append(model, r2.entries);
    auto p2 = persist(*a.s, r2);
    co_await std::move(p2);
    EXPECT_TRUE(a.s->healthy());
    EXPECT_EQ(a.s->failure(), "");
    auto closing = close_storage(*a.s);
    co_await std::move(closing);
  }
  {
    auto opening = open_storage(o);
    opened b = co_await std::move(opening);
    EXPECT_EQ(b.error, "");
    if (!b.s) co_return 1;
    EXPECT_EQ(b.from.hard, hs(3, 2, 4));
    EXPECT_EQ(b.from.log, model);
    EXPECT_EQ(b.from.log.size(), 6u);
    // Truncation reaching into what the previous run wrote.
    ready r3;
    r3.hard = hs(4, 0, 4);
    r3.entries = entries(6, 7, 4);
    append(model, r3.entries);
    auto p3 = persist(*b.s, r3);
    co_await std::move(p3);
    ready r4;  // a vote alone
    r4.hard = hs(5, 3, 4);
    auto p4 = persist(*b.s, r4);
    co_await std::move(p4);
    auto closing = close_storage(*b.s);
    co_await std::move(closing);
  }
  auto reopening = reopen(o);
  opened c = co_await std::move(reopening);
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.from.hard, hs(5, 3, 4));
  EXPECT_EQ(c.from.log, model);
  EXPECT_EQ(c.from.log.back().term, term_t(4));
  co_return 0;
}

TEST(raft_storage, hard_state_and_log_round_trip_with_conflicting_suffixes) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, round_trip(d.path() + "/raft")), 0);
}

io::task<int> install(std::string dir) {
  storage_options o{.dir = dir};
  {
    auto opening = open_storage(o);
    opened a = co_await std::move(opening);
    if (!a.s) co_return 1;
    std::vector<entry> model;
    auto persisting = persist_range(*a.s, model, 1, 10, 1, 16, 5);
    co_await std::move(persisting);
    // As node::on_snapshot hands it out: snapshot, hard state, what follows.
    ready r;
    r.hard = hs(3, 0, 20);
    r.snap = snapshot{index_t(20), term_t(2), one_voter(), "state at 20"};
    r.entries = entries(21, 23, 3);
    // Two more right behind it, issued while its file is being written: their
    // records must follow its marker (replay would drop them before it).
    ready r2;
    r2.entries = entries(24, 24, 3);
    ready r3;
    r3.hard = hs(3, 1, 20);
    r3.entries = entries(25, 25, 3);
    auto t1 = a.s->persist(r);
    auto t2 = a.s->persist(r2);
    auto t3 = a.s->persist(r3);
    auto all = io::when_all(std::move(t1), std::move(t2), std::move(t3));
    auto [x1, x2, x3] = co_await std::move(all);
    EXPECT_TRUE(x1 && x2 && x3);
    auto closing = close_storage(*a.s);
    co_await std::move(closing);
  }
  auto reopening = reopen(o);
  opened b = co_await std::move(reopening);
  EXPECT_EQ(b.error, "");
  if (!b.s) co_return 1;
  EXPECT_TRUE(b.from.snap);
  if (b.from.snap) {
    EXPECT_EQ(b.from.snap->index, index_t(20));
    EXPECT_EQ(b.from.snap->term, term_t(2));
    EXPECT_EQ(b.from.snap->config, one_voter());
    EXPECT_EQ(b.from.snap->data, "state at 20");
  }
  auto want = entries(21, 25, 3);
  EXPECT_EQ(b.from.log, want);  // nothing of the log before it
  EXPECT_EQ(b.from.hard, hs(3, 1, 20));
  EXPECT_EQ(files_in(dir + "/snap"), std::vector<std::string>{"00000000000000000020-00000000000000000002.snap"});
  auto [last, commit] = node_restored(1, 1, std::move(b.from));
  EXPECT_EQ(last, index_t(25));
  EXPECT_EQ(commit, index_t(20));
  co_return 0;
}

TEST(raft_storage, an_installed_snapshot_replaces_the_log_before_it) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, install(d.path())), 0);
}

size_t segments_of(const std::string& dir) { return core::list_segments(dir + "/wal").size(); }
uint64_t oldest_segment(const std::string& dir) {
  auto s = core::list_segments(dir + "/wal");
  return s.empty() ? 0 : s.front().first;
}

// The WAL sweeps about once a second.
io::task<bool> until_oldest_segment_above(std::string dir, uint64_t seq) {
  for (int i = 0; i < 100 && oldest_segment(dir) <= seq; ++i) {
    auto sleeping = io::sleep_for(100ms);
    (void)co_await std::move(sleeping);
  }
  co_return oldest_segment(dir) > seq;
}

io::task<int> compaction(std::string dir) {
  // 64 KiB segments, ~2 KiB entries: a segment every ~30 entries.
  storage_options o{.dir = dir, .segment_bytes = 64 << 10};
  std::vector<entry> model;
  {
    auto opening = open_storage(o);
    opened a = co_await std::move(opening);
    if (!a.s) co_return 1;
    auto p1 = persist_range(*a.s, model, 1, 300, 1, 2000, 10);
    co_await std::move(p1);
    size_t before = segments_of(dir);
    EXPECT_GE(before, 8u);
    auto s1 = save(*a.s, snapshot{index_t(200), term_t(1), "", "state at 200"});
    co_await std::move(s1);
    auto p2 = persist_range(*a.s, model, 301, 600, 1, 2000, 10);
    co_await std::move(p2);
    // The segments holding only entries <= 200 go (some 6 of them); the
    // reopen below shows that the ones after stay.
    auto waiting = until_oldest_segment_above(dir, 3);
    bool gone = co_await std::move(waiting);
    EXPECT_TRUE(gone) << "oldest segment " << oldest_segment(dir);
    auto closing = close_storage(*a.s);
    co_await std::move(closing);
  }
  {
    auto opening = open_storage(o);
    opened b = co_await std::move(opening);
    EXPECT_EQ(b.error, "");
    if (!b.s) co_return 1;
    EXPECT_TRUE(b.from.snap);
    if (b.from.snap) {
      EXPECT_EQ(b.from.snap->data, "state at 200");
    }
    EXPECT_EQ(b.from.log, after(model, 200));
    EXPECT_EQ(b.from.hard, hs(1, 1, 600));
    // Two more: the WAL keeps what follows the older of the two newest.
    auto s2 = save(*b.s, snapshot{index_t(500), term_t(1), "", "state at 500"});
    co_await std::move(s2);
    uint64_t oldest = oldest_segment(dir);
    auto s3 = save(*b.s, snapshot{index_t(550), term_t(1), "", "state at 550"});
    co_await std::move(s3);
    auto waiting = until_oldest_segment_above(dir, oldest);
    bool gone = co_await std::move(waiting);
    EXPECT_TRUE(gone) << "oldest segment " << oldest_segment(dir);
    // The snapshot at 200 is no longer one of the newest two.
    EXPECT_FALSE(std::filesystem::exists(snap_file(dir, 200, 1)));
    auto closing = close_storage(*b.s);
    co_await std::move(closing);
  }
  auto reopening = reopen(o);
  opened c = co_await std::move(reopening);
  EXPECT_EQ(c.error, "");
  EXPECT_TRUE(c.from.snap);
  if (c.from.snap) {
    EXPECT_EQ(c.from.snap->index, index_t(550));
  }
  EXPECT_EQ(c.from.log, after(model, 550));
  // The newest rots: the previous one and the entries after it restore the state.
  flip_byte(snap_file(dir, 550, 1), 50);
  auto again = reopen(o);
  opened e = co_await std::move(again);
  EXPECT_EQ(e.error, "");
  EXPECT_TRUE(e.from.snap);
  if (e.from.snap) {
    EXPECT_EQ(e.from.snap->data, "state at 500");
  }
  EXPECT_EQ(e.from.log, after(model, 500));
  EXPECT_EQ(e.s ? e.s->warnings().size() : 0u, 1u);
  // Both rot: the log no longer reaches back far enough, and open says so.
  flip_byte(snap_file(dir, 500, 1), 50);
  auto last = reopen(o);
  opened f = co_await std::move(last);
  EXPECT_FALSE(f.s);
  EXPECT_NE(f.error.find("no snapshot file connects"), std::string::npos) << f.error;
  co_return 0;
}

TEST(raft_storage, saved_snapshots_let_old_segments_go_and_reopen_stays_exact) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, compaction(d.path())), 0);
}

// The newest hard state and snapshot marker sit in segments that nothing else
// keeps: they are written again before those go, or the next open would find
// neither the term and vote nor where the log starts.
io::task<int> retire(std::string dir) {
  storage_options o{.dir = dir, .segment_bytes = 64 << 10};
  std::vector<entry> model;
  uint64_t last_old = 0;
  {
    auto opening = open_storage(o);
    opened a = co_await std::move(opening);
    if (!a.s) co_return 1;
    for (uint64_t i = 1; i <= 100; i += 10) {
      ready r;
      if (i == 1) r.hard = hs(4, 2, 10);  // once, in the first segment
      r.entries = entries(i, i + 9, 4, 2000);
      append(model, r.entries);
      auto p = persist(*a.s, r);
      co_await std::move(p);
    }
    auto s = save(*a.s, snapshot{index_t(100), term_t(4), "", "state at 100"});
    co_await std::move(s);
    auto closing = close_storage(*a.s);
    co_await std::move(closing);
    last_old = core::list_segments(dir + "/wal").back().first;  // (close removed the spare)
    EXPECT_GE(last_old, 3u);
  }
  {
    // Every old segment holds entries <= 100 only: all of them go, the
    // first holding the hard state, the last the marker.
    auto opening = open_storage(o);
    opened b = co_await std::move(opening);
    EXPECT_EQ(b.error, "");
    if (!b.s) co_return 1;
    EXPECT_TRUE(b.from.log.empty());
    // The WAL deletes nothing before it has written to its new segment.
    ready r;
    r.entries = entries(101, 101, 4);
    append(model, r.entries);
    auto p = persist(*b.s, r);
    co_await std::move(p);
    auto waiting = until_oldest_segment_above(dir, last_old);
    bool gone = co_await std::move(waiting);
    EXPECT_TRUE(gone) << "oldest segment " << oldest_segment(dir);
    auto closing = close_storage(*b.s);
    co_await std::move(closing);
  }
  auto reopening = reopen(o);
  opened c = co_await std::move(reopening);
  EXPECT_EQ(c.error, "");
  EXPECT_TRUE(c.from.snap);
  if (c.from.snap) {
    EXPECT_EQ(c.from.snap->index, index_t(100));
  }
  EXPECT_EQ(c.from.hard, hs(4, 2, 100));
  EXPECT_EQ(c.from.log, after(model, 100));
  co_return 0;
}

TEST(raft_storage, the_hard_state_and_marker_outlive_the_segments_they_were_in) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, retire(d.path())), 0);
}

io::task<int> corrupt_newest(std::string dir) {
  storage_options o{.dir = dir};
  std::vector<entry> model;
  {
    auto opening = open_storage(o);
    opened a = co_await std::move(opening);
    if (!a.s) co_return 1;
    auto p1 = persist_range(*a.s, model, 1, 30, 2, 16, 3);
    co_await std::move(p1);
    auto s1 = save(*a.s, snapshot{index_t(10), term_t(2), "c10", "state at 10"});
    co_await std::move(s1);
    auto s2 = save(*a.s, snapshot{index_t(20), term_t(2), "c20", "state at 20"});
    co_await std::move(s2);
    auto p2 = persist_range(*a.s, model, 31, 40, 2, 16, 3);
    co_await std::move(p2);
    auto closing = close_storage(*a.s);
    co_await std::move(closing);
  }
  std::string newest = snap_file(dir, 20, 2);
  flip_byte(newest, std::filesystem::file_size(newest) - 1);  // the last byte of its data
  auto reopening = reopen(o);
  opened b = co_await std::move(reopening);
  EXPECT_EQ(b.error, "");
  if (!b.s) co_return 1;
  EXPECT_TRUE(b.from.snap);
  if (b.from.snap) {
    EXPECT_EQ(b.from.snap->index, index_t(10));
    EXPECT_EQ(b.from.snap->config, "c10");
    EXPECT_EQ(b.from.snap->data, "state at 10");
  }
  EXPECT_EQ(b.from.log, after(model, 10));
  EXPECT_EQ(b.from.hard.commit, index_t(40));
  EXPECT_EQ(b.s->warnings().size(), 1u);
  if (!b.s->warnings().empty()) {
    EXPECT_NE(b.s->warnings()[0].find(newest), std::string::npos);
  }
  // Both rotten, and nothing compacted yet: the whole log from 1.
  flip_byte(snap_file(dir, 10, 2), 50);
  auto again = reopen(o);
  opened c = co_await std::move(again);
  EXPECT_EQ(c.error, "");
  EXPECT_FALSE(c.from.snap);
  EXPECT_EQ(c.from.log, model);
  co_return 0;
}

TEST(raft_storage, a_corrupt_newest_snapshot_falls_back_to_the_previous_one) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, corrupt_newest(d.path())), 0);
}

// Two readies, each a hard state and entries (the second's of a new term, and big).
io::task<int> write_two_readies(storage_options o, std::vector<entry>* model) {
  auto opening = open_storage(o);
  opened a = co_await std::move(opening);
  if (!a.s) co_return 1;
  ready r1;
  r1.hard = hs(1, 1, 0);
  r1.entries = entries(1, 5, 1);
  append(*model, r1.entries);
  auto p1 = persist(*a.s, r1);
  co_await std::move(p1);
  ready r2;
  r2.hard = hs(2, 2, 8);
  r2.entries = entries(6, 8, 2, 3000);
  auto p2 = persist(*a.s, r2);
  co_await std::move(p2);
  auto closing = close_storage(*a.s);
  co_await std::move(closing);
  co_return 0;
}

io::task<int> torn_tail(std::string dir) {
  storage_options o{.dir = dir, .segment_bytes = 1 << 20};
  std::vector<entry> model;
  auto writing = write_two_readies(o, &model);
  int written = co_await std::move(writing);
  if (written) co_return 1;
  std::string seg;
  auto recs = last_segment_records(dir + "/wal", &seg);
  EXPECT_EQ(recs.size(), 4u);  // hard, entries, hard, entries
  if (recs.size() != 4) co_return 1;
  EXPECT_EQ(recs[2].type, recs[0].type);
  // Inside the second ready's entries: its hard state (commit 8) survives.
  tear_at(seg, recs[3].offset + 24 + recs[3].length / 2);
  auto reopening = reopen(o);
  opened b = co_await std::move(reopening);
  EXPECT_EQ(b.error, "");
  if (!b.s) co_return 1;
  EXPECT_EQ(b.from.log, model);
  EXPECT_EQ(b.from.hard, hs(2, 2, 5));  // commit clamped to the last index restored
  auto [last, commit] = node_restored(2, 3, std::move(b.from));  // the node asserts commit <= last index
  EXPECT_EQ(last, index_t(5));
  EXPECT_EQ(commit, index_t(5));
  co_return 0;
}

TEST(raft_storage, a_torn_tail_reopens_to_a_prefix_with_the_commit_clamped) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, torn_tail(d.path())), 0);
}

io::task<int> torn_hard_state(std::string dir) {
  storage_options o{.dir = dir, .segment_bytes = 1 << 20};
  std::vector<entry> model;
  auto writing = write_two_readies(o, &model);
  int written = co_await std::move(writing);
  if (written) co_return 1;
  std::string seg;
  auto recs = last_segment_records(dir + "/wal", &seg);
  if (recs.size() != 4) co_return 1;
  EXPECT_EQ(recs[2].type, recs[0].type);  // the hard state comes before the entries
  // Inside the second ready's hard state: nothing of term 2 may survive.
  tear_at(seg, recs[2].offset + 30);
  auto reopening = reopen(o);
  opened b = co_await std::move(reopening);
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(b.from.log, model);
  EXPECT_EQ(b.from.hard, hs(1, 1, 0));
  co_return 0;
}

TEST(raft_storage, a_tear_inside_the_hard_state_loses_the_entries_of_its_term_too) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, torn_hard_state(d.path())), 0);
}

io::task<int> commit_floor(std::string dir) {
  storage_options o{.dir = dir};
  std::vector<entry> model;
  {
    auto opening = open_storage(o);
    opened a = co_await std::move(opening);
    if (!a.s) co_return 1;
    ready r;
    r.hard = hs(1, 1, 3);  // the saved commit lags
    r.entries = entries(1, 30, 1);
    append(model, r.entries);
    auto p = persist(*a.s, r);
    co_await std::move(p);
    auto s = save(*a.s, snapshot{index_t(25), term_t(1), "", "state at 25"});
    co_await std::move(s);
    auto closing = close_storage(*a.s);
    co_await std::move(closing);
  }
  auto reopening = reopen(o);
  opened b = co_await std::move(reopening);
  EXPECT_EQ(b.error, "");
  EXPECT_TRUE(b.from.snap);
  EXPECT_EQ(b.from.hard.commit, index_t(25));
  EXPECT_EQ(b.from.log, after(model, 25));
  co_return 0;
}

TEST(raft_storage, the_commit_index_is_never_below_the_snapshot) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, commit_floor(d.path())), 0);
}

// kill -9 after a snapshot's file was renamed into place but before its WAL
// marker was written: the file is not trusted (the log is still whole).
io::task<int> unmarked_snapshot(std::string dir) {
  storage_options o{.dir = dir, .segment_bytes = 1 << 20};
  std::vector<entry> model;
  {
    auto opening = open_storage(o);
    opened a = co_await std::move(opening);
    if (!a.s) co_return 1;
    auto p = persist_range(*a.s, model, 1, 10, 1, 16, 10);
    co_await std::move(p);
    auto s = save(*a.s, snapshot{index_t(8), term_t(1), "", "state at 8"});
    co_await std::move(s);
    auto closing = close_storage(*a.s);
    co_await std::move(closing);
  }
  std::string seg;
  auto recs = last_segment_records(dir + "/wal", &seg);
  EXPECT_EQ(recs.size(), 3u);  // hard, entries, marker
  if (recs.size() != 3) co_return 1;
  tear_at(seg, recs[2].offset + 10);
  EXPECT_TRUE(std::filesystem::exists(snap_file(dir, 8, 1)));
  auto reopening = reopen(o);
  opened b = co_await std::move(reopening);
  EXPECT_EQ(b.error, "");
  EXPECT_FALSE(b.from.snap);
  EXPECT_EQ(b.from.log, model);
  EXPECT_FALSE(std::filesystem::exists(snap_file(dir, 8, 1)));
  co_return 0;
}

TEST(raft_storage, a_snapshot_file_whose_marker_was_lost_is_ignored) {
  temp_dir d;
  EXPECT_EQ(xerv::testing::run_on(1, unmarked_snapshot(d.path())), 0);
}

}  // namespace
