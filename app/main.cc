// The xerv binary. For now: `xerv serve` starts the shard runtime and runs until
// SIGINT/SIGTERM; `xerv version` prints the version. The HTTP server, flows and
// configuration arrive with later modules.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/gate.h"
#include "io/log.h"
#include "io/runtime.h"
#include "io/when_all.h"

#ifndef XERV_VERSION
#define XERV_VERSION "0.0.0"
#endif

namespace {

using namespace xerv;

int usage() {
  fprintf(stderr,
          "usage: xerv <command>\n"
          "  serve     run the server until SIGINT/SIGTERM\n"
          "  version   print the version\n");
  return 2;
}

// XERV_SHARDS: a positive integer, or unset for one shard per CPU.
bool shards_from_env(unsigned& out) {
  const char* v = getenv("XERV_SHARDS");
  if (!v || !*v) return true;
  char* end = nullptr;
  long n = strtol(v, &end, 10);
  if (*end != '\0' || n < 1 || n > 1024) {
    fprintf(stderr, "xerv: invalid XERV_SHARDS=%s: expected an integer between 1 and 1024\n", v);
    return false;
  }
  out = static_cast<unsigned>(n);
  return true;
}

io::task<int> serve() {
  XLOG(info, "xerv %s serving on %u shards; send SIGTERM or SIGINT to stop", XERV_VERSION, io::shard_count());
  int sig = co_await io::wait_for_signal();
  XLOG(info, "received %s, stopping every shard", strsignal(sig));
  // Services register their stop here as they arrive (HTTP, engine, WAL).
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string cmd = argv[1];
  if (cmd == "version" || cmd == "--version") {
    printf("xerv %s\n", XERV_VERSION);
    return 0;
  }
  if (cmd != "serve") return usage();
  io::runtime_options opts;
  if (!shards_from_env(opts.shards)) return 2;
  io::runtime rt(opts);
  int code = rt.run(serve());
  XLOG(info, "xerv stopped");
  return code;
}
