// libFuzzer target: WAL record decoding (core::scan_segment, what recovery and
// `xerv inspect` run over segment files) and the journal payload decoders behind it.
//
// Byte 0 is a control byte; bit 0 picks the mode.
//
// raw (bit 0 clear): byte 1 is the previous segment's last LSN (0: any), the rest
// is a segment file's bytes. Random bytes rarely carry a valid checksum, so this
// mode mostly exercises the refusals; the seed corpus holds real segments.
//
// built (bit 0 set): the rest describes records, which are laid out exactly as
// wal::append writes them (valid checksums), then damaged once:
//   byte 1: damage (0 none, 1 flip one byte, 2 cut the file, 3 zero 1-64 bytes);
//   bytes 2-4: where (u24, taken modulo the image size); byte 5: flip mask / zero length;
//   then records: u8 type (0 becomes 1), u8 flags, u16 length, payload: `length`
//   bytes of input, or with flags bit 0, length * 64 copies of one input byte
//   (big records without big inputs, to get past the torn-write window).
//   Control bit 1 appends a zeroed preallocated tail; bits 2-7 are the first LSN - 1.
//
// Invariants (a broken one traps), on every input:
//   valid_end <= size; yielded records have increasing LSNs above prev_lsn, a
//   non-zero type and payloads inside the bytes; last_lsn is the last one yielded;
//   more_after implies corrupt; the bytes cut at valid_end (what recovery leaves on
//   disk) rescan clean with the same records.
// In built mode also: undamaged images decode to exactly the records written; a
// damaged record and everything after it is never yielded, everything before it is;
// a good record more than the torn-write window after the damage sets more_after.
// Each payload goes through decode_started/node/ended; whatever decodes re-encodes
// to the same bytes.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/crc32c.h"
#include "core/wal.h"
#include "flows/journal.h"
#include "tests/fuzz/check.h"

namespace {

using namespace xerv;

constexpr size_t hs = sizeof(core::wal_record_header);
constexpr size_t torn_window = 1u << 20;  // as in wal.cc
constexpr size_t image_max = (1u << 20) + (256u << 10);  // just past the window: keeps runs fast

struct seen {
  uint64_t lsn;
  uint32_t type;
  size_t offset;  // of the payload in the scanned bytes
  size_t length;
};

template <class Rec>
void check_round_trip(const std::optional<Rec>& r, std::string_view payload) {
  if (!r) return;
  std::string again;
  flows::encode(again, *r);
  CHECK(again == payload);
}

void decode_payload(std::string_view p) {
  auto id = flows::record_trace(p);
  CHECK(id.has_value() == (p.size() >= 16));
  auto s = flows::decode_started(p);
  auto n = flows::decode_node(p);
  auto e = flows::decode_ended(p);
  check_round_trip(s, p);
  check_round_trip(n, p);
  check_round_trip(e, p);
  if (s) CHECK(s->id == *id);
  if (n) CHECK(n->id == *id);
  if (e) CHECK(e->id == *id);
}

// Scans `b` and checks what holds for any bytes. Returns the records yielded.
std::vector<seen> scan_checked(std::string_view b, uint64_t prev_lsn, core::segment_scan* out) {
  std::vector<seen> got;
  core::segment_scan s = core::scan_segment(b, 9, prev_lsn, [&](const core::wal_record& r) {
    CHECK(r.segment == 9);
    CHECK(r.type != 0);
    CHECK(r.payload.size() <= core::wal_record_max);
    CHECK(r.payload.data() >= b.data() + hs);
    CHECK(r.payload.data() + r.payload.size() <= b.data() + b.size());
    uint64_t before = got.empty() ? prev_lsn : got.back().lsn;
    if (before) CHECK(r.lsn > before);  // 0: any
    // Records follow each other, each at an 8-byte boundary.
    size_t at = size_t(r.payload.data() - b.data()) - hs;
    CHECK(at % 8 == 0);
    if (!got.empty()) CHECK(at == ((got.back().offset + got.back().length + 7) & ~size_t(7)));
    else CHECK(at == 0);
    got.push_back({r.lsn, r.type, size_t(r.payload.data() - b.data()), r.payload.size()});
    decode_payload(r.payload);
  });
  CHECK(s.valid_end <= b.size());
  CHECK(s.last_lsn == (got.empty() ? prev_lsn : got.back().lsn));
  CHECK(!s.more_after || s.corrupt);
  CHECK(s.corrupt == !s.reason.empty());
  if (!got.empty()) CHECK(s.valid_end >= got.back().offset + got.back().length);
  // Recovery cuts the file at valid_end: the cut file must read back clean, with
  // the same records, or every restart would find "damage" again.
  std::vector<seen> again;
  core::segment_scan t = core::scan_segment(b.substr(0, s.valid_end), 9, prev_lsn, [&](const core::wal_record& r) {
    again.push_back({r.lsn, r.type, size_t(r.payload.data() - b.data()), r.payload.size()});
  });
  CHECK(!t.corrupt);
  CHECK(again.size() == got.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(again[i].lsn == got[i].lsn && again[i].offset == got[i].offset && again[i].length == got[i].length);
  CHECK(t.valid_end == s.valid_end);
  *out = s;
  return got;
}

struct built_record {
  size_t offset;  // of the header
  size_t length;  // of the payload
  uint64_t lsn;
  uint32_t type;
};

bool all_zero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

void run_built(const uint8_t* data, size_t size) {
  if (size < 6) return;
  uint8_t control = data[0];
  uint8_t damage = data[1] & 3;
  size_t where = size_t(data[2]) | size_t(data[3]) << 8 | size_t(data[4]) << 16;
  uint8_t arg = data[5];
  uint64_t lsn = (control >> 2) + 1;
  const uint64_t prev_lsn = lsn - 1;
  std::string image;
  std::vector<built_record> recs;
  size_t pos = 6;
  while (pos + 4 <= size) {
    uint32_t type = data[pos] ? data[pos] : 1;
    uint8_t flags = data[pos + 1];
    size_t len = size_t(data[pos + 2]) | size_t(data[pos + 3]) << 8;
    pos += 4;
    std::string payload;
    if (flags & 1) {
      if (pos >= size) break;
      payload.assign(len * 64, char(data[pos++]));
    } else {
      if (len > size - pos) len = size - pos;
      payload.assign(reinterpret_cast<const char*>(data + pos), len);
      pos += len;
    }
    if (image.size() + hs + payload.size() + 8 > image_max) break;
    core::wal_record_header h{0, uint32_t(payload.size()), lsn, type, core::wal_magic};
    size_t at = image.size();
    image.append(reinterpret_cast<const char*>(&h), hs);
    image += payload;
    h.crc = core::crc32c(image.data() + at + 4, hs - 4 + payload.size());
    std::memcpy(image.data() + at, &h.crc, 4);
    image.resize((image.size() + 7) & ~size_t(7), '\0');
    recs.push_back({at, payload.size(), lsn, type});
    ++lsn;
  }
  const size_t written = image.size();
  if (control & 2) image.append(4096, '\0');

  // Which record a byte belongs to (its header, payload or padding).
  auto record_of = [&](size_t off) {
    size_t k = 0;
    while (k + 1 < recs.size() && recs[k + 1].offset <= off) ++k;
    return k;
  };
  size_t first_bad = recs.size();  // the first record the damage can reach
  bool exact = false;              // ... and it certainly ends the scan there
  bool tail_dirty = false;         // a non-zero byte where the next header would be
  if (damage == 1 && !image.empty() && arg) {
    size_t off = where % image.size();
    image[off] = char(image[off] ^ arg);
    if (off >= written) tail_dirty = off - written < hs;
    else {
      size_t k = record_of(off);
      size_t rel = off - recs[k].offset;
      if (rel < hs + recs[k].length) {  // not in the padding, which no checksum covers
        first_bad = k;
        // A changed length moves the checksummed range: only a 2^-32 collision
        // would pass, but that is not for a fuzzer to prove.
        exact = rel < 4 || rel >= 8;
      }
    }
  } else if (damage == 2) {
    size_t cut = image.empty() ? 0 : where % (image.size() + 1);
    image.resize(cut);
    for (size_t k = 0; k < recs.size(); ++k) {
      if (recs[k].offset + hs + recs[k].length <= cut) continue;
      first_bad = k;
      exact = true;
      break;
    }
  } else if (damage == 3 && !image.empty()) {
    size_t off = where % image.size();
    size_t n = std::min<size_t>(size_t(arg % 64) + 1, image.size() - off);
    std::memset(image.data() + off, 0, n);
    if (off < written) first_bad = record_of(off);
  }

  core::segment_scan s;
  std::vector<seen> got = scan_checked(image, prev_lsn, &s);
  // Everything before the damage is yielded, as written.
  CHECK(got.size() >= first_bad);
  for (size_t k = 0; k < got.size() && k < recs.size(); ++k) {
    if (k >= first_bad) break;
    CHECK(got[k].lsn == recs[k].lsn);
    CHECK(got[k].type == recs[k].type);
    CHECK(got[k].offset == recs[k].offset + hs);
    CHECK(got[k].length == recs[k].length);
  }
  if (first_bad == recs.size()) {
    // Undamaged (or damaged past the last record): exactly what was written.
    if (damage != 3) {
      CHECK(got.size() == recs.size());
      CHECK(s.corrupt == tail_dirty);
      if (!tail_dirty) CHECK(s.valid_end == std::min(written, image.size()));
    }
    return;
  }
  if (!exact) return;
  CHECK(got.size() == first_bad);
  const built_record& bad = recs[first_bad];
  if (damage == 2) {
    // A cut before the record or inside its header that left only zeros reads as
    // the clean end.
    size_t cut = image.size();
    CHECK(s.valid_end == std::min(bad.offset, cut));
    bool clean = cut <= bad.offset || (cut - bad.offset < hs && all_zero(image.data() + bad.offset, cut - bad.offset));
    CHECK(s.corrupt == !clean);
    CHECK(!s.more_after);
    return;
  }
  CHECK(s.valid_end == bad.offset);
  CHECK(s.corrupt);
  // The log went on well past the damage: that is no torn write. The window
  // starts at the damaged record's end when its header still says where that is
  // (a record longer than one write is written in pieces).
  size_t window_from = bad.offset;
  if (bad.offset + hs <= image.size()) {
    core::wal_record_header h;
    std::memcpy(&h, image.data() + bad.offset, hs);
    if (!all_zero(image.data() + bad.offset, hs) && h.magic == core::wal_magic && h.length <= core::wal_record_max)
      window_from = bad.offset + hs + h.length;
  }
  for (size_t k = first_bad + 1; k < recs.size(); ++k)
    if (recs[k].offset >= window_from + torn_window) CHECK(s.more_after);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    run_built(data, size);
    return 0;
  }
  if (size < 2) return 0;
  // libFuzzer's buffer is exactly `size` bytes on the heap: ASan sees reads past it.
  std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  core::segment_scan s;
  (void)scan_checked(bytes, data[1], &s);
  // The same bytes as one payload: the journal decoders' rules hold for them too.
  decode_payload(bytes);
  return 0;
}
