#pragma once
// Test helpers: run the real xerv binary as a child process on a free loopback
// port, and talk to it with plain blocking sockets from the test thread.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/free_port.h"

extern char** environ;

namespace xerv::testing {

// The binary under test: XERV_TEST_BINARY, when set, runs the suite against
// another build (e.g. to show that a new test fails on an older one).
inline const char* xerv_binary() {
  const char* b = getenv("XERV_TEST_BINARY");
  return b && *b ? b : XERV_BINARY;
}

// A xerv child process. The port comes from its own start-up log line. Unless
// the caller names a data directory, it gets a fresh one of its own, removed with
// it: a test never touches the default /tmp/xerv (scripts/run's).
class xerv_process {
 public:
  explicit xerv_process(std::vector<std::string> env_extra, std::vector<std::string> args = {}) {
    char tmpl[] = "/tmp/xerv-test-log-XXXXXX";
    int fd = mkstemp(tmpl);
    _log_path = tmpl;
    bool has_data_dir = std::any_of(env_extra.begin(), env_extra.end(),
                                    [](const std::string& e) { return e.rfind("XERV_DATA_DIR=", 0) == 0; }) ||
                        std::find(args.begin(), args.end(), "--data-dir") != args.end();
    if (!has_data_dir) {
      char dir[] = "/tmp/xerv-test-data-XXXXXX";
      if (mkdtemp(dir)) _own_data_dir = dir;
      env_extra.insert(env_extra.begin(), "XERV_DATA_DIR=" + _own_data_dir);
    }
    // Later entries override earlier ones with the same name (getenv takes the first).
    std::vector<std::string> env;
    auto set = [&env](const std::string& kv) {
      std::string key = kv.substr(0, kv.find('=') + 1);
      std::erase_if(env, [&](const std::string& e) { return e.rfind(key, 0) == 0; });
      env.push_back(kv);
    };
    for (char** e = environ; *e; ++e) set(*e);
    set("XERV_API_HOST=127.0.0.1");
    set("XERV_API_PORT=0");
    for (auto& e : env_extra) set(e);
    std::vector<std::string> argv_s = {xerv_binary(), "serve"};
    for (auto& a : args) argv_s.push_back(a);
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, STDERR_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fd, STDOUT_FILENO);
    _spawned = posix_spawn(&_pid, argv_s[0].c_str(), &fa, nullptr, argv.data(), envp.data()) == 0;
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
  }
  ~xerv_process() {
    if (_pid > 0 && !_reaped) {
      kill(_pid, SIGKILL);
      waitpid(_pid, nullptr, 0);
    }
    unlink(_log_path.c_str());
    if (!_own_data_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(_own_data_dir, ec);
    }
  }

  // Waits for the "serving on" line and returns the port, or 0.
  uint16_t wait_ready(std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      std::string log = this->log();
      auto at = log.find("serving on ");
      if (at != std::string::npos) {
        auto colon = log.find("127.0.0.1:", at);
        if (colon != std::string::npos) return uint16_t(std::stoi(log.substr(colon + 10)));
      }
      if (exited()) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return 0;
  }

  std::string log() const {
    std::ifstream in(_log_path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  bool exited() {
    if (_reaped) return true;
    int st = 0;
    if (waitpid(_pid, &st, WNOHANG) == _pid) {
      _reaped = true;
      _status = st;
    }
    return _reaped;
  }

  // Exit code after the process ended within `limit`, or nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (exited()) return WIFEXITED(_status) ? WEXITSTATUS(_status) : 128 + WTERMSIG(_status);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  void signal(int sig) { kill(_pid, sig); }
  bool spawned() const { return _spawned; }
  pid_t pid() const { return _pid; }
  // The data directory made for this process (empty when the caller chose one).
  const std::string& own_data_dir() const { return _own_data_dir; }

 private:
  std::string _own_data_dir;
  pid_t _pid = -1;
  bool _spawned = false;
  bool _reaped = false;
  int _status = 0;
  std::string _log_path;
};

// Runs `xerv serve` with the given env and returns {exit code, output}; for
// start-up failures that exit at once.
inline std::pair<int, std::string> run_xerv_expect_exit(std::vector<std::string> env, std::vector<std::string> args = {}) {
  xerv_process p(std::move(env), std::move(args));
  auto code = p.wait_exit(std::chrono::milliseconds(10000));
  return {code.value_or(-1), p.log()};
}

// A blocking client connection with timeouts.
class client {
 public:
  explicit client(uint16_t port) {
    _fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    _connected = ::connect(_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int one = 1;
    setsockopt(_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~client() {
    if (_fd >= 0) ::close(_fd);
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  bool connected() const { return _connected; }
  int fd() const { return _fd; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(_fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(size_t(n));
    }
    return true;
  }

  // Reads what is available within `ms` (appends to the buffer); false on EOF/error.
  bool fill(int ms) {
    pollfd p{_fd, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return true;  // nothing yet
    char buf[65536];
    ssize_t n = ::recv(_fd, buf, sizeof buf, 0);
    if (n <= 0) {
      _eof = true;
      return false;
    }
    _buf.append(buf, size_t(n));
    return true;
  }

  struct response {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    bool complete = false;
  };

  // Reads one response (Content-Length or chunked) within `ms`.
  response read_response(int ms = 5000) {
    response r;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      if (parse(r)) return r;
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
      if (left <= 0 || _eof) return r;
      fill(std::min(left, 100));
    }
  }

  // True when the server closed the connection within `ms` (after any buffered data).
  bool closed_within(int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!_eof && std::chrono::steady_clock::now() < end) fill(50);
    return _eof;
  }

  std::string& buffer() { return _buf; }

 private:
  bool parse(response& r) {
    size_t head_end = _buf.find("\r\n\r\n");
    if (head_end == std::string::npos) return false;
    std::string head = _buf.substr(0, head_end);
    if (head.rfind("HTTP/1.1 ", 0) != 0) return false;
    r.status = std::stoi(head.substr(9, 3));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string k = line.substr(0, colon);
        for (auto& c : k) c = char(tolower(c));
        std::string v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        r.headers[k] = v;
      }
      pos = next;
    }
    size_t body_start = head_end + 4;
    if (r.status == 100) {
      _buf.erase(0, body_start);
      r.complete = true;
      return true;
    }
    if (r.headers.count("transfer-encoding")) {
      std::string body;
      size_t p = body_start;
      for (;;) {
        size_t le = _buf.find("\r\n", p);
        if (le == std::string::npos) return false;
        size_t n = std::stoul(_buf.substr(p, le - p), nullptr, 16);
        if (_buf.size() < le + 2 + n + 2) return false;
        if (n == 0) {
          _buf.erase(0, le + 4);
          r.body = body;
          r.complete = true;
          return true;
        }
        body.append(_buf, le + 2, n);
        p = le + 2 + n + 2;
      }
    }
    size_t len = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    if (_buf.size() < body_start + len) return false;
    r.body = _buf.substr(body_start, len);
    _buf.erase(0, body_start + len);
    r.complete = true;
    return true;
  }

  int _fd = -1;
  bool _connected = false;
  bool _eof = false;
  std::string _buf;
};

inline std::string get(std::string_view path, std::string_view extra_headers = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

inline std::string post(std::string_view path, std::string_view body, std::string_view extra_headers = "") {
  return "POST " + std::string(path) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + std::string(extra_headers) + "\r\n" + std::string(body);
}

// One request on a fresh connection; `complete` is false when the server is gone.
// `headers`: extra header lines, each ending in \r\n.
inline client::response request(uint16_t port, const std::string& method, const std::string& path,
                                 const std::string& body = "", int ms = 10000, const std::string& headers = "") {
  client c(port);
  if (!c.connected()) return {};
  c.send(method + " " + path + " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  return c.read_response(ms);
}

// The first string value of "name" in a JSON text (enough for these replies).
inline std::string json_field(const std::string& body, const std::string& name) {
  std::string needle = "\"" + name + "\":\"";
  size_t at = body.find(needle);
  if (at == std::string::npos) return {};
  at += needle.size();
  return body.substr(at, body.find('"', at) - at);
}

// The first unsigned number field `name` in `body` (-1 when there is none).
inline long long json_number(const std::string& body, const std::string& name) {
  std::string needle = "\"" + name + "\":";
  size_t at = body.find(needle);
  if (at == std::string::npos || at + needle.size() >= body.size()) return -1;
  at += needle.size();
  if (body[at] < '0' || body[at] > '9') return -1;
  return std::stoll(body.substr(at, 20));
}

}  // namespace xerv::testing
