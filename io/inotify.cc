#include "io/inotify.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/stat.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "io/ops.h"

namespace xerv::io {

inotify& inotify::operator=(inotify&& o) noexcept {
  if (this != &o) {
    if (_fd >= 0) ::close(_fd);
    _fd = std::exchange(o._fd, -1);
  }
  return *this;
}

inotify::~inotify() {
  if (_fd >= 0) ::close(_fd);
}

result<inotify> inotify::open() {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return from_errno(errno);
  return inotify(fd);
}

result<int> inotify::add(const std::string& dir, uint32_t mask) {
  int wd = ::inotify_add_watch(_fd, dir.c_str(), mask);
  if (wd < 0) return from_errno(errno);
  return wd;
}

void inotify::remove(int wd) {
  // EINVAL: the kernel dropped it already (the directory went away).
  (void)::inotify_rm_watch(_fd, wd);
}

task<result<size_t>> inotify::read(std::span<char> buf, cancel_source* cs) {
  int fd = _fd;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n >= 0) co_return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN) co_return from_errno(errno);
    // inotify files do not take io_uring's non-blocking reads: poll, then read.
    cqe_result c = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_poll_add(s, fd, POLLIN); }, cs);
    if (c.res < 0) co_return cqe_error(c.res, cs);
  }
}

task<result<path_info>> stat_path(std::string path) {
  struct statx st {};
  cqe_result c = co_await ring_op([&](io_uring_sqe* s) {
    io_uring_prep_statx(s, AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_SIZE | STATX_MTIME | STATX_TYPE, &st);
  });
  if (c.res < 0) co_return cqe_error(c.res, nullptr);
  path_info out;
  out.size = st.stx_size;
  out.mtime_ms = uint64_t(st.stx_mtime.tv_sec) * 1000 + st.stx_mtime.tv_nsec / 1'000'000;
  out.is_dir = S_ISDIR(st.stx_mode);
  co_return out;
}

result<std::vector<dir_entry>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return from_errno(errno);
  std::vector<dir_entry> out;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    bool dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {  // some file systems do not fill d_type
      struct stat st {};
      dir = ::fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    out.push_back({std::string(n), dir});
  }
  ::closedir(d);
  return out;
}

}  // namespace xerv::io
