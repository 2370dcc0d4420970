#pragma once
// A xerv server for REST API tests: its own data directory (kept when asked, for
// restarts), a free port, and one-call requests.

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/xerv_process.h"

namespace xerv::testing {

struct api {
  // `env` overrides the defaults (2 shards, a fresh data dir of its own).
  explicit api(std::vector<std::string> env = {}) {
    dir = std::filesystem::temp_directory_path() / ("xerv-api-" + std::to_string(getpid()) + "-" + std::to_string(++serial));
    std::filesystem::remove_all(dir);
    start(std::move(env));
  }
  ~api() {
    proc.reset();
    if (keep_dir) return;
    std::filesystem::remove_all(dir);
  }
  // (Re)starts the server on the same data directory; waits until it serves.
  void start(std::vector<std::string> env = {}) {
    proc.reset();
    env.insert(env.begin(), {"XERV_SHARDS=2", "XERV_DATA_DIR=" + dir.string()});
    proc = std::make_unique<xerv_process>(env);
    port = proc->wait_ready();
    EXPECT_NE(port, 0) << proc->log();
  }
  // kill -9, and waits until the process is gone.
  void kill9() {
    proc->signal(SIGKILL);
    proc->wait_exit(std::chrono::milliseconds(10000));
  }
  client::response call(const std::string& request, int ms = 10000) {
    client c(port);
    c.send(request);
    return c.read_response(ms);
  }
  client::response get(const std::string& path) { return call(xerv::testing::get(path)); }
  client::response post(const std::string& path, const std::string& body, int ms = 10000) {
    return call(xerv::testing::post(path, body), ms);
  }
  client::response method(const std::string& m, const std::string& path, const std::string& body = "") {
    return call(m + " " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  static inline int serial = 0;
  std::filesystem::path dir;
  std::unique_ptr<xerv_process> proc;
  uint16_t port = 0;
  bool keep_dir = false;
};

}  // namespace xerv::testing
