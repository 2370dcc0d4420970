#pragma once
// What the WAL needs from the file system: its directory and its segment files.
//
// The WAL reaches the disk only through this seam, so that tests can run it on an
// in-memory file system that loses unsynced writes at a crash
// (tests/crash/fault_storage.h). Product code uses file_storage(): io::file on
// O_DIRECT files, through the ring. The cost is one virtual call per write: the
// real implementation returns io::file's own task, without a coroutine of its own.
//
// Calls come from the WAL's shard only; implementations need no locking.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/result.h"
#include "io/task.h"

namespace xerv::core {

// One open segment file.
class wal_file {
 public:
  virtual ~wal_file() = default;
  // Reads until `out` is full or the end of the file; returns the bytes read.
  virtual io::task<io::result<size_t>> read_at(uint64_t offset, std::span<char> out) = 0;
  // With `dsync`, the data is durable when the write completes (RWF_DSYNC).
  virtual io::task<io::result<void>> write_at(uint64_t offset, std::span<const char> data, bool dsync) = 0;
  virtual io::task<io::result<void>> datasync() = 0;
  virtual io::task<io::result<void>> allocate(uint64_t offset, uint64_t length) = 0;
  virtual io::task<io::result<uint64_t>> size() = 0;
  // At start-up only (blocking for real files).
  virtual io::result<void> truncate(uint64_t length) = 0;
  virtual io::task<void> close() = 0;
};

enum class wal_open {
  existing,  // read and write an existing file, through the page cache (recovery)
  create,    // a new, empty file (replacing one of that name), O_DIRECT where possible
};

class wal_storage {
 public:
  virtual ~wal_storage() = default;
  virtual io::task<io::result<void>> make_dirs(std::string dir) = 0;
  // Segment files of `dir`, oldest first: {sequence, path}. At start-up only.
  virtual std::vector<std::pair<uint64_t, std::string>> list_segments(const std::string& dir) = 0;
  virtual io::task<io::result<std::unique_ptr<wal_file>>> open(std::string path, wal_open how) = 0;
  virtual io::task<io::result<void>> remove(std::string path) = 0;  // a missing file is success
  // Makes the names of the files created in `dir` survive a power cut.
  virtual io::task<io::result<void>> sync_dir(std::string dir) = 0;
};

// The real file system (stateless; shared by every shard).
wal_storage& file_storage();

// Segment files are named by their sequence number: 00000000000000000001.wal.
std::string segment_file_name(uint64_t seq);
// The sequence number a file name stands for; 0 when it is not a segment's name.
uint64_t segment_sequence(std::string_view file_name);

}  // namespace xerv::core
