#pragma once
// An in-memory core::wal_storage that knows what a crash keeps (STYLE §7, crash
// tests). Test code only.
//
// Each file has the bytes reads see (`current`) and the bytes a power cut keeps
// (`durable`), and remembers every version of each 512-byte sector written since
// that sector was last made durable:
//   - datasync makes the file as it was when the call started durable (sectors
//     and size);
//   - a write with dsync makes its own sectors durable when it completes;
//   - sync_dir makes the names of the files in the directory durable; a file
//     created since may vanish at a power cut. (Removals are durable at once.)
// Every call that changes something counts as one operation; crash_at(n) makes
// the n-th one crash: the storage takes the image a restart would read, and from
// then on every call fails with EIO, so nothing the WAL acknowledges afterwards
// can rest on it. The image of
//   - a power cut is the durable bytes plus, for the sectors not yet durable,
//     one of: none of them; the writes in order up to one, which lands only in
//     part, its last sector torn; or any version of each sector, some torn.
//     Files whose name was never synced may be gone.
//   - a process kill is everything written, except that the writes in flight
//     land only in part (in order, the last sector torn).
// Operations complete after a few turns of the event loop (chosen by the seed),
// so that writes overlap appends, waits and the background segment preparation.
// fail_next() injects errors: a failed datasync drops the file's unsynced sectors
// without writing them, while reads still see them (what Linux does after a
// writeback error), so a later datasync succeeds without making them durable.
//
// One shard only; the storage must outlive every WAL opened on it.

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "core/wal_storage.h"

namespace xerv::testing {

enum class crash_kind { power_cut, process_kill };
const char* to_string(crash_kind k);

enum class fault_op { write, datasync, create, allocate, sync_dir };

// What a restart reads: path -> bytes.
using storage_image = std::map<std::string, std::string>;

class fault_storage final : public core::wal_storage {
 public:
  static constexpr size_t sector = 512;

  explicit fault_storage(uint64_t seed, storage_image files = {});
  ~fault_storage() override;

  // wal_storage
  io::task<io::result<void>> make_dirs(std::string dir) override;
  std::vector<std::pair<uint64_t, std::string>> list_segments(const std::string& dir) override;
  io::task<io::result<std::unique_ptr<core::wal_file>>> open(std::string path, core::wal_open how) override;
  io::task<io::result<void>> remove(std::string path) override;
  io::task<io::result<void>> sync_dir(std::string dir) override;

  // Crashes at the start of the `op`-th operation (1-based; 0: never).
  void crash_at(uint64_t op, crash_kind kind);
  // Crashes now (unless it already has).
  void crash(crash_kind kind);
  bool crashed() const { return _dead; }
  const storage_image& image() const { return _image; }
  uint64_t ops() const { return _ops; }
  // The operation number at which the last successful datasync of `path`
  // started (everything written before it is durable); 0: none.
  uint64_t synced_at(const std::string& path) const;
  // The next `times` calls of `op` fail with `error`.
  void fail_next(fault_op op, std::error_code error, int times = 1);

 private:
  struct version {
    uint64_t seq;       // the write that produced it
    std::string bytes;  // the whole sector after that write (shorter at the end of the file)
  };
  struct mem_file {
    std::string current;
    std::string durable;
    std::map<uint64_t, std::vector<version>> pending;  // sector -> versions since durable, oldest first
    std::set<uint64_t> in_flight;                      // writes applied but not completed
    bool name_durable = false;
    uint64_t synced_at = 0;
  };
  class file;
  friend class file;

  std::error_code injected(fault_op op);
  io::task<void> delay();
  bool crash_point(uint64_t seq);
  io::task<io::result<void>> write(std::shared_ptr<mem_file> f, uint64_t off, std::span<const char> data, bool dsync);
  io::task<io::result<void>> datasync(std::shared_ptr<mem_file> f);
  io::task<io::result<void>> allocate(std::shared_ptr<mem_file> f, uint64_t off, uint64_t len);
  io::result<void> truncate(mem_file& f, uint64_t len);
  static void make_durable(mem_file& f, uint64_t sector_index, size_t upto);
  std::string power_cut_image(const mem_file& f);
  std::string kill_image(const mem_file& f);
  void tear(std::string& img, uint64_t sector_index, const std::string& next);
  static void put_sector(std::string& img, uint64_t sector_index, const std::string& bytes);

  std::mt19937_64 _rng;
  std::map<std::string, std::shared_ptr<mem_file>> _files;
  uint64_t _ops = 0;
  uint64_t _crash_op = 0;
  crash_kind _crash_kind = crash_kind::power_cut;
  bool _dead = false;
  storage_image _image;
  std::map<fault_op, std::pair<std::error_code, int>> _faults;
};

}  // namespace xerv::testing
