#include "tests/crash/fault_storage.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/wal.h"
#include "io/ops.h"

namespace xerv::testing {

const char* to_string(crash_kind k) { return k == crash_kind::power_cut ? "power_cut" : "process_kill"; }

namespace {
std::error_code eio() { return io::from_errno(EIO); }
}  // namespace

// A handle on one in-memory file; it outlives a remove() like an open fd does.
class fault_storage::file final : public core::wal_file {
 public:
  file(fault_storage* st, std::shared_ptr<mem_file> f) : _st(st), _f(std::move(f)) {}

  io::task<io::result<size_t>> read_at(uint64_t offset, std::span<char> out) override {
    const std::string& c = _f->current;
    size_t n = offset >= c.size() ? 0 : std::min<size_t>(out.size(), c.size() - offset);
    if (n) std::memcpy(out.data(), c.data() + offset, n);
    co_return n;
  }
  io::task<io::result<void>> write_at(uint64_t offset, std::span<const char> data, bool dsync) override {
    return _st->write(_f, offset, data, dsync);
  }
  io::task<io::result<void>> datasync() override { return _st->datasync(_f); }
  io::task<io::result<void>> allocate(uint64_t offset, uint64_t length) override {
    return _st->allocate(_f, offset, length);
  }
  io::task<io::result<uint64_t>> size() override { co_return uint64_t(_f->current.size()); }
  io::result<void> truncate(uint64_t length) override { return _st->truncate(*_f, length); }
  io::task<void> close() override { co_return; }

 private:
  fault_storage* _st;
  std::shared_ptr<mem_file> _f;
};

fault_storage::fault_storage(uint64_t seed, storage_image files) : _rng(seed) {
  for (auto& [path, bytes] : files) {
    auto f = std::make_shared<mem_file>();
    f->current = bytes;
    f->durable = std::move(bytes);
    f->name_durable = true;
    _files.emplace(path, std::move(f));
  }
}

fault_storage::~fault_storage() = default;

io::task<io::result<void>> fault_storage::make_dirs(std::string) { co_return io::result<void>{}; }

std::vector<std::pair<uint64_t, std::string>> fault_storage::list_segments(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::string prefix = dir + "/";
  for (const auto& [path, f] : _files) {
    if (!path.starts_with(prefix) || path.find('/', prefix.size()) != std::string::npos) continue;
    if (uint64_t seq = core::segment_sequence(std::string_view(path).substr(prefix.size()))) out.emplace_back(seq, path);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::error_code fault_storage::injected(fault_op op) {
  auto it = _faults.find(op);
  if (it == _faults.end() || it->second.second == 0) return {};
  --it->second.second;
  return it->second.first;
}

void fault_storage::fail_next(fault_op op, std::error_code error, int times) { _faults[op] = {error, times}; }

io::task<void> fault_storage::delay() {
  for (uint64_t n = _rng() % 3; n > 0; --n) co_await io::yield{};
}

bool fault_storage::crash_point(uint64_t seq) {
  if (seq != _crash_op) return false;
  crash(_crash_kind);
  return true;
}

void fault_storage::crash_at(uint64_t op, crash_kind kind) {
  _crash_op = op;
  _crash_kind = kind;
}

void fault_storage::crash(crash_kind kind) {
  if (_dead) return;
  _dead = true;
  _image.clear();
  for (const auto& [path, f] : _files) {
    if (kind == crash_kind::process_kill) {
      _image[path] = kill_image(*f);
    } else if (f->name_durable || _rng() % 2) {
      _image[path] = power_cut_image(*f);
    }
  }
}

uint64_t fault_storage::synced_at(const std::string& path) const {
  auto it = _files.find(path);
  return it == _files.end() ? 0 : it->second->synced_at;
}

io::task<io::result<std::unique_ptr<core::wal_file>>> fault_storage::open(std::string path, core::wal_open how) {
  if (how == core::wal_open::existing) {
    auto it = _files.find(path);
    if (it == _files.end()) co_return io::from_errno(ENOENT);
    co_return std::unique_ptr<core::wal_file>(new file(this, it->second));
  }
  if (_dead) co_return eio();
  if (auto e = injected(fault_op::create)) co_return e;
  if (crash_point(++_ops)) co_return eio();
  co_await delay();
  if (_dead) co_return eio();
  auto f = std::make_shared<mem_file>();
  _files[path] = f;
  co_return std::unique_ptr<core::wal_file>(new file(this, std::move(f)));
}

io::task<io::result<void>> fault_storage::remove(std::string path) {
  if (_dead) co_return eio();
  if (crash_point(++_ops)) co_return eio();
  co_await delay();
  if (_dead) co_return eio();
  _files.erase(path);
  co_return io::result<void>{};
}

io::task<io::result<void>> fault_storage::sync_dir(std::string dir) {
  if (_dead) co_return eio();
  if (auto e = injected(fault_op::sync_dir)) co_return e;
  if (crash_point(++_ops)) co_return eio();
  std::vector<std::shared_ptr<mem_file>> named;  // the names that exist when the sync starts
  for (const auto& [path, f] : _files)
    if (path.starts_with(dir + "/")) named.push_back(f);
  co_await delay();
  if (_dead) co_return eio();
  for (auto& f : named) f->name_durable = true;
  co_return io::result<void>{};
}

io::task<io::result<void>> fault_storage::write(std::shared_ptr<mem_file> f, uint64_t off, std::span<const char> data,
                                                bool dsync) {
  if (_dead) co_return eio();
  if (auto e = injected(fault_op::write)) co_return e;  // refused before anything was written
  uint64_t seq = ++_ops;
  std::string& cur = f->current;
  if (cur.size() < off + data.size()) cur.resize(off + data.size());
  if (!data.empty()) std::memcpy(cur.data() + off, data.data(), data.size());
  uint64_t first = off / sector, end = (off + data.size() + sector - 1) / sector;
  for (uint64_t s = first; s < end; ++s) {
    size_t at = s * sector;
    f->pending[s].push_back({seq, cur.substr(at, std::min(sector, cur.size() - at))});
  }
  f->in_flight.insert(seq);
  if (!crash_point(seq)) co_await delay();
  f->in_flight.erase(seq);
  if (_dead) co_return eio();
  if (dsync) {
    for (uint64_t s = first; s < end; ++s) {
      const auto& v = f->pending.at(s);
      auto mine = std::find_if(v.begin(), v.end(), [&](const version& x) { return x.seq == seq; });
      ASSERT(mine != v.end());
      make_durable(*f, s, size_t(mine - v.begin()) + 1);
    }
  }
  co_return io::result<void>{};
}

io::task<io::result<void>> fault_storage::datasync(std::shared_ptr<mem_file> f) {
  if (_dead) co_return eio();
  if (auto e = injected(fault_op::datasync)) {
    // Writeback failed: the kernel forgets the dirty pages (reads still see them),
    // so they never reach the disk, whatever a later sync says.
    f->pending.clear();
    co_return e;
  }
  uint64_t seq = ++_ops;
  if (crash_point(seq)) co_return eio();
  // What was written (and completed) before the call; a write still in flight
  // is not covered.
  std::map<uint64_t, size_t> covered;
  for (const auto& [s, v] : f->pending) {
    size_t n = 0;
    while (n < v.size() && !f->in_flight.count(v[n].seq)) ++n;
    if (n) covered[s] = n;
  }
  size_t size = f->current.size();
  co_await delay();
  if (_dead) co_return eio();
  for (auto [s, n] : covered) make_durable(*f, s, n);
  f->durable.resize(size);
  f->synced_at = seq;
  co_return io::result<void>{};
}

io::task<io::result<void>> fault_storage::allocate(std::shared_ptr<mem_file> f, uint64_t off, uint64_t len) {
  if (_dead) co_return eio();
  if (auto e = injected(fault_op::allocate)) co_return e;
  if (crash_point(++_ops)) co_return eio();
  co_await delay();
  if (_dead) co_return eio();
  if (f->current.size() < off + len) f->current.resize(off + len);
  co_return io::result<void>{};
}

io::result<void> fault_storage::truncate(mem_file& f, uint64_t len) {
  if (_dead) return eio();
  if (crash_point(++_ops)) return eio();
  f.current.resize(len);
  for (auto it = f.pending.begin(); it != f.pending.end();) {
    size_t at = it->first * sector;
    if (at >= len) {
      it = f.pending.erase(it);
      continue;
    }
    for (version& v : it->second)
      if (v.bytes.size() > len - at) v.bytes.resize(len - at);
    ++it;
  }
  return {};
}

void fault_storage::put_sector(std::string& img, uint64_t s, const std::string& bytes) {
  size_t at = s * sector;
  if (img.size() < at + bytes.size()) img.resize(at + bytes.size());
  std::memcpy(img.data() + at, bytes.data(), bytes.size());
}

void fault_storage::make_durable(mem_file& f, uint64_t s, size_t upto) {
  auto it = f.pending.find(s);
  ASSERT(it != f.pending.end());
  ASSERT(upto >= 1);
  ASSERT(upto <= it->second.size());
  put_sector(f.durable, s, it->second[upto - 1].bytes);
  it->second.erase(it->second.begin(), it->second.begin() + long(upto));
  if (it->second.empty()) f.pending.erase(it);
}

// A sector written in part: a prefix of `next` over what `img` holds there.
void fault_storage::tear(std::string& img, uint64_t s, const std::string& next) {
  if (next.size() < 2) return;
  size_t n = 1 + _rng() % (next.size() - 1);
  size_t at = s * sector;
  if (img.size() < at + n) img.resize(at + n);
  std::memcpy(img.data() + at, next.data(), n);
}

std::string fault_storage::power_cut_image(const mem_file& f) {
  std::string img = f.durable;
  switch (_rng() % 3) {
    case 0:  // every unsynced write is lost
      break;
    case 1: {  // the disk wrote in order up to one write, which landed in part
      std::vector<uint64_t> seqs;
      for (const auto& [s, v] : f.pending)
        for (const version& x : v) seqs.push_back(x.seq);
      std::sort(seqs.begin(), seqs.end());
      seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
      size_t cut = _rng() % (seqs.size() + 1);
      uint64_t whole_upto = cut ? seqs[cut - 1] : 0;
      std::vector<std::pair<uint64_t, const std::string*>> partial;  // the cut write's sectors, in order
      for (const auto& [s, v] : f.pending) {
        const std::string* last = nullptr;
        for (const version& x : v) {
          if (x.seq <= whole_upto) last = &x.bytes;
          else if (cut < seqs.size() && x.seq == seqs[cut]) partial.emplace_back(s, &x.bytes);
        }
        if (last) put_sector(img, s, *last);
      }
      size_t whole = _rng() % (partial.size() + 1);
      for (size_t i = 0; i < whole; ++i) put_sector(img, partial[i].first, *partial[i].second);
      if (whole < partial.size()) tear(img, partial[whole].first, *partial[whole].second);
      break;
    }
    default:  // the disk wrote any version of each sector, some in part
      for (const auto& [s, v] : f.pending) {
        size_t k = _rng() % (v.size() + 1);
        if (k == 0) continue;
        if (_rng() % 8 == 0) {
          if (k >= 2) put_sector(img, s, v[k - 2].bytes);
          tear(img, s, v[k - 1].bytes);
        } else {
          put_sector(img, s, v[k - 1].bytes);
        }
      }
  }
  // A size change (fallocate) may have reached the disk without a sync.
  if (f.current.size() > img.size() && _rng() % 2) img.resize(f.current.size());
  return img;
}

std::string fault_storage::kill_image(const mem_file& f) {
  std::string img = f.current;
  // Completed writes are in the page cache; the ones in flight land in part.
  for (uint64_t seq : f.in_flight) {
    std::vector<std::pair<uint64_t, std::string>> sectors;  // {sector, content before the write}
    for (const auto& [s, v] : f.pending) {
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i].seq != seq) continue;
        std::string before;
        if (i > 0) {
          before = v[i - 1].bytes;
        } else {
          size_t at = s * sector;
          before = at < f.durable.size() ? f.durable.substr(at, sector) : std::string();
        }
        before.resize(v[i].bytes.size(), '\0');
        sectors.emplace_back(s, std::move(before));
      }
    }
    size_t whole = _rng() % (sectors.size() + 1);
    for (size_t i = whole; i < sectors.size(); ++i) {
      std::string next = img.substr(sectors[i].first * sector, sectors[i].second.size());
      put_sector(img, sectors[i].first, sectors[i].second);
      if (i == whole) tear(img, sectors[i].first, next);
    }
  }
  return img;
}

}  // namespace xerv::testing
