// The per-shard write-ahead log on a real runtime and real O_DIRECT files under
// /tmp: replay in order, segment rotation, torn tails, corrupt middles, retention,
// the three sync modes. Also its checksum, the arena the traces' values live in,
// and the journal records the engine writes into the log.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/arena.h"
#include "core/crc32c.h"
#include "core/json.h"
#include "core/trace_id.h"
#include "core/wal.h"
#include "flows/journal.h"
#include "io/ops.h"
#include "tests/run_on.h"

using namespace xerv;
using namespace std::chrono_literals;
using xerv::testing::run_on;

namespace {

// ---------- helpers ----------

// A fresh directory under /tmp, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = "/tmp/xerv-wal-test.XXXXXX";
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

// One record as the replay saw it (or as the test expects the replay to see it).
struct rec {
  uint64_t lsn = 0;
  uint32_t type = 0;
  uint64_t segment = 0;
  std::string payload;
  uint64_t offset = 0;  // replayed records only (appended ones: 0)
  bool operator==(const rec& o) const {
    return lsn == o.lsn && type == o.type && segment == o.segment && payload == o.payload;
  }
};

std::ostream& operator<<(std::ostream& os, const rec& r) {
  return os << "{lsn " << r.lsn << ", type " << r.type << ", segment " << r.segment << ", " << r.payload.size()
            << " bytes '" << r.payload.substr(0, 16) << "'}";
}

// Distinct, deterministic payloads: the index first, then filler.
std::string payload_for(uint64_t i, size_t size) {
  std::string p = std::to_string(i) + ':';
  while (p.size() < size) p.push_back(char('a' + (p.size() * 7 + i) % 26));
  return p;
}

struct opened {
  std::unique_ptr<core::wal> w;
  std::string error;
  std::vector<rec> records;
};

io::task<opened> open_wal(core::wal_options opts) {
  opened out;
  std::vector<rec>* sink = &out.records;
  core::wal::replay_fn replay = [sink](const core::wal_record& r) {
    sink->push_back({r.lsn, r.type, r.segment, std::string(r.payload), r.offset});
  };
  auto opening = core::wal::open(std::move(opts), std::move(replay));
  core::wal::open_result res = co_await std::move(opening);
  if (auto* e = std::get_if<std::string>(&res)) out.error = *e;
  else out.w = std::move(std::get<std::unique_ptr<core::wal>>(res));
  if (out.w) out.w->start_sweeping();  // nothing to account for: these tests replay no traces
  co_return out;
}

io::task<void> close_wal(core::wal& w) {
  auto closing = w.close();
  co_await std::move(closing);
}

// Opens the WAL again: no damage found, exactly `want` replayed; then closes it.
io::task<bool> reopens_clean(core::wal_options o, std::vector<rec> want) {
  auto opening = open_wal(o);
  opened e = co_await std::move(opening);
  EXPECT_EQ(e.error, "");
  if (!e.w) co_return false;
  EXPECT_EQ(e.records, want);
  EXPECT_EQ(e.w->stats().truncated_bytes, 0u);
  auto closing = close_wal(*e.w);
  co_await std::move(closing);
  co_return true;
}

io::task<bool> wait_ok(core::wal& w, uint64_t lsn) {
  auto waiting = w.wait(lsn);
  io::result<void> r = co_await std::move(waiting);
  if (!r) ADD_FAILURE() << "wait(" << lsn << "): " << r.error().message();
  co_return bool(r);
}

// Appends `count` records (indexes first.., sizes from `size_of`) to `out`'s
// expectations, then waits for the last one.
template <class SizeFn>
io::task<bool> append_batch(core::wal& w, std::vector<rec>& out, uint64_t first, uint64_t count, SizeFn size_of) {
  uint64_t last = 0;
  for (uint64_t i = first; i < first + count; ++i) {
    rec r{0, uint32_t(1 + i % 3), w.active_segment(), payload_for(i, size_of(i))};
    r.lsn = w.append(r.type, r.payload);
    EXPECT_EQ(r.lsn, out.empty() ? 1 : out.back().lsn + 1);
    if (r.lsn == 0) co_return false;
    last = r.lsn;
    out.push_back(std::move(r));
  }
  auto waiting = wait_ok(w, last);
  co_return co_await std::move(waiting);
}

// One run of the WAL on `o`: opens it (no damage expected), appends `count`
// records from index `first` in bursts of `burst`, each waited for, and closes it.
template <class SizeFn>
io::task<bool> write_session(core::wal_options o, std::vector<rec>& want, uint64_t first, uint64_t count,
                             uint64_t burst, SizeFn size_of) {
  auto opening = open_wal(o);
  opened a = co_await std::move(opening);
  EXPECT_EQ(a.error, "");
  if (!a.w) co_return false;
  bool ok = true;
  for (uint64_t i = first; ok && i < first + count; i += burst) {
    auto b = append_batch(*a.w, want, i, std::min(burst, first + count - i), size_of);
    ok = co_await std::move(b);
  }
  EXPECT_TRUE(ok);
  auto closing = close_wal(*a.w);
  co_await std::move(closing);
  co_return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_at(const std::string& path, uint64_t off, std::string_view bytes) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(std::streamoff(off));
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

void flip_byte(const std::string& path, uint64_t off) {
  std::string b = read_file(path);
  if (off >= b.size()) throw std::runtime_error("flip past the end of " + path);
  write_at(path, off, std::string(1, char(b[off] ^ 0x5a)));
}

// Where each record of a segment file starts.
std::vector<size_t> record_offsets(const std::string& path) {
  std::string bytes = read_file(path);
  std::vector<size_t> offs;
  core::segment_scan s = core::scan_segment(bytes, 1, 0, [&](const core::wal_record& r) {
    offs.push_back(size_t(r.payload.data() - bytes.data()) - sizeof(core::wal_record_header));
  });
  EXPECT_FALSE(s.corrupt) << path << ": " << s.reason;
  return offs;
}

std::vector<uint64_t> segment_numbers(const std::string& dir) {
  std::vector<uint64_t> out;
  for (const auto& [seq, path] : core::list_segments(dir)) out.push_back(seq);
  return out;
}

core::wal_options options(const std::string& dir, core::wal_sync sync = core::wal_sync::always,
                          uint64_t segment_bytes = 64u << 10) {
  core::wal_options o;
  o.dir = dir;
  o.sync = sync;
  o.segment_bytes = segment_bytes;
  o.prepare_next = false;  // exact file sets; wal.prepared_segment_* turn it on
  return o;
}

// ---------- crc32c ----------

uint32_t crc32c_bitwise(const unsigned char* p, size_t n) {
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(crc32c, known_vectors) {
  EXPECT_EQ(core::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(core::crc32c("", 0), 0u);
  // RFC 3720 (iSCSI) appendix B.4.
  unsigned char buf[32];
  std::memset(buf, 0, sizeof buf);
  EXPECT_EQ(core::crc32c(buf, sizeof buf), 0x8A9136AAu);
  std::memset(buf, 0xff, sizeof buf);
  EXPECT_EQ(core::crc32c(buf, sizeof buf), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = uint8_t(i);
  EXPECT_EQ(core::crc32c(buf, sizeof buf), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = uint8_t(31 - i);
  EXPECT_EQ(core::crc32c(buf, sizeof buf), 0x113FDB5Cu);
}

TEST(crc32c, matches_a_bitwise_reference_on_random_buffers_and_chains) {
  std::mt19937_64 rng(20240611);
  std::vector<unsigned char> buf(9000);
  for (auto& b : buf) b = uint8_t(rng());
  for (int iter = 0; iter < 2000; ++iter) {
    size_t off = rng() % 16;  // unaligned starts too
    size_t n = iter < 64 ? size_t(iter) : rng() % (buf.size() - off);
    uint32_t want = crc32c_bitwise(buf.data() + off, n);
    ASSERT_EQ(core::crc32c(buf.data() + off, n), want) << "offset " << off << " length " << n;
    // Feeding the bytes in two pieces gives the same checksum.
    size_t cut = n ? rng() % n : 0;
    uint32_t part = core::crc32c(buf.data() + off, cut);
    ASSERT_EQ(core::crc32c(buf.data() + off + cut, n - cut, part), want) << "cut at " << cut << " of " << n;
  }
}

// ---------- wal: append, wait, replay ----------

io::task<int> append_and_reopen(std::string dir) {
  std::vector<rec> want;
  {
    auto opening = open_wal(options(dir));
    opened a = co_await std::move(opening);
    EXPECT_EQ(a.error, "");
    if (!a.w) co_return 1;
    EXPECT_TRUE(a.records.empty());
    EXPECT_TRUE(a.w->healthy());
    // One write per record (each waited for), then a group of records in one wait;
    // sizes cover empty, unpadded and multi-block payloads.
    const size_t sizes[] = {0, 1, 7, 8, 9, 100, 4072, 4096, 5000, 12345};
    for (uint64_t i = 0; i < std::size(sizes); ++i) {
      auto one = append_batch(*a.w, want, i, 1, [&](uint64_t k) { return sizes[k]; });
      EXPECT_TRUE(co_await std::move(one));
    }
    auto group = append_batch(*a.w, want, 100, 50, [](uint64_t k) { return k * 13 % 700; });
    EXPECT_TRUE(co_await std::move(group));
    EXPECT_TRUE(a.w->healthy());
    EXPECT_EQ(a.w->stats().recovered_records, 0u);
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  uint64_t first_segment = want.front().segment;
  for (const rec& r : want) EXPECT_EQ(r.segment, first_segment);
  EXPECT_EQ(segment_numbers(dir), std::vector<uint64_t>{first_segment});
  {
    auto opening = open_wal(options(dir));
    opened b = co_await std::move(opening);
    EXPECT_EQ(b.error, "");
    if (!b.w) co_return 1;
    EXPECT_EQ(b.records, want);
    EXPECT_EQ(b.w->stats().recovered_records, want.size());
    EXPECT_EQ(b.w->stats().truncated_bytes, 0u);
    EXPECT_EQ(b.w->stats().segments, 1u);
    // New records continue the LSNs, in a new segment.
    EXPECT_EQ(b.w->active_segment(), first_segment + 1);
    auto more = append_batch(*b.w, want, 1000, 5, [](uint64_t) { return 300; });
    EXPECT_TRUE(co_await std::move(more));
    auto closing = close_wal(*b.w);
    co_await std::move(closing);
  }
  EXPECT_EQ(want.back().lsn, std::size(want));
  EXPECT_EQ(want.back().segment, first_segment + 1);
  {
    auto opening = open_wal(options(dir));
    opened c = co_await std::move(opening);
    EXPECT_EQ(c.error, "");
    if (!c.w) co_return 1;
    EXPECT_EQ(c.records, want);
    auto closing = close_wal(*c.w);
    co_await std::move(closing);
  }
  co_return 0;
}

TEST(wal, append_wait_close_reopen_replays_every_record_in_order) {
  temp_dir d;
  EXPECT_EQ(run_on(1, append_and_reopen(d.path() + "/shard-0")), 0);
}

io::task<int> many_segments(std::string dir) {
  std::vector<rec> want;
  {
    auto opening = open_wal(options(dir));
    opened a = co_await std::move(opening);
    EXPECT_EQ(a.error, "");
    if (!a.w) co_return 1;
    for (uint64_t burst = 0; burst < 12; ++burst) {
      auto b = append_batch(*a.w, want, burst * 50, 50, [](uint64_t k) { return 100 + k * 37 % 1400; });
      EXPECT_TRUE(co_await std::move(b));
    }
    EXPECT_EQ(a.w->stats().segments, core::list_segments(dir).size());
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  auto segs = segment_numbers(dir);
  EXPECT_GE(segs.size(), 4u);
  // Every record is in a file that exists; records move to newer segments only.
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(std::find(segs.begin(), segs.end(), want[i].segment) != segs.end()) << want[i];
    if (i) {
      EXPECT_GE(want[i].segment, want[i - 1].segment);
    }
  }
  {
    auto opening = open_wal(options(dir));
    opened b = co_await std::move(opening);
    EXPECT_EQ(b.error, "");
    if (!b.w) co_return 1;
    EXPECT_EQ(b.records.size(), want.size());
    EXPECT_EQ(b.records, want);
    EXPECT_EQ(b.w->stats().segments, segs.size());
    EXPECT_EQ(b.w->active_segment(), segs.back() + 1);
    auto closing = close_wal(*b.w);
    co_await std::move(closing);
  }
  co_return 0;
}

TEST(wal, records_across_many_segments_replay_in_order) {
  temp_dir d;
  EXPECT_EQ(run_on(1, many_segments(d.path())), 0);
}

// Whether `at` reads back as `want`.
io::task<bool> reads_back(core::wal& w, core::wal_location at, std::string want) {
  auto reading = w.read(at);
  io::result<std::string> r = co_await std::move(reading);
  co_return r && *r == want;
}

// wal::read gives back what append() took, from the buffer before it is
// written and from its segment file after, in this process and the next one;
// a location that names another record, or a damaged record, is an error.
io::task<int> read_back(std::string dir) {
  std::vector<std::pair<core::wal_location, std::string>> put;
  {
    auto opening = open_wal(options(dir));
    opened a = co_await std::move(opening);
    if (!a.w) co_return 1;
    for (uint64_t i = 0; i < 400; ++i) {
      std::string p = payload_for(i, 50 + i * 53 % 3000);
      uint64_t lsn = a.w->append(2, p);
      EXPECT_EQ(a.w->last_location().lsn, lsn);
      EXPECT_EQ(a.w->last_location().length, p.size());
      put.emplace_back(a.w->last_location(), p);
      if (i % 7 == 0) {  // not written yet: from memory
        auto reading = reads_back(*a.w, put.back().first, p);
        EXPECT_TRUE(co_await std::move(reading)) << "record " << i << " before its write";
      }
      if (i % 50 == 49) {
        auto waiting = wait_ok(*a.w, lsn);
        EXPECT_TRUE(co_await std::move(waiting));
      }
    }
    EXPECT_GE(put.back().first.segment, 3u);  // several segments, the older ones closed
    for (size_t i = 0; i < put.size(); i += 3) {
      auto reading = reads_back(*a.w, put[i].first, put[i].second);
      EXPECT_TRUE(co_await std::move(reading)) << "record " << i;
    }
    core::wal_location wrong = put[10].first;
    wrong.lsn += 1;
    auto reading = a.w->read(wrong);
    io::result<std::string> r = co_await std::move(reading);
    EXPECT_FALSE(r);
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  auto opening = open_wal(options(dir));
  opened b = co_await std::move(opening);
  if (!b.w) co_return 1;
  EXPECT_EQ(b.records.size(), put.size());
  // Replayed records carry their place: the same locations as at append.
  for (size_t i = 0; i < b.records.size() && i < put.size(); ++i) {
    EXPECT_EQ(b.records[i].segment, put[i].first.segment);
    EXPECT_EQ(b.records[i].offset, put[i].first.offset);
  }
  for (size_t i = 1; i < put.size(); i += 5) {
    auto reading = reads_back(*b.w, put[i].first, put[i].second);
    EXPECT_TRUE(co_await std::move(reading)) << "record " << i << " after reopening";
  }
  auto closing = close_wal(*b.w);
  co_await std::move(closing);
  co_return 0;
}

TEST(wal, read_returns_what_append_took_from_memory_and_from_segment_files) {
  temp_dir d;
  EXPECT_EQ(run_on(1, read_back(d.path())), 0);
}

// A record damaged on disk after it was written does not read back.
io::task<int> read_damaged(std::string dir) {
  auto opening = open_wal(options(dir));
  opened a = co_await std::move(opening);
  if (!a.w) co_return 1;
  a.w->append(1, "first");
  core::wal_location first = a.w->last_location();
  uint64_t lsn = a.w->append(1, "the one to damage");
  core::wal_location at = a.w->last_location();
  auto waiting = wait_ok(*a.w, lsn);
  EXPECT_TRUE(co_await std::move(waiting));
  flip_byte(core::list_segments(dir).front().second, at.offset + sizeof(core::wal_record_header) + 3);
  auto reading = a.w->read(at);
  io::result<std::string> r = co_await std::move(reading);
  EXPECT_FALSE(r) << "a damaged record must not read back";
  auto reading_first = reads_back(*a.w, first, "first");
  EXPECT_TRUE(co_await std::move(reading_first));
  auto closing = close_wal(*a.w);
  co_await std::move(closing);
  co_return 0;
}

TEST(wal, read_refuses_a_damaged_record) {
  temp_dir d;
  EXPECT_EQ(run_on(1, read_damaged(d.path())), 0);
}

// ---------- wal: damage ----------

enum class damage { flip_payload, flip_header, cut_payload, cut_header };

io::task<int> torn_tail(std::string dir, damage how) {
  std::vector<rec> want;
  {
    auto opening = open_wal(options(dir));
    opened a = co_await std::move(opening);
    if (!a.w) co_return 1;
    for (uint64_t i = 0; i < 40; ++i) {
      auto one = append_batch(*a.w, want, i, 1, [](uint64_t k) { return 50 + k * 11; });
      EXPECT_TRUE(co_await std::move(one));
    }
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  auto segs = core::list_segments(dir);
  EXPECT_EQ(segs.size(), 1u);
  const std::string path = segs.back().second;
  auto offs = record_offsets(path);
  EXPECT_EQ(offs.size(), want.size());
  if (offs.size() != want.size()) co_return 1;
  uint64_t last = offs.back();
  switch (how) {
    case damage::flip_payload: flip_byte(path, last + sizeof(core::wal_record_header) + 20); break;
    case damage::flip_header: flip_byte(path, last + 9); break;  // inside the LSN
    case damage::cut_payload: std::filesystem::resize_file(path, last + sizeof(core::wal_record_header) + 5); break;
    case damage::cut_header: std::filesystem::resize_file(path, last + 10); break;
  }
  rec lost = want.back();
  want.pop_back();
  {
    auto opening = open_wal(options(dir));
    opened b = co_await std::move(opening);
    EXPECT_EQ(b.error, "");
    if (!b.w) co_return 1;
    EXPECT_EQ(b.records, want);
    EXPECT_GT(b.w->stats().truncated_bytes, 0u);
    EXPECT_EQ(b.w->stats().skipped_corrupt, 0u);
    EXPECT_EQ(b.w->stats().recovered_records, want.size());
    auto closing = close_wal(*b.w);
    co_await std::move(closing);
  }
  // The tail was cut at the end of the last good record.
  EXPECT_EQ(std::filesystem::file_size(path), last);
  {
    auto opening = open_wal(options(dir));
    opened c = co_await std::move(opening);
    EXPECT_EQ(c.error, "");
    if (!c.w) co_return 1;
    EXPECT_EQ(c.records, want);
    EXPECT_EQ(c.w->stats().truncated_bytes, 0u);
    // The lost record's LSN is given to the next record.
    EXPECT_EQ(c.w->append(lost.type, lost.payload), lost.lsn);
    auto waiting = wait_ok(*c.w, lost.lsn);
    EXPECT_TRUE(co_await std::move(waiting));
    lost.segment = c.w->active_segment();
    want.push_back(lost);
    auto closing = close_wal(*c.w);
    co_await std::move(closing);
  }
  {
    auto clean = reopens_clean(options(dir), want);
    if (!co_await std::move(clean)) co_return 1;
  }
  co_return 0;
}

TEST(wal, torn_tail_flipped_payload_is_cut_once) {
  temp_dir d;
  EXPECT_EQ(run_on(1, torn_tail(d.path(), damage::flip_payload)), 0);
}

TEST(wal, torn_tail_flipped_header_is_cut_once) {
  temp_dir d;
  EXPECT_EQ(run_on(1, torn_tail(d.path(), damage::flip_header)), 0);
}

TEST(wal, torn_tail_cut_mid_payload_is_cut_once) {
  temp_dir d;
  EXPECT_EQ(run_on(1, torn_tail(d.path(), damage::cut_payload)), 0);
}

TEST(wal, torn_tail_cut_mid_header_is_cut_once) {
  temp_dir d;
  EXPECT_EQ(run_on(1, torn_tail(d.path(), damage::cut_header)), 0);
}

io::task<int> corrupt_middle(std::string dir) {
  std::vector<rec> want;
  {
    auto session = write_session(options(dir), want, 0, 300, 50, [](uint64_t k) { return 200 + k * 29 % 1000; });
    if (!co_await std::move(session)) co_return 1;
  }
  auto segs = core::list_segments(dir);
  EXPECT_GE(segs.size(), 3u);
  if (segs.size() < 3) co_return 1;
  // Damage the third record of the oldest segment.
  const auto& [seq, path] = segs.front();
  auto offs = record_offsets(path);
  EXPECT_GT(offs.size(), 3u);
  if (offs.size() <= 3) co_return 1;
  uint64_t size_before = std::filesystem::file_size(path);
  flip_byte(path, offs[2] + sizeof(core::wal_record_header) + 3);
  {
    auto opening = open_wal(options(dir));
    opened b = co_await std::move(opening);
    EXPECT_TRUE(b.w == nullptr);
    EXPECT_NE(b.error.find(path), std::string::npos) << b.error;
    EXPECT_NE(b.error.find("offset " + std::to_string(offs[2])), std::string::npos) << b.error;
    EXPECT_NE(b.error.find("checksum"), std::string::npos) << b.error;
    EXPECT_TRUE(b.records.size() <= 2) << "records replayed past the damage";
    if (b.w) {
      auto closing = close_wal(*b.w);
      co_await std::move(closing);
    }
  }
  // Refusing to start changed nothing on disk.
  EXPECT_EQ(std::filesystem::file_size(path), size_before);
  EXPECT_EQ(core::list_segments(dir).size(), segs.size());
  // Skipping keeps the two records before the damage and every later segment.
  std::vector<rec> kept;
  for (const rec& r : want)
    if (r.segment != seq || r.lsn < want.front().lsn + 2) kept.push_back(r);
  EXPECT_EQ(kept.size(), want.size() - (offs.size() - 2));
  {
    auto o = options(dir);
    o.skip_corrupt = true;
    auto opening = open_wal(o);
    opened c = co_await std::move(opening);
    EXPECT_EQ(c.error, "");
    if (!c.w) co_return 1;
    EXPECT_EQ(c.records, kept);
    EXPECT_EQ(c.w->stats().skipped_corrupt, 1u);
    EXPECT_EQ(c.w->stats().truncated_bytes, size_before - offs[2]);
    auto closing = close_wal(*c.w);
    co_await std::move(closing);
  }
  // The damage was cut: a plain start succeeds now, with the same records.
  {
    auto clean = reopens_clean(options(dir), kept);
    if (!co_await std::move(clean)) co_return 1;
  }
  co_return 0;
}

TEST(wal, corrupt_record_in_an_older_segment_names_file_and_offset) {
  temp_dir d;
  EXPECT_EQ(run_on(1, corrupt_middle(d.path())), 0);
}

// In the newest segment, a bad record with a good one more than a torn write's
// reach after it is damage, not a torn tail.
io::task<int> corrupt_far_from_the_end(std::string dir) {
  std::vector<rec> want;
  {
    auto session = write_session(options(dir, core::wal_sync::always, 8u << 20), want, 0, 400, 50, [](uint64_t) { return 4000; });
    if (!co_await std::move(session)) co_return 1;
  }
  auto segs = core::list_segments(dir);
  EXPECT_EQ(segs.size(), 1u);
  if (segs.empty()) co_return 1;
  const std::string path = segs.back().second;
  auto offs = record_offsets(path);
  EXPECT_EQ(offs.size(), want.size());
  if (offs.size() < 2) co_return 1;
  EXPECT_GT(offs.back() - offs[1], 1u << 20);
  flip_byte(path, offs[1] + sizeof(core::wal_record_header));
  {
    auto opening = open_wal(options(dir, core::wal_sync::always, 8u << 20));
    opened b = co_await std::move(opening);
    EXPECT_TRUE(b.w == nullptr);
    EXPECT_NE(b.error.find(path), std::string::npos) << b.error;
    EXPECT_NE(b.error.find("offset " + std::to_string(offs[1])), std::string::npos) << b.error;
    if (b.w) {
      auto closing = close_wal(*b.w);
      co_await std::move(closing);
    }
  }
  co_return 0;
}

TEST(wal, corrupt_record_far_before_the_end_of_the_newest_segment_is_not_a_torn_tail) {
  temp_dir d;
  EXPECT_EQ(run_on(1, corrupt_far_from_the_end(d.path())), 0);
}

// Zeros over the first block of the newest segment are damage like any other:
// the segment still holds acknowledged records after them, so it must not pass
// for a prepared, never written file (which would be deleted at open, and the
// records with it). Good records beyond a torn write's reach stop the start.
io::task<int> zeroed_first_block(std::string dir) {
  auto o = options(dir, core::wal_sync::always, 8u << 20);
  std::vector<rec> want;
  {
    auto session = write_session(o, want, 0, 400, 50, [](uint64_t) { return 4000; });
    if (!co_await std::move(session)) co_return 1;
  }
  auto segs = core::list_segments(dir);
  EXPECT_EQ(segs.size(), 1u);
  if (segs.empty()) co_return 1;
  const std::string path = segs.back().second;
  auto offs = record_offsets(path);
  EXPECT_EQ(offs.size(), want.size());
  if (offs.empty()) co_return 1;
  EXPECT_GT(offs.back(), (1u << 20) + core::wal_block) << "records must reach past the torn window";
  write_at(path, 0, std::string(core::wal_block, '\0'));
  uint64_t size_before = std::filesystem::file_size(path);
  {
    auto opening = open_wal(o);
    opened b = co_await std::move(opening);
    EXPECT_TRUE(b.w == nullptr) << "acknowledged records after the zeroed block were dropped";
    EXPECT_NE(b.error.find(path), std::string::npos) << b.error;
    EXPECT_NE(b.error.find("offset 0 "), std::string::npos) << b.error;
    EXPECT_NE(b.error.find("zeroed"), std::string::npos) << b.error;
    EXPECT_TRUE(b.records.empty());
    if (b.w) {
      auto closing = close_wal(*b.w);
      co_await std::move(closing);
    }
  }
  // Refusing to start left the segment alone.
  EXPECT_EQ(segment_numbers(dir), std::vector<uint64_t>{segs.back().first});
  EXPECT_EQ(std::filesystem::file_size(path), size_before);
  co_return 0;
}

TEST(wal, zeroed_first_block_of_the_newest_segment_stops_the_start) {
  temp_dir d;
  EXPECT_EQ(run_on(1, zeroed_first_block(d.path())), 0);
}

// A segment before others that holds no record at all lost its records (a
// zeroed or replaced file): the start stops, naming it; --wal-skip-corrupt goes
// on without it, and removes it so that the next plain start succeeds.
io::task<int> empty_older_segment(std::string dir) {
  auto o = options(dir);
  std::vector<rec> want;
  {
    auto session = write_session(o, want, 0, 300, 50, [](uint64_t k) { return 200 + k * 29 % 1000; });
    if (!co_await std::move(session)) co_return 1;
  }
  auto segs = core::list_segments(dir);
  EXPECT_GE(segs.size(), 3u);
  if (segs.size() < 3) co_return 1;
  const auto& [seq, path] = segs[1];
  uint64_t size = std::filesystem::file_size(path);
  write_at(path, 0, std::string(size, '\0'));
  {
    auto opening = open_wal(o);
    opened b = co_await std::move(opening);
    EXPECT_TRUE(b.w == nullptr) << "the records of a zeroed segment were dropped silently";
    EXPECT_NE(b.error.find(path + ": no record at offset 0"), std::string::npos) << b.error;
    if (b.w) {
      auto closing = close_wal(*b.w);
      co_await std::move(closing);
    }
  }
  EXPECT_EQ(core::list_segments(dir).size(), segs.size());
  std::vector<rec> kept;
  for (const rec& r : want)
    if (r.segment != seq) kept.push_back(r);
  {
    auto so = o;
    so.skip_corrupt = true;
    auto opening = open_wal(so);
    opened c = co_await std::move(opening);
    EXPECT_EQ(c.error, "");
    if (!c.w) co_return 1;
    EXPECT_EQ(c.records, kept);
    EXPECT_EQ(c.w->stats().skipped_corrupt, 1u);
    auto closing = close_wal(*c.w);
    co_await std::move(closing);
  }
  auto left = segment_numbers(dir);
  EXPECT_TRUE(std::find(left.begin(), left.end(), seq) == left.end()) << "the empty segment was not removed";
  auto clean = reopens_clean(o, kept);
  if (!co_await std::move(clean)) co_return 1;
  co_return 0;
}

TEST(wal, a_segment_without_records_before_others_stops_the_start) {
  temp_dir d;
  EXPECT_EQ(run_on(1, empty_older_segment(d.path())), 0);
}

// The newest segment torn at its very start (zeros, then records within a torn
// write's reach) is cut with a warning; left with no record, it is removed, so
// that it never sits empty before the next segment.
io::task<int> torn_to_nothing(std::string dir) {
  auto o = options(dir);
  std::vector<rec> want;
  {
    auto session = write_session(o, want, 0, 10, 10, [](uint64_t) { return 100; });
    if (!co_await std::move(session)) co_return 1;
  }
  std::vector<rec> first_start = want;
  {
    auto session = write_session(o, want, 10, 10, 10, [](uint64_t) { return 100; });
    if (!co_await std::move(session)) co_return 1;
  }
  auto segs = core::list_segments(dir);
  EXPECT_EQ(segs.size(), 2u);
  if (segs.size() != 2) co_return 1;
  write_at(segs[1].second, 0, std::string(64, '\0'));  // the first record's header and a bit
  {
    auto opening = open_wal(o);
    opened b = co_await std::move(opening);
    EXPECT_EQ(b.error, "");
    if (!b.w) co_return 1;
    EXPECT_EQ(b.records, first_start);
    EXPECT_GT(b.w->stats().truncated_bytes, 0u);
    EXPECT_EQ(segment_numbers(dir), std::vector<uint64_t>{segs[0].first});
    // New records go to the next segment and the LSNs continue.
    auto more = append_batch(*b.w, first_start, 100, 3, [](uint64_t) { return 50; });
    EXPECT_TRUE(co_await std::move(more));
    EXPECT_EQ(first_start.back().lsn, 13u);
    auto closing = close_wal(*b.w);
    co_await std::move(closing);
  }
  auto clean = reopens_clean(o, first_start);
  if (!co_await std::move(clean)) co_return 1;
  co_return 0;
}

TEST(wal, newest_segment_torn_to_nothing_is_removed) {
  temp_dir d;
  EXPECT_EQ(run_on(1, torn_to_nothing(d.path())), 0);
}

// A trailing segment with no byte written (prepared ahead, never used; or cut to
// nothing) holds no record: it is removed at open, whatever its size, and the
// segments before it replay.
io::task<int> trailing_empty_segments(std::string dir) {
  auto o = options(dir);
  std::vector<rec> want;
  {
    auto session = write_session(o, want, 0, 20, 20, [](uint64_t k) { return 100 + k; });
    if (!co_await std::move(session)) co_return 1;
  }
  uint64_t last = segment_numbers(dir).back();
  auto name = [&](uint64_t seq) {
    std::string n = std::to_string(seq);
    return dir + "/" + std::string(20 - n.size(), '0') + n + ".wal";
  };
  std::ofstream(name(last + 1), std::ios::binary) << std::string(64u << 10, '\0');
  std::ofstream(name(last + 2), std::ios::binary);  // empty
  auto reopening = open_wal(o);
  opened c = co_await std::move(reopening);
  EXPECT_EQ(c.error, "");
  if (!c.w) co_return 1;
  EXPECT_EQ(c.records, want);
  EXPECT_EQ(segment_numbers(dir), std::vector<uint64_t>{last});
  EXPECT_EQ(c.w->active_segment(), last + 1);
  auto closing = close_wal(*c.w);
  co_await std::move(closing);
  co_return 0;
}

TEST(wal, trailing_segments_without_a_byte_written_are_removed) {
  temp_dir d;
  EXPECT_EQ(run_on(1, trailing_empty_segments(d.path())), 0);
}

// ---------- wal: retention ----------

bool has_segment(const std::string& dir, uint64_t seq) {
  auto s = segment_numbers(dir);
  return std::find(s.begin(), s.end(), seq) != s.end();
}

// Polls (the flusher sweeps once a second) until `pred` holds or `limit` passes.
template <class Pred>
io::task<bool> eventually(Pred pred, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) co_return false;
    (void)co_await io::sleep_for(50ms);
  }
  co_return true;
}

io::task<int> retention(std::string dir) {
  auto o = options(dir);
  o.retention = 0ms;
  auto opening = open_wal(o);
  opened a = co_await std::move(opening);
  if (!a.w) co_return 1;
  core::wal& w = *a.w;
  // One trace per record, started in the segment the record goes to; fill
  // segments 1..4 and start 5.
  std::vector<rec> want;
  std::vector<uint64_t> traces(8, 0);
  uint64_t i = 0;
  while (w.active_segment() < 5) {
    w.trace_started(w.active_segment());
    ++traces[w.active_segment()];
    auto b = append_batch(w, want, i++, 1, [](uint64_t) { return 6000; });
    EXPECT_TRUE(co_await std::move(b));
    if (i > 1000) co_return 1;
  }
  EXPECT_EQ(segment_numbers(dir), (std::vector<uint64_t>{1, 2, 3, 4}));
  uint64_t now = core::unix_ms_now();
  // Segments 1, 2 and 4 finish; one trace of segment 3 keeps running.
  for (uint64_t seg : {1, 2, 3, 4}) {
    uint64_t n = seg == 3 ? traces[seg] - 1 : traces[seg];
    for (uint64_t k = 0; k < n; ++k) w.trace_finished(seg, now);
  }
  // Segment 5 needs a write to exist; the sweep never deletes the one being written.
  auto b5 = append_batch(w, want, i++, 1, [](uint64_t) { return 10; });
  EXPECT_TRUE(co_await std::move(b5));
  auto gone = eventually([&] { return !has_segment(dir, 1) && !has_segment(dir, 2); }, 4000ms);
  EXPECT_TRUE(co_await std::move(gone)) << "finished segments 1 and 2 were not deleted";
  // Another sweep or two: 3 (unfinished) stays, and so does 4 (after it).
  auto pause = io::sleep_for(1200ms);
  (void)co_await std::move(pause);
  EXPECT_EQ(segment_numbers(dir), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(w.stats().segments, 3u);
  // Once the last trace of 3 ends, 3 and 4 go; 5 is being written and stays.
  w.trace_finished(3, core::unix_ms_now());
  auto rest = eventually([&] { return !has_segment(dir, 3) && !has_segment(dir, 4); }, 4000ms);
  EXPECT_TRUE(co_await std::move(rest)) << "segments 3 and 4 were not deleted";
  EXPECT_EQ(segment_numbers(dir), std::vector<uint64_t>{5});
  EXPECT_EQ(w.stats().segments, 1u);
  auto closing = close_wal(w);
  co_await std::move(closing);
  // What is left replays.
  auto reopening = open_wal(o);
  opened c = co_await std::move(reopening);
  EXPECT_EQ(c.error, "");
  if (!c.w) co_return 1;
  EXPECT_EQ(c.records, std::vector<rec>{want.back()});
  auto closing2 = close_wal(*c.w);
  co_await std::move(closing2);
  co_return 0;
}

// The next segment is prepared (zero-filled) ahead and then written to; an
// unused one is removed at close, and one left by a crash is dropped at open.
io::task<int> prepared_segment(std::string dir) {
  auto o = options(dir);
  o.prepare_next = true;
  std::vector<rec> want;
  {
    auto opening = open_wal(o);
    opened a = co_await std::move(opening);
    if (!a.w) co_return 1;
    // A quarter of segment 1 triggers segment 2's preparation.
    auto b = append_batch(*a.w, want, 0, 4, [](uint64_t) { return 6000; });
    EXPECT_TRUE(co_await std::move(b));
    auto ready = eventually([&] { return has_segment(dir, 2); }, 4000ms);
    EXPECT_TRUE(co_await std::move(ready)) << "segment 2 was not prepared";
    EXPECT_EQ(a.w->active_segment(), 1u);
    // Fill on into segment 2 (the prepared file) and beyond.
    for (uint64_t k = 0; k < 10; ++k) {  // one write per batch: rotation happens between writes
      auto more = append_batch(*a.w, want, 4 + k * 3, 3, [](uint64_t) { return 6000; });
      EXPECT_TRUE(co_await std::move(more));
    }
    EXPECT_GE(a.w->active_segment(), 3u);
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  // Every file left holds records: the spare was removed at close.
  for (uint64_t seq : segment_numbers(dir))
    EXPECT_TRUE(std::any_of(want.begin(), want.end(), [&](const rec& r) { return r.segment == seq; })) << seq;
  // A crash leaves a prepared, empty segment behind: it is dropped at open.
  uint64_t last = segment_numbers(dir).back();
  std::string stray = dir + "/" + std::string(20 - std::to_string(last + 1).size(), '0') + std::to_string(last + 1) + ".wal";
  std::ofstream(stray, std::ios::binary) << std::string(8192, '\0');
  auto reopening = open_wal(o);
  opened c = co_await std::move(reopening);
  EXPECT_EQ(c.error, "");
  if (!c.w) co_return 1;
  EXPECT_EQ(c.records, want);
  EXPECT_FALSE(has_segment(dir, last + 1));
  auto closing = close_wal(*c.w);
  co_await std::move(closing);
  co_return 0;
}

TEST(wal, prepared_segment_is_used_and_never_left_empty) {
  temp_dir d;
  EXPECT_EQ(run_on(1, prepared_segment(d.path() + "/shard-0")), 0);
}

TEST(wal, retention_deletes_finished_segments_and_keeps_unfinished_ones) {
  temp_dir d;
  EXPECT_EQ(run_on(1, retention(d.path())), 0);
}

// Finished traces stay for the retention period.
io::task<int> retention_not_yet(std::string dir) {
  auto o = options(dir);
  o.retention = 3'600'000ms;
  auto opening = open_wal(o);
  opened a = co_await std::move(opening);
  if (!a.w) co_return 1;
  std::vector<rec> want;
  uint64_t i = 0;
  while (a.w->active_segment() < 3) {
    a.w->trace_started(a.w->active_segment());
    a.w->trace_finished(a.w->active_segment(), core::unix_ms_now());
    auto b = append_batch(*a.w, want, i++, 1, [](uint64_t) { return 6000; });
    EXPECT_TRUE(co_await std::move(b));
    if (i > 1000) co_return 1;
  }
  auto b3 = append_batch(*a.w, want, i++, 1, [](uint64_t) { return 10; });
  EXPECT_TRUE(co_await std::move(b3));
  auto pause = io::sleep_for(1500ms);
  (void)co_await std::move(pause);
  EXPECT_EQ(segment_numbers(dir), (std::vector<uint64_t>{1, 2, 3}));
  auto closing = close_wal(*a.w);
  co_await std::move(closing);
  co_return 0;
}

TEST(wal, retention_keeps_finished_segments_until_it_passes) {
  temp_dir d;
  EXPECT_EQ(run_on(1, retention_not_yet(d.path())), 0);
}

// ---------- wal: sync modes ----------

io::task<int> sync_mode(std::string dir, core::wal_sync mode) {
  auto o = options(dir, mode);
  o.batch_delay = 5ms;
  std::vector<rec> want;
  {
    auto opening = open_wal(o);
    opened a = co_await std::move(opening);
    EXPECT_EQ(a.error, "");
    if (!a.w) co_return 1;
    for (uint64_t burst = 0; burst < 10; ++burst) {
      auto b = append_batch(*a.w, want, burst * 20, 20, [](uint64_t k) { return k * 97 % 2000; });
      EXPECT_TRUE(co_await std::move(b));
    }
    EXPECT_TRUE(a.w->healthy());
    // Waiting again for something already durable completes at once.
    auto again = wait_ok(*a.w, 1);
    EXPECT_TRUE(co_await std::move(again));
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  // sync=none wrote it all in one batch at close, so in one segment.
  if (mode == core::wal_sync::batch) {
    EXPECT_GE(core::list_segments(dir).size(), 2u);
  }
  {
    auto clean = reopens_clean(o, want);
    if (!co_await std::move(clean)) co_return 1;
  }
  co_return 0;
}

TEST(wal, sync_batch_waits_and_replays_after_reopen) {
  temp_dir d;
  EXPECT_EQ(run_on(1, sync_mode(d.path(), core::wal_sync::batch)), 0);
}

TEST(wal, sync_none_waits_and_replays_after_reopen) {
  temp_dir d;
  EXPECT_EQ(run_on(1, sync_mode(d.path(), core::wal_sync::none)), 0);
}

// sync=none acknowledges at once, before any write; close still writes it all.
io::task<int> sync_none_close_writes(std::string dir) {
  auto o = options(dir, core::wal_sync::none);
  std::vector<rec> want;
  {
    auto opening = open_wal(o);
    opened a = co_await std::move(opening);
    if (!a.w) co_return 1;
    for (uint64_t i = 0; i < 30; ++i) {
      rec r{0, 2, a.w->active_segment(), payload_for(i, 100 + i)};
      r.lsn = a.w->append(r.type, r.payload);
      want.push_back(r);
    }
    auto waiting = wait_ok(*a.w, want.back().lsn);
    EXPECT_TRUE(co_await std::move(waiting));
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  auto opening = open_wal(o);
  opened b = co_await std::move(opening);
  if (!b.w) co_return 1;
  EXPECT_EQ(b.records, want);
  auto closing = close_wal(*b.w);
  co_await std::move(closing);
  co_return 0;
}

TEST(wal, sync_none_close_writes_records_appended_without_a_wait) {
  temp_dir d;
  EXPECT_EQ(run_on(1, sync_none_close_writes(d.path())), 0);
}

// ---------- scan_segment ----------

// A segment image as wal::append lays it out.
void put_record(std::string& seg, uint64_t lsn, uint32_t type, std::string_view payload) {
  core::wal_record_header h{0, uint32_t(payload.size()), lsn, type, core::wal_magic};
  std::string rec(sizeof h, '\0');
  std::memcpy(rec.data(), &h, sizeof h);
  rec += payload;
  h.crc = core::crc32c(rec.data() + 4, rec.size() - 4);
  std::memcpy(rec.data(), &h.crc, 4);
  rec.resize((rec.size() + 7) & ~size_t(7), '\0');
  seg += rec;
}

TEST(scan_segment, decodes_records_and_stops_at_zeros_and_damage) {
  std::string seg;
  put_record(seg, 7, 1, "alpha");
  put_record(seg, 8, 2, "");
  put_record(seg, 9, 3, std::string(300, 'z'));
  size_t end = seg.size();
  seg.append(4096, '\0');  // preallocated, never written
  std::vector<rec> got;
  auto collect = [&](const core::wal_record& r) { got.push_back({r.lsn, r.type, r.segment, std::string(r.payload)}); };
  core::segment_scan s = core::scan_segment(seg, 42, 6, collect);
  EXPECT_FALSE(s.corrupt) << s.reason;
  EXPECT_EQ(s.valid_end, end);
  EXPECT_EQ(s.last_lsn, 9u);
  EXPECT_EQ(got, (std::vector<rec>{{7, 1, 42, "alpha"}, {8, 2, 42, ""}, {9, 3, 42, std::string(300, 'z')}}));

  // LSNs must follow the previous segment's.
  got.clear();
  s = core::scan_segment(seg, 42, 7, collect);
  EXPECT_TRUE(s.corrupt);
  EXPECT_EQ(s.valid_end, 0u);
  EXPECT_EQ(s.last_lsn, 7u);
  EXPECT_NE(s.reason.find("LSN"), std::string::npos) << s.reason;
  EXPECT_TRUE(got.empty());

  // Damage to the second record: the first survives, the third is found after it.
  got.clear();
  std::string bad = seg;
  bad[32 + 4] ^= 1;  // second record's length
  s = core::scan_segment(bad, 42, 0, collect);
  EXPECT_TRUE(s.corrupt);
  EXPECT_FALSE(s.more_after);  // close behind: could be a torn write
  EXPECT_EQ(s.valid_end, 32u);
  EXPECT_EQ(s.last_lsn, 7u);
  EXPECT_EQ(got.size(), 1u);

  // Cut inside a header and inside a payload.
  for (size_t cut : {end - 300, end - 5, size_t(40)}) {
    got.clear();
    s = core::scan_segment(std::string_view(seg).substr(0, cut), 42, 0, collect);
    EXPECT_TRUE(s.corrupt) << cut;
    EXPECT_LE(s.valid_end, cut);
    // A cut copy rescans clean.
    size_t n = got.size();
    got.clear();
    core::segment_scan again = core::scan_segment(std::string_view(seg).substr(0, s.valid_end), 42, 0, collect);
    EXPECT_FALSE(again.corrupt) << cut << ": " << again.reason;
    EXPECT_EQ(got.size(), n);
  }

  // A type-0 record and a wrong magic are damage.
  std::string zero_type;
  put_record(zero_type, 1, 0, "x");
  s = core::scan_segment(zero_type, 1, 0, collect);
  EXPECT_TRUE(s.corrupt);
  std::string no_magic = seg;
  no_magic[20] ^= 0xff;
  s = core::scan_segment(no_magic, 1, 0, collect);
  EXPECT_TRUE(s.corrupt);
  EXPECT_NE(s.reason.find("magic"), std::string::npos) << s.reason;
}

TEST(scan_segment, zeroed_bytes_and_lsn_gaps_inside_a_segment_are_damage) {
  std::string seg;
  put_record(seg, 1, 1, "one");
  size_t second = seg.size();
  put_record(seg, 2, 1, "two");
  put_record(seg, 3, 1, "three");
  std::string zeroed = seg;
  std::fill(zeroed.begin() + long(second), zeroed.begin() + long(second) + 24, '\0');
  core::segment_scan s = core::scan_segment(zeroed, 1, 0, [](const core::wal_record&) {});
  EXPECT_TRUE(s.corrupt) << "zeros followed by a good record are not the end of the log";
  EXPECT_EQ(s.valid_end, second);
  EXPECT_NE(s.reason.find("zeroed"), std::string::npos) << s.reason;

  std::string gap;
  put_record(gap, 1, 1, "one");
  put_record(gap, 3, 1, "three");
  s = core::scan_segment(gap, 1, 0, [](const core::wal_record&) {});
  EXPECT_TRUE(s.corrupt);
  EXPECT_NE(s.reason.find("out of sequence"), std::string::npos) << s.reason;

  std::string lsn0;
  put_record(lsn0, 0, 1, "zero");
  EXPECT_TRUE(core::scan_segment(lsn0, 1, 0, [](const core::wal_record&) {}).corrupt);
}

TEST(scan_segment, a_good_record_far_after_damage_rules_out_a_torn_write) {
  std::string seg;
  put_record(seg, 1, 1, "first");
  size_t bad_at = seg.size();
  put_record(seg, 2, 1, "second");
  std::string filler(8000, 'f');
  uint64_t lsn = 3;
  while (seg.size() < bad_at + (1u << 20) + 8192) put_record(seg, lsn++, 1, filler);
  seg[bad_at + 26] ^= 1;  // in the payload (the padding after it is not checked)
  core::segment_scan s = core::scan_segment(seg, 1, 0, [](const core::wal_record&) {});
  EXPECT_TRUE(s.corrupt);
  EXPECT_TRUE(s.more_after);
  EXPECT_EQ(s.valid_end, bad_at);
  EXPECT_EQ(s.last_lsn, 1u);
}

// ---------- arena ----------

constexpr uint64_t k_none = ~uint64_t(0);
constexpr uint64_t k_chunk = core::arena::chunk_bytes;

std::unique_ptr<core::arena> open_arena(uint64_t capacity) {
  auto a = core::arena::create(capacity);
  EXPECT_TRUE(a.ok()) << a.error().message();
  if (!a) return nullptr;
  return std::move(*a);
}

io::task<int> arena_allocation() {
  std::unique_ptr<core::arena> a = open_arena(16 * k_chunk + 100);  // rounded down to whole chunks
  if (!a) co_return 1;
  EXPECT_EQ(a->capacity(), 16 * k_chunk);
  EXPECT_EQ(a->used_bytes(), 0u);
  EXPECT_EQ(a->allocate(0), k_none);
  EXPECT_EQ(a->allocate(17), k_none);

  uint64_t x = a->allocate(6);
  uint64_t y = a->allocate(6);
  EXPECT_EQ(x, 0u);
  EXPECT_EQ(y, 6 * k_chunk);
  EXPECT_EQ(a->used_bytes(), 12 * k_chunk);
  // The mapping is writable memory.
  std::memset(a->at(x), 'x', 6 * k_chunk);
  std::memset(a->at(y), 'y', 6 * k_chunk);
  EXPECT_EQ(a->allocate(5), k_none);  // 4 free
  a->release(x, 6);
  EXPECT_EQ(a->used_bytes(), 6 * k_chunk);
  // The search starts after the last allocation and wraps once.
  uint64_t z = a->allocate(2);
  EXPECT_EQ(z, 12 * k_chunk);
  uint64_t w = a->allocate(3);  // 14-15 is too short: wraps to 0
  EXPECT_EQ(w, 0u);
  uint64_t v = a->allocate(3);
  EXPECT_EQ(v, 3 * k_chunk);
  EXPECT_EQ(a->allocate(3), k_none);  // only 14-15 left
  uint64_t u = a->allocate(2);
  EXPECT_EQ(u, 14 * k_chunk);
  EXPECT_EQ(a->used_bytes(), a->capacity());
  EXPECT_EQ(a->allocate(1), k_none);
  // Released chunks are merged with their free neighbours.
  a->release(w, 3);
  a->release(v, 3);
  EXPECT_EQ(a->allocate(6), 0u);
  a->release(0, 6);
  a->release(y, 6);
  a->release(z, 2);
  a->release(u, 2);
  EXPECT_EQ(a->used_bytes(), 0u);
  EXPECT_EQ(a->allocate(16), 0u);
  a->release(0, 16);
  EXPECT_EQ(a->used_bytes(), 0u);
  co_return 0;
}

TEST(arena, allocates_first_fit_wraps_and_accounts_used_bytes) {
  EXPECT_EQ(run_on(1, arena_allocation()), 0);
}

io::task<int> arena_bitmap_words() {
  // 200 chunks: four bitmap words, the last one partly past the end.
  std::unique_ptr<core::arena> a = open_arena(200 * k_chunk);
  if (!a) co_return 1;
  for (uint64_t i = 0; i < 200; ++i) EXPECT_EQ(a->allocate(1), i * k_chunk);
  EXPECT_EQ(a->allocate(1), k_none);
  // A hole across the first word boundary, found after skipping full words.
  for (uint64_t i = 60; i < 71; ++i) a->release(i * k_chunk, 1);
  EXPECT_EQ(a->used_bytes(), 189 * k_chunk);
  EXPECT_EQ(a->allocate(12), k_none);
  EXPECT_EQ(a->allocate(11), 60 * k_chunk);
  EXPECT_EQ(a->allocate(1), k_none);
  // Free the end: a run may end exactly at the last chunk, never past it.
  for (uint64_t i = 190; i < 200; ++i) a->release(i * k_chunk, 1);
  EXPECT_EQ(a->allocate(11), k_none);
  EXPECT_EQ(a->allocate(10), 190 * k_chunk);
  EXPECT_EQ(a->used_bytes(), a->capacity());
  a->release(190 * k_chunk, 10);
  a->release(60 * k_chunk, 11);
  for (uint64_t i = 0; i < 200; ++i)
    if (i < 60 || (i >= 71 && i < 190)) a->release(i * k_chunk, 1);
  EXPECT_EQ(a->used_bytes(), 0u);
  EXPECT_EQ(a->allocate(200), 0u);
  a->release(0, 200);
  co_return 0;
}

TEST(arena, runs_cross_bitmap_words_and_never_pass_the_end) {
  EXPECT_EQ(run_on(1, arena_bitmap_words()), 0);
}

std::string encoded_string(std::string_view s) {
  core::value_builder b;
  b.add_string(s);
  return b.finish().bytes();
}

std::string encoded_object(int64_t n) {
  core::value_builder b;
  b.begin_object();
  b.key("n");
  b.add_int(n);
  b.key("name");
  b.add_string("value " + std::to_string(n));
  b.end();
  return b.finish().bytes();
}

io::task<int> arena_regions() {
  std::unique_ptr<core::arena> a = open_arena(4 * k_chunk);
  if (!a) co_return 1;
  {
    core::arena_region r(a.get());
    std::vector<std::pair<core::arena_ref, std::string>> stored;
    // Small values share one chunk.
    for (int i = 0; i < 10; ++i) {
      std::string v = encoded_object(i);
      stored.emplace_back(r.store(v), v);
    }
    EXPECT_EQ(a->used_bytes(), k_chunk);
    // A value larger than a chunk gets a run of its own.
    std::string big = encoded_string(std::string(5000, 'b'));
    stored.emplace_back(r.store(big), big);
    EXPECT_EQ(a->used_bytes(), 3 * k_chunk);
    // Values live in the mapping, addressed by offset.
    for (const auto& [ref, v] : stored) {
      EXPECT_LT(ref, a->capacity());
      EXPECT_EQ(r.get(ref).bytes(), v);
    }
    EXPECT_EQ(r.get(stored[3].first).find("n")->as_int(), 3);
    {
      // A second region takes the last chunk; then the arena is full.
      core::arena_region other(a.get());
      std::string v = encoded_string("other");
      core::arena_ref o = other.store(v);
      EXPECT_EQ(a->used_bytes(), a->capacity());
      EXPECT_EQ(other.get(o).bytes(), v);
      // Full: values go to the heap, and still read back, also after more stores.
      std::vector<std::pair<core::arena_ref, std::string>> heap;
      for (int i = 0; i < 50; ++i) {
        std::string hv = encoded_string(std::string(size_t(3000 + i), char('a' + i % 26)));
        heap.emplace_back(r.store(hv), hv);
      }
      // (The first one still fits in the free end of the region's newest run.)
      size_t on_heap = 0;
      for (const auto& [ref, hv] : heap) {
        on_heap += ref >= a->capacity();
        EXPECT_EQ(r.get(ref).bytes(), hv);
      }
      EXPECT_EQ(on_heap, heap.size() - 1);
      EXPECT_EQ(a->used_bytes(), a->capacity());
    }
    // `other` gave its chunk back; the region's arena values are intact.
    EXPECT_EQ(a->used_bytes(), 3 * k_chunk);
    for (const auto& [ref, v] : stored) EXPECT_EQ(r.get(ref).bytes(), v);
    // With room again, new values go to the arena.
    std::string v = encoded_string(std::string(2000, 'n'));
    core::arena_ref n = r.store(v);
    EXPECT_LT(n, a->capacity());
    EXPECT_EQ(r.get(n).bytes(), v);
    EXPECT_EQ(a->used_bytes(), a->capacity());
  }
  // Destroying the region released every chunk it held.
  EXPECT_EQ(a->used_bytes(), 0u);
  {
    // Without an arena everything is on the heap.
    core::arena_region heap_only(nullptr);
    std::string v = encoded_object(7);
    core::arena_ref ref = heap_only.store(v);
    EXPECT_EQ(heap_only.get(ref).bytes(), v);
    EXPECT_EQ(a->used_bytes(), 0u);
  }
  co_return 0;
}

TEST(arena, regions_store_values_fall_back_to_the_heap_and_release_on_destruction) {
  EXPECT_EQ(run_on(1, arena_regions()), 0);
}

// ---------- journal records ----------

core::trace_id some_id() { return core::trace_id{0x0123456789abcdefull, 0xfedcba9876543210ull}; }

std::vector<flows::log_line> some_logs() {
  return {{1700000000001, io::log_level::debug, "fetch", "starting"},
          {1700000000002, io::log_level::error, "", std::string("nul\0inside", 10)},
          {1700000000003, io::log_level::warn, "map", ""}};
}

// Every proper prefix and one trailing byte are refused.
template <class Decode>
void expect_strict(const std::string& p, Decode decode) {
  for (size_t n = 0; n < p.size(); ++n) EXPECT_FALSE(decode(std::string_view(p).substr(0, n))) << "prefix " << n;
  EXPECT_FALSE(decode(p + '\0'));
  EXPECT_TRUE(decode(p));
}

TEST(journal, started_round_trips_and_refuses_truncation_and_trailing_bytes) {
  flows::started_record r;
  r.id = some_id();
  r.created_ms = 1700000000000;
  r.pipeline = "orders";
  r.version = "v3";
  r.trigger = "webhook";
  r.input = encoded_object(5);
  std::string p;
  flows::encode(p, r);
  auto d = flows::decode_started(p);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->id, r.id);
  EXPECT_EQ(d->created_ms, r.created_ms);
  EXPECT_EQ(d->pipeline, r.pipeline);
  EXPECT_EQ(d->version, r.version);
  EXPECT_EQ(d->trigger, r.trigger);
  EXPECT_EQ(d->input, r.input);
  EXPECT_EQ(flows::record_trace(p), r.id);
  expect_strict(p, [](std::string_view s) { return flows::decode_started(s).has_value(); });
  // One buffer serves every record: encode clears it first.
  std::string again = "junk";
  flows::encode(again, r);
  EXPECT_EQ(again, p);
  // Empty strings survive.
  flows::started_record empty;
  flows::encode(p, empty);
  auto e = flows::decode_started(p);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->pipeline, "");
  EXPECT_EQ(e->input, "");
  EXPECT_EQ(e->continuation, "");
  // A resumed trace's admission carries its continuation, last; one without
  // reads as before it existed.
  r.continuation = "where it goes on";
  std::string with;
  flows::encode(with, r);
  auto c = flows::decode_started(with);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->continuation, "where it goes on");
  EXPECT_EQ(c->input, r.input);
  flows::started_record plain = r;
  plain.continuation.clear();
  std::string without;
  flows::encode(without, plain);
  EXPECT_EQ(with.substr(0, without.size()), without);  // the same bytes, then the continuation
  for (size_t cut = with.size() - r.continuation.size() - 3; cut < with.size(); ++cut) {
    EXPECT_FALSE(flows::decode_started(std::string_view(with).substr(0, cut))) << cut;
  }
}

TEST(journal, node_round_trips_with_logs_and_refuses_damage) {
  flows::node_record r;
  r.id = some_id();
  r.node = "fetch";
  r.port = "out";
  r.finished_ms = 1700000000123;
  r.duration_us = 4567;
  r.output = encoded_string("result");
  r.logs = some_logs();
  std::string p;
  flows::encode(p, r);
  auto d = flows::decode_node(p);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->id, r.id);
  EXPECT_EQ(d->node, r.node);
  EXPECT_EQ(d->port, r.port);
  EXPECT_EQ(d->finished_ms, r.finished_ms);
  EXPECT_EQ(d->duration_us, r.duration_us);
  EXPECT_EQ(d->output, r.output);
  ASSERT_EQ(d->logs.size(), r.logs.size());
  for (size_t i = 0; i < r.logs.size(); ++i) {
    EXPECT_EQ(d->logs[i].unix_ms, r.logs[i].unix_ms);
    EXPECT_EQ(d->logs[i].level, r.logs[i].level);
    EXPECT_EQ(d->logs[i].node, r.logs[i].node);
    EXPECT_EQ(d->logs[i].message, r.logs[i].message);
  }
  expect_strict(p, [](std::string_view s) { return flows::decode_node(s).has_value(); });

  // The log count is the last u64 before the lines: 8 + 1 + 4 + 4 bytes each at least.
  size_t logs_at = p.size();
  for (const auto& l : r.logs) logs_at -= 8 + 1 + 4 + l.node.size() + 4 + l.message.size();
  logs_at -= 8;
  uint64_t count = 0;
  std::memcpy(&count, p.data() + logs_at, 8);
  EXPECT_EQ(count, r.logs.size());
  for (uint64_t bogus : {uint64_t(4), uint64_t(1) << 40, ~uint64_t(0)}) {
    std::string bad = p;
    std::memcpy(bad.data() + logs_at, &bogus, 8);
    EXPECT_FALSE(flows::decode_node(bad)) << bogus;
  }
  // A log level past `error`.
  std::string bad_level = p;
  bad_level[logs_at + 8 + 8] = char(uint8_t(io::log_level::error) + 1);
  EXPECT_FALSE(flows::decode_node(bad_level));
  // A string length running past the end.
  std::string bad_len = p;
  uint32_t huge = 0xfffffff0u;
  std::memcpy(bad_len.data() + 16, &huge, 4);
  EXPECT_FALSE(flows::decode_node(bad_len));
}

TEST(journal, ended_round_trips_and_refuses_truncation_and_trailing_bytes) {
  flows::ended_record r;
  r.id = some_id();
  r.status = 3;
  r.finished_ms = 1700000000999;
  r.error_node = "charge";
  r.error_message = "card declined";
  r.output = "";
  r.logs = some_logs();
  std::string p;
  flows::encode(p, r);
  auto d = flows::decode_ended(p);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->id, r.id);
  EXPECT_EQ(d->status, r.status);
  EXPECT_EQ(d->finished_ms, r.finished_ms);
  EXPECT_EQ(d->error_node, r.error_node);
  EXPECT_EQ(d->error_message, r.error_message);
  EXPECT_EQ(d->output, "");
  EXPECT_EQ(d->logs.size(), r.logs.size());
  expect_strict(p, [](std::string_view s) { return flows::decode_ended(s).has_value(); });
  EXPECT_EQ(flows::record_trace(p), r.id);
  EXPECT_FALSE(flows::record_trace(std::string_view(p).substr(0, 15)));
  // Records of one kind are not read as another.
  EXPECT_FALSE(flows::decode_started(p));
  EXPECT_FALSE(flows::decode_node(p));
}

TEST(journal, suspended_round_trips_is_a_final_record_and_refuses_damage) {
  flows::suspended_record r;
  r.start.id = some_id();
  r.start.created_ms = 1700000000100;
  r.start.pipeline = "approval";
  r.start.version = "2";
  r.start.trigger = "hook";
  r.start.input = "encoded input";
  r.suspended_ms = 1700000000200;
  r.started_ms = 1700000000150;
  r.hook_id = "approve-1";
  r.node = "gate";
  r.metadata = "meta";
  r.expires_ms = 1700000060200;
  r.timeout_action = 2;
  for (const char* n : {"prep", "side"}) {
    flows::node_record nr;
    nr.node = n;
    nr.port = "out";
    nr.finished_ms = 1700000000190;
    nr.duration_us = 12;
    nr.output = std::string("out of ") + n;
    r.nodes.push_back(nr);
  }
  r.logs = some_logs();
  std::string p;
  flows::encode(p, r);
  auto d = flows::decode_suspended(p);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->start.id, r.start.id);
  EXPECT_EQ(d->start.created_ms, r.start.created_ms);
  EXPECT_EQ(d->start.pipeline, "approval");
  EXPECT_EQ(d->start.version, "2");
  EXPECT_EQ(d->start.trigger, "hook");
  EXPECT_EQ(d->start.input, r.start.input);
  EXPECT_EQ(d->suspended_ms, r.suspended_ms);
  EXPECT_EQ(d->started_ms, r.started_ms);
  EXPECT_EQ(d->hook_id, "approve-1");
  EXPECT_EQ(d->node, "gate");
  EXPECT_EQ(d->metadata, "meta");
  EXPECT_EQ(d->expires_ms, r.expires_ms);
  EXPECT_EQ(d->timeout_action, 2);
  ASSERT_EQ(d->nodes.size(), 2u);
  EXPECT_EQ(d->nodes[1].node, "side");
  EXPECT_EQ(d->nodes[1].output, "out of side");
  EXPECT_EQ(d->nodes[1].id, r.start.id);
  EXPECT_EQ(d->logs.size(), r.logs.size());
  expect_strict(p, [](std::string_view s) { return flows::decode_suspended(s).has_value(); });
  // The backend sees a final record: the trace's run ended, suspended.
  auto h = core::decode_final_header(p);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->id, r.start.id);
  EXPECT_EQ(h->status, flows::suspended_status);
  EXPECT_EQ(h->finished_ms, r.suspended_ms);
  EXPECT_FALSE(flows::decode_ended(p));
  EXPECT_FALSE(flows::decode_started(p));
  std::string bad = p;
  bad[16] = 3;  // any other status: not a suspension
  EXPECT_FALSE(flows::decode_suspended(bad));
}

}  // namespace
