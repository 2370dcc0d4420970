#pragma once
// A free loopback port: bind 0, read it, release it (for the rare test that must
// know a port before a server logs it, or that starts a server on it).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace xerv::testing {

inline uint16_t free_port() {
  int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bool ok = ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(probe);
  return ok ? ntohs(a.sin_port) : 0;
}

}  // namespace xerv::testing
