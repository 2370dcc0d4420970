#include "core/wal_storage.h"

#include <fcntl.h>
#include <sys/uio.h>

#include <cstdio>
#include <cstdlib>

#include "core/wal.h"
#include "io/file.h"

namespace xerv::core {
namespace {

// Each method hands back io::file's own task: no coroutine frame of its own.
class real_file final : public wal_file {
 public:
  explicit real_file(io::file f) : _f(std::move(f)) {}
  io::task<io::result<size_t>> read_at(uint64_t offset, std::span<char> out) override {
    return _f.read_at(offset, out);
  }
  io::task<io::result<void>> write_at(uint64_t offset, std::span<const char> data, bool dsync) override {
    return _f.write_at(offset, data, dsync ? RWF_DSYNC : 0);
  }
  io::task<io::result<void>> datasync() override { return _f.datasync(); }
  io::task<io::result<void>> allocate(uint64_t offset, uint64_t length) override {
    return _f.allocate(offset, length);
  }
  io::task<io::result<uint64_t>> size() override { return _f.size(); }
  io::result<void> truncate(uint64_t length) override { return _f.truncate(length); }
  io::task<void> close() override { return _f.close(); }

 private:
  io::file _f;
};

class real_storage final : public wal_storage {
 public:
  io::task<io::result<void>> make_dirs(std::string dir) override { return io::make_dirs(std::move(dir)); }
  std::vector<std::pair<uint64_t, std::string>> list_segments(const std::string& dir) override {
    return core::list_segments(dir);
  }
  io::task<io::result<std::unique_ptr<wal_file>>> open(std::string path, wal_open how) override {
    io::open_options o;
    if (how == wal_open::existing) o = {.flags = O_RDWR, .direct = io::direct_io::off};
    else o = {.flags = O_RDWR | O_CREAT | O_TRUNC};
    auto f = co_await io::file::open(std::move(path), o);
    if (!f) co_return f.error();
    co_return std::unique_ptr<wal_file>(new real_file(std::move(*f)));
  }
  io::task<io::result<void>> remove(std::string path) override { return io::remove_file(std::move(path)); }
  io::task<io::result<void>> sync_dir(std::string dir) override {
    auto d = co_await io::file::open(dir, {.flags = O_RDONLY | O_DIRECTORY, .direct = io::direct_io::off});
    if (!d) co_return d.error();
    auto synced = co_await d->datasync();
    co_await d->close();
    co_return synced;
  }
};

}  // namespace

wal_storage& file_storage() {
  static real_storage s;
  return s;
}

std::string segment_file_name(uint64_t seq) {
  char name[32];
  snprintf(name, sizeof name, "%020llu.wal", static_cast<unsigned long long>(seq));
  return name;
}

uint64_t segment_sequence(std::string_view n) {
  if (n.size() != 24 || !n.ends_with(".wal")) return 0;
  uint64_t seq = 0;
  for (char c : n.substr(0, 20)) {
    if (c < '0' || c > '9') return 0;
    seq = seq * 10 + uint64_t(c - '0');
  }
  return seq;
}

}  // namespace xerv::core
