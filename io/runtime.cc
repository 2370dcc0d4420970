#include "io/runtime.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <latch>

#include "io/log.h"
#include "io/ops.h"

namespace xerv::io {
namespace {
runtime* g_runtime = nullptr;  // set for the duration of run()

bool try_setup(unsigned flags) {
  io_uring ring{};
  io_uring_params p{};
  p.flags = flags;
  if (io_uring_queue_init_params(8, &ring, &p) != 0) return false;
  io_uring_queue_exit(&ring);
  return true;
}

// The CPUs this process may use (respecting taskset and cgroups), in order.
std::vector<int> allowed_cpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &allowed)) out.push_back(cpu);
  return out;
}

void pin_to_cpu(unsigned shard, const std::vector<int>& cpus) {
  if (cpus.empty()) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus[shard % cpus.size()], &one);
  if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0)
    XLOG(warn, "could not pin shard %u to cpu %d", shard, cpus[shard % cpus.size()]);
}

void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}
}  // namespace

ring_features probe_ring_features() {
  ring_features f;
  f.single_issuer = try_setup(IORING_SETUP_SINGLE_ISSUER);
  f.defer_taskrun = f.single_issuer && try_setup(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  f.coop_taskrun = try_setup(IORING_SETUP_COOP_TASKRUN);
  if (io_uring_probe* p = io_uring_get_probe()) {
    f.msg_ring = io_uring_opcode_supported(p, IORING_OP_MSG_RING);
    f.send_zc = io_uring_opcode_supported(p, IORING_OP_SEND_ZC);
    // Buffer rings and multishot accept arrived in the same release (5.19) as
    // IORING_OP_SOCKET, which the probe can see.
    f.buf_ring = io_uring_opcode_supported(p, IORING_OP_SOCKET);
    f.multishot_accept = f.buf_ring;
    io_uring_free_probe(p);
  }
  return f;
}

runtime::runtime(runtime_options opts) : _opts(opts) {
  // Read once, before run() pins the calling thread: a second runtime started from
  // the same thread must still spread its shards over every allowed CPU.
  _cpus = allowed_cpus();
  _count = opts.shards ? opts.shards : std::max<unsigned>(1, static_cast<unsigned>(_cpus.size()));
  ASSERT(_count >= 1 && _count <= 1024, "shard count %u", _count);
  _features = probe_ring_features();
  // Shards write their logs through their own rings at the file position; two
  // rings racing on one position of a regular file overwrite each other's lines.
  // O_APPEND makes every write land at the end (`xerv serve 2> file`).
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
    int fl = fcntl(STDERR_FILENO, F_GETFL);
    if (fl >= 0 && !(fl & O_APPEND)) (void)fcntl(STDERR_FILENO, F_SETFL, fl | O_APPEND);
  }
  if (opts.force_eventfd_wakeup) _features.msg_ring = false;
  _queues.resize(size_t{_count} * _count);
  for (unsigned a = 0; a < _count; ++a)
    for (unsigned b = 0; b < _count; ++b)
      if (a != b) _queues[a * _count + b] = std::make_unique<spsc_queue<message*>>(opts.message_queue_slots);
  _reactors.assign(_count, nullptr);
}

runtime::~runtime() {
  if (_signal_fd >= 0) close(_signal_fd);
}

void runtime::start_signalfd() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  // Blocked before any shard thread exists, so every thread inherits the mask and
  // the signals are only ever read from the signalfd.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  _signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
  ASSERT(_signal_fd >= 0, "signalfd: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
}

namespace {
detail::detached run_main(runtime* rt, task<int> main, int* exit_code) {
  try {
    *exit_code = co_await std::move(main);
  } catch (const std::exception& e) {
    XLOG(error, "main task failed: %s", e.what());
    *exit_code = 1;
  }
  rt->stop();
}
}  // namespace

void runtime::shard_main(unsigned id, task<int>* main) {
  if (_opts.pin_threads) pin_to_cpu(id, _cpus);
  reactor r(*this, id, _opts, _features);
  _reactors[id] = &r;
  _start_latch->arrive_and_wait();
  if (main) run_main(this, std::move(*main), &_exit_code);
  r.run();
  const auto& st = r.counters();
  XLOG(info, "shard %u stopped (%llu loop iterations, %llu sleeps, %llu wake-ups sent, %llu messages received)", id,
       static_cast<unsigned long long>(st.loop_iterations), static_cast<unsigned long long>(st.sleeps),
       static_cast<unsigned long long>(st.wakeups_sent), static_cast<unsigned long long>(st.messages_received));
  _stop_latch->arrive_and_wait();  // no reactor is destroyed while others may still wake it
}

int runtime::run(task<int> main) {
  ASSERT(g_runtime == nullptr, "one runtime at a time");
  g_runtime = this;
  raise_fd_limit();
  start_signalfd();
  XLOG(info, "runtime: %u shards; io_uring single_issuer=%d defer_taskrun=%d coop_taskrun=%d msg_ring=%d buf_ring=%d multishot_accept=%d send_zc=%d",
       _count, _features.single_issuer, _features.defer_taskrun, _features.coop_taskrun, _features.msg_ring,
       _features.buf_ring, _features.multishot_accept, _features.send_zc);
  std::latch start(_count), done(_count);
  _start_latch = &start;
  _stop_latch = &done;
  cpu_set_t caller_mask;
  bool restore = pthread_getaffinity_np(pthread_self(), sizeof caller_mask, &caller_mask) == 0;
  for (unsigned id = 1; id < _count; ++id) _threads.emplace_back([this, id] { shard_main(id, nullptr); });
  shard_main(0, &main);
  if (restore) pthread_setaffinity_np(pthread_self(), sizeof caller_mask, &caller_mask);
  for (auto& t : _threads) t.join();
  _threads.clear();
  _reactors.assign(_count, nullptr);
  g_runtime = nullptr;
  return _exit_code;
}

void runtime::stop() {
  for (reactor* r : _reactors)
    if (r) r->stop();
}

unsigned this_shard_id() { return this_reactor().id(); }
unsigned shard_count() {
  ASSERT(g_runtime != nullptr, "no runtime running");
  return g_runtime->shard_count();
}

namespace detail {
void reply(message* m) {
  m->replying = true;
  this_reactor().send(m->origin, m);
}
}  // namespace detail

task<int> wait_for_signal() {
  ASSERT(g_runtime != nullptr && this_shard_id() == 0, "signals are read on shard 0");
  signalfd_siginfo info{};
  int fd = g_runtime->_signal_fd;
  for (;;) {
    cqe_result r = co_await ring_op([&](io_uring_sqe* s) { io_uring_prep_read(s, fd, &info, sizeof info, 0); });
    if (r.res == static_cast<int>(sizeof info)) co_return static_cast<int>(info.ssi_signo);
    if (r.res < 0 && r.res != -EAGAIN && r.res != -EINTR) {
      XLOG(error, "reading signalfd: %s", strerror(-r.res));
      co_return 0;
    }
  }
}

}  // namespace xerv::io
