#pragma once
// Files through the ring: open (O_DIRECT when the file system takes it), positional
// reads and writes that finish short transfers, fdatasync and fallocate. With
// O_DIRECT, offsets, lengths and buffer addresses must be multiples of
// aligned_buffer::alignment; aligned_buffer provides such memory.

#include <fcntl.h>

#include <cstdint>
#include <span>
#include <string>

#include "io/result.h"
#include "io/task.h"

namespace xerv::io {

class aligned_buffer {
 public:
  static constexpr size_t alignment = 4096;
  aligned_buffer() = default;
  explicit aligned_buffer(size_t size);  // rounded up to the alignment, zeroed
  aligned_buffer(aligned_buffer&& o) noexcept;
  aligned_buffer& operator=(aligned_buffer&& o) noexcept;
  ~aligned_buffer();

  char* data() { return _data; }
  const char* data() const { return _data; }
  size_t size() const { return _size; }
  std::span<char> span() { return {_data, _size}; }

 private:
  char* _data = nullptr;
  size_t _size = 0;
};

enum class direct_io {
  off,        // page cache
  preferred,  // O_DIRECT, or the page cache with a warning where the file system refuses it
  required,   // O_DIRECT or errc::not_supported
};

struct open_options {
  int flags = O_RDWR | O_CREAT;
  unsigned mode = 0644;
  direct_io direct = direct_io::preferred;
};

class file {
 public:
  file() = default;
  file(file&& o) noexcept : _fd(std::exchange(o._fd, -1)), _direct(o._direct) {}
  file& operator=(file&& o) noexcept;
  ~file();

  static task<result<file>> open(std::string path, open_options opts = {});

  int fd() const { return _fd; }
  bool is_direct() const { return _direct; }

  // Reads until `out` is full or end of file; returns the bytes read.
  task<result<size_t>> read_at(uint64_t offset, std::span<char> out);
  // `rw_flags` are RWF_* flags for this write only (RWF_DSYNC: durable on completion).
  task<result<void>> write_at(uint64_t offset, std::span<const char> data, int rw_flags = 0);
  task<result<void>> datasync();
  task<result<void>> allocate(uint64_t offset, uint64_t length);
  task<result<uint64_t>> size();
  // Blocking ftruncate (liburing has no ring op for it here): for recovery at
  // start-up only, never on a hot path.
  result<void> truncate(uint64_t length);
  task<void> close();

 private:
  file(int fd, bool direct) : _fd(fd), _direct(direct) {}
  int _fd = -1;
  bool _direct = false;
};

// Directory operations through the ring.
task<result<void>> make_dir(std::string path, unsigned mode = 0755);  // EEXIST is success
task<result<void>> make_dirs(std::string path, unsigned mode = 0755);  // every missing level
task<result<void>> rename_file(std::string from, std::string to);
task<result<void>> remove_file(std::string path);  // ENOENT is success

// Replaces `path` with `data` so that a crash leaves the old or the new content,
// never a mix: write a temporary file, fdatasync it, rename it over `path`, then
// fsync the directory.
task<result<void>> write_file_atomic(std::string path, std::string data);

// A whole file with plain blocking calls, for start-up before the runtime runs
// and for the CLI; never on a shard. False when it cannot be read.
bool read_file_blocking(const std::string& path, std::string& out);

}  // namespace xerv::io
