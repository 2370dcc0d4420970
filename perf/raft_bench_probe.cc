// raft_bench_probe: one failover measurement for perf/raft_bench.sh. It kills
// the leader itself (SIGKILL to --kill PID, the clock starts just before), then
// every --interval-ms (10) it sends, over a new loopback connection each:
//  - POST --path with a small JSON body to each surviving node (--post
//    PORT,PORT): the admission; the first 202 from a node is that node's
//    "admitting again" time;
//  - GET /health to each survivor (--health PORT,PORT): once every survivor
//    names the same leader, not 0 and not --old-leader, that is the "new
//    leader" time.
// Requests are not serialized: a request that hangs during the election (a
// follower that waits for a leader) does not delay the next one, which leaves
// on time; each is given up after --request-timeout-ms (1000). Prints one line
//   admit_first_ms admit_all_ms leader_ms new_leader requests
// (admit_first: the first 202 from any survivor, admit_all: the time by which
// every survivor has answered one) and exits 0; exits 1 when that has not all
// happened within --limit-ms (15000), 2 on bad arguments.
//
//   raft_bench_probe --kill PID --old-leader ID --post P1,P2 --health P1,P2
//                    [--path /hooks/bench] [--interval-ms 10]
//                    [--request-timeout-ms 1000] [--limit-ms 15000]

#include <poll.h>
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "harness.h"

namespace {

using clock_type = std::chrono::steady_clock;

std::vector<uint16_t> ports(const std::string& list) {
  std::vector<uint16_t> out;
  size_t at = 0;
  while (at < list.size()) {
    size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    unsigned long p = strtoul(list.substr(at, comma - at).c_str(), nullptr, 10);
    if (p == 0 || p > 65535) return {};
    out.push_back(uint16_t(p));
    at = comma + 1;
  }
  return out;
}

// One request in flight: the bytes still to send, what came back so far.
struct request {
  int fd = -1;
  size_t target = 0;  // index into the post or health ports
  bool health = false;
  std::string out, in;
  clock_type::time_point started;
};

// The status code of a complete HTTP/1.1 response in `in` (its body as long as
// Content-Length says, or up to the close when `closed`), or 0 while incomplete.
int complete_status(const std::string& in, bool closed, std::string& body) {
  size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos || in.size() < 12 || in.compare(0, 5, "HTTP/") != 0) return 0;
  int status = atoi(in.c_str() + 9);
  size_t cl = std::string::npos;
  for (size_t at = in.find("\r\n"); at < end; at = in.find("\r\n", at + 2)) {
    std::string line = in.substr(at + 2, in.find("\r\n", at + 2) - at - 2);
    for (auto& ch : line) ch = char(tolower(static_cast<unsigned char>(ch)));
    if (line.compare(0, 15, "content-length:") == 0) cl = strtoul(line.c_str() + 15, nullptr, 10);
  }
  size_t have = in.size() - end - 4;
  if (cl == std::string::npos ? !closed : have < cl) return 0;
  body = in.substr(end + 4, cl == std::string::npos ? have : cl);
  return status;
}

// The number after "leader_id": in a /health body, -1 when absent.
long long leader_of(const std::string& body) {
  size_t at = body.find("\"leader_id\":");
  return at == std::string::npos ? -1 : atoll(body.c_str() + at + 12);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace xerv::perf;
  long pid = long(arg_number(argc, argv, "--kill", 0));
  long long old_leader = (long long)arg_number(argc, argv, "--old-leader", 0);
  auto post = ports(arg_string(argc, argv, "--post", ""));
  auto health = ports(arg_string(argc, argv, "--health", ""));
  std::string path = arg_string(argc, argv, "--path", "/hooks/bench");
  auto interval = std::chrono::milliseconds(long(arg_number(argc, argv, "--interval-ms", 10)));
  auto request_timeout = std::chrono::milliseconds(long(arg_number(argc, argv, "--request-timeout-ms", 1000)));
  auto limit = std::chrono::milliseconds(long(arg_number(argc, argv, "--limit-ms", 15000)));
  if (pid <= 1 || old_leader <= 0 || post.empty() || health.empty()) {
    fprintf(stderr, "usage: raft_bench_probe --kill PID --old-leader ID --post P1,P2 --health P1,P2 [...]\n");
    return 2;
  }
  const std::string body = "{\"probe\":1}";
  const std::string post_req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                               "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  const std::string health_req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

  std::vector<double> admitted(post.size(), -1);  // ms after the kill
  std::vector<long long> named(health.size(), -1);
  double leader_ms = -1;
  long long new_leader = 0;
  long sent = 0;
  std::vector<request> flight;

  auto t0 = clock_type::now();
  if (kill(pid_t(pid), SIGKILL) != 0) {
    perror("raft_bench_probe: kill");
    return 1;
  }
  auto ms_since = [&](clock_type::time_point t) { return std::chrono::duration<double, std::milli>(t - t0).count(); };
  auto all_admitted = [&] {
    for (double a : admitted)
      if (a < 0) return false;
    return true;
  };
  auto start = [&](size_t target, bool is_health) {
    uint16_t port = is_health ? health[target] : post[target];
    int fd = connect_loopback(port);
    ++sent;
    if (fd < 0) return;  // refused: nothing listens (yet); the next tick tries again
    request r;
    r.fd = fd;
    r.target = target;
    r.health = is_health;
    r.out = is_health ? health_req : post_req;
    r.started = clock_type::now();
    flight.push_back(std::move(r));
  };

  auto next_tick = t0;
  while (!(all_admitted() && leader_ms >= 0)) {
    auto now = clock_type::now();
    if (now - t0 > limit) {
      fprintf(stderr, "raft_bench_probe: after %.0f ms:", ms_since(now));
      for (size_t i = 0; i < post.size(); ++i)
        fprintf(stderr, " port %u %s;", post[i], admitted[i] < 0 ? "never answered 202" : "admitting");
      fprintf(stderr, " %s\n", leader_ms < 0 ? "no new leader named by every survivor" : "new leader named");
      return 1;
    }
    if (now >= next_tick) {
      for (size_t i = 0; i < post.size(); ++i)
        if (admitted[i] < 0) start(i, false);
      if (leader_ms < 0)
        for (size_t i = 0; i < health.size(); ++i) start(i, true);
      next_tick += interval;
      if (next_tick < now) next_tick = now + interval;
    }
    std::vector<pollfd> pfds;
    for (auto& r : flight) pfds.push_back({r.fd, short(POLLIN | (r.out.empty() ? 0 : POLLOUT)), 0});
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - clock_type::now()).count();
    poll(pfds.data(), pfds.size(), int(wait < 0 ? 0 : wait + 1));
    now = clock_type::now();
    for (size_t i = 0; i < flight.size(); ++i) {
      request& r = flight[i];
      bool closed = false, failed = false;
      if (pfds[i].revents & POLLOUT) {
        ssize_t n = send(r.fd, r.out.data(), r.out.size(), MSG_NOSIGNAL);
        if (n > 0) r.out.erase(0, size_t(n));
        else if (n < 0 && errno != EAGAIN) failed = true;
      }
      if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[4096];
        ssize_t n = recv(r.fd, buf, sizeof buf, 0);
        if (n > 0) r.in.append(buf, size_t(n));
        else if (n == 0) closed = true;
        else if (errno != EAGAIN) failed = true;
      }
      std::string answer;
      int status = failed ? 0 : complete_status(r.in, closed, answer);
      if (status) {
        if (!r.health && status == 202 && admitted[r.target] < 0) admitted[r.target] = ms_since(now);
        if (r.health && status == 200 && leader_ms < 0) {
          named[r.target] = leader_of(answer);
          bool agree = true;
          for (long long n : named) agree &= n == named[0];
          if (agree && named[0] > 0 && named[0] != old_leader) {
            leader_ms = ms_since(now);
            new_leader = named[0];
          }
        }
      }
      if (status || failed || closed || now - r.started > request_timeout) {
        close(r.fd);
        r.fd = -1;
      }
    }
    std::erase_if(flight, [](const request& r) { return r.fd < 0; });
  }
  for (auto& r : flight) close(r.fd);
  double first = admitted[0], last = admitted[0];
  for (double a : admitted) first = std::min(first, a), last = std::max(last, a);
  printf("%.1f %.1f %.1f %lld %ld\n", first, last, leader_ms, new_leader, sent);
  return 0;
}
