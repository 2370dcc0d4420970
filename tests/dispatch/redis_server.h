#pragma once
// A real redis-server for a test: started on a free loopback port with a data
// dir of its own (no RDB, no AOF unless asked), waited for, and stopped by
// pid (SIGKILL) when the object goes. A missing binary fails the test:
// scripts/setup installs redis-server.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/free_port.h"

extern char** environ;

namespace xerv::testing {

class redis_server {
 public:
  // `extra`: more redis-server arguments (e.g. {"--requirepass", "s3cret"}).
  explicit redis_server(std::vector<std::string> extra = {}, uint16_t port = 0) : _extra(std::move(extra)) {
    char tmpl[] = "/tmp/xerv-test-redis-XXXXXX";
    _dir = mkdtemp(tmpl);
    _port = port ? port : free_port();
    start();
  }
  ~redis_server() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(_dir, ec);
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  uint16_t port() const { return _port; }
  std::string url(const std::string& userinfo = "", unsigned db = 0) const {
    return "redis://" + (userinfo.empty() ? "" : userinfo + "@") + "127.0.0.1:" + std::to_string(_port) +
           (db ? "/" + std::to_string(db) : "");
  }
  bool running() const { return _pid > 0; }

  // Starts it (again, on the same port and data dir); false if it did not
  // listen within 10 s.
  bool start() {
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(_port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", _dir, "--daemonize", "no",
                                     "--logfile", _dir + "/redis.log"};
    for (auto& a : _extra) args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&_pid, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) {
      _pid = -1;
      ADD_FAILURE() << "cannot start redis-server (scripts/setup installs it)";
      return false;
    }
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
      if (accepts()) return true;
      int status = 0;
      if (waitpid(_pid, &status, WNOHANG) == _pid) {
        _pid = -1;
        ADD_FAILURE() << "redis-server exited at start (port " << _port << ")";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "redis-server did not listen on " << _port << " within 10 s";
    return false;
  }
  void kill() {
    if (_pid <= 0) return;
    ::kill(_pid, SIGKILL);
    int status = 0;
    waitpid(_pid, &status, 0);
    _pid = -1;
  }

 private:
  bool accepts() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(_port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

  std::vector<std::string> _extra;
  std::string _dir;
  uint16_t _port = 0;
  pid_t _pid = -1;
};

}  // namespace xerv::testing
