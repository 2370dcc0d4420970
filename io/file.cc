#include "io/file.h"

#include <linux/stat.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/log.h"
#include "io/ops.h"
#include "io/runtime.h"

namespace xerv::io {

aligned_buffer::aligned_buffer(size_t size) {
  _size = (size + alignment - 1) / alignment * alignment;
  if (_size == 0) return;
  _data = static_cast<char*>(std::aligned_alloc(alignment, _size));
  ASSERT(_data != nullptr, "aligned_alloc(%zu)", _size);
  std::memset(_data, 0, _size);
}
aligned_buffer::aligned_buffer(aligned_buffer&& o) noexcept
    : _data(std::exchange(o._data, nullptr)), _size(std::exchange(o._size, 0)) {}
aligned_buffer& aligned_buffer::operator=(aligned_buffer&& o) noexcept {
  if (this != &o) {
    std::free(_data);
    _data = std::exchange(o._data, nullptr);
    _size = std::exchange(o._size, 0);
  }
  return *this;
}
aligned_buffer::~aligned_buffer() { std::free(_data); }

file& file::operator=(file&& o) noexcept {
  if (this != &o) {
    if (_fd >= 0) ::close(_fd);
    _fd = std::exchange(o._fd, -1);
    _direct = o._direct;
  }
  return *this;
}

file::~file() {
  if (_fd >= 0) ::close(_fd);
}

namespace {
task<int> open_raw(std::string path, int flags, unsigned mode) {
  cqe_result c = co_await ring_op(
      [&](io_uring_sqe* s) { io_uring_prep_openat(s, AT_FDCWD, path.c_str(), flags | O_CLOEXEC, mode); });
  co_return c.res;
}
}  // namespace

task<result<file>> file::open(std::string path, open_options opts) {
  int flags = opts.flags & ~O_DIRECT;
  if (opts.direct != direct_io::off) {
    int fd = co_await open_raw(path, flags | O_DIRECT, opts.mode);
    if (fd >= 0) co_return file(fd, true);
    if (fd != -EINVAL) co_return from_errno(-fd);
    if (opts.direct == direct_io::required) co_return errc::not_supported;
    XLOG(warn, "%s: file system refuses O_DIRECT; using the page cache (durability still relies on fdatasync)",
         path.c_str());
  }
  int fd = co_await open_raw(path, flags, opts.mode);
  if (fd < 0) co_return from_errno(-fd);
  co_return file(fd, false);
}

task<result<size_t>> file::read_at(uint64_t offset, std::span<char> out) {
  int fd = _fd;
  size_t done = 0;
  while (done < out.size()) {
    cqe_result c = co_await ring_op([&](io_uring_sqe* s) {
      io_uring_prep_read(s, fd, out.data() + done, static_cast<unsigned>(out.size() - done), offset + done);
    });
    if (c.res == -EINTR || c.res == -EAGAIN) continue;
    if (c.res < 0) co_return cqe_error(c.res, nullptr);
    if (c.res == 0) break;  // end of file
    done += static_cast<size_t>(c.res);
  }
  co_return done;
}

task<result<void>> file::write_at(uint64_t offset, std::span<const char> data, int rw_flags) {
  int fd = _fd;
  size_t done = 0;
  while (done < data.size()) {
    cqe_result c = co_await ring_op([&](io_uring_sqe* s) {
      io_uring_prep_write(s, fd, data.data() + done, static_cast<unsigned>(data.size() - done), offset + done);
      s->rw_flags = rw_flags;
    });
    if (c.res == -EINTR || c.res == -EAGAIN) continue;
    if (c.res < 0) co_return cqe_error(c.res, nullptr);
    if (c.res == 0) co_return from_errno(EIO);  // no progress: never spin
    done += static_cast<size_t>(c.res);
  }
  co_return result<void>{};
}

task<result<void>> file::datasync() {
  int fd = _fd;
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC); });
  if (c.res < 0) co_return cqe_error(c.res, nullptr);
  co_return result<void>{};
}

task<result<void>> file::allocate(uint64_t offset, uint64_t length) {
  int fd = _fd;
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_fallocate(s, fd, 0, offset, length); });
  if (c.res < 0) co_return cqe_error(c.res, nullptr);
  co_return result<void>{};
}

task<result<uint64_t>> file::size() {
  int fd = _fd;
  struct statx st {};
  cqe_result c = co_await ring_op(
      [&](io_uring_sqe* s) { io_uring_prep_statx(s, fd, "", AT_EMPTY_PATH, STATX_SIZE, &st); });
  if (c.res < 0) co_return cqe_error(c.res, nullptr);
  co_return static_cast<uint64_t>(st.stx_size);
}

result<void> file::truncate(uint64_t length) {
  if (::ftruncate(_fd, static_cast<off_t>(length)) != 0) return from_errno(errno);
  return {};
}

task<void> file::close() {
  int fd = std::exchange(_fd, -1);
  if (fd < 0) co_return;
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_close(s, fd); });
  (void)c;  // Nothing to retry after a failed close.
}

task<result<void>> make_dir(std::string path, unsigned mode) {
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_mkdirat(s, AT_FDCWD, path.c_str(), mode); });
  if (c.res < 0 && c.res != -EEXIST) co_return cqe_error(c.res, nullptr);
  co_return result<void>{};
}

task<result<void>> make_dirs(std::string path, unsigned mode) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string part = slash == std::string::npos ? path : path.substr(0, slash);
    if (auto r = co_await make_dir(part, mode); !r) co_return r;
    if (slash == std::string::npos) co_return result<void>{};
  }
}

task<result<void>> rename_file(std::string from, std::string to) {
  cqe_result c = co_await ring_op(
      [&](io_uring_sqe* s) { io_uring_prep_renameat(s, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), 0); });
  if (c.res < 0) co_return cqe_error(c.res, nullptr);
  co_return result<void>{};
}

task<result<void>> remove_file(std::string path) {
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_unlinkat(s, AT_FDCWD, path.c_str(), 0); });
  if (c.res < 0 && c.res != -ENOENT) co_return cqe_error(c.res, nullptr);
  co_return result<void>{};
}

task<result<void>> write_file_atomic(std::string path, std::string data) {
  // A name of its own per write: two writes of one path in flight (from two
  // shards, or interleaved on one) must never share a temporary file.
  thread_local uint64_t t_writes = 0;
  std::string tmp = path + ".tmp-" + std::to_string(this_shard_id()) + "-" + std::to_string(++t_writes);
  {
    open_options opts{.flags = O_WRONLY | O_CREAT | O_TRUNC, .direct = direct_io::off};
    auto f = co_await file::open(tmp, opts);
    if (!f) co_return f.error();
    if (auto w = co_await f->write_at(0, data); !w) co_return w.error();
    if (auto s = co_await f->datasync(); !s) co_return s.error();
    co_await f->close();
  }
  if (auto r = co_await rename_file(tmp, path); !r) co_return r.error();
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? std::string(".") : path.substr(0, slash + 1);
  open_options dir_opts{.flags = O_RDONLY | O_DIRECTORY, .direct = direct_io::off};
  auto d = co_await file::open(dir, dir_opts);
  if (!d) co_return d.error();
  auto synced = co_await d->datasync();
  co_await d->close();
  co_return synced;
}

bool read_file_blocking(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

}  // namespace xerv::io
