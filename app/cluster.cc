#include "app/cluster.h"

#include "core/json.h"
#include "http/response.h"
#include "io/runtime.h"
#include "io/strings.h"

namespace xerv::app {

namespace rb = backends::raft;

std::string raft_status_json(const rb::replica_status& s) {
  auto ids = [](const std::vector<uint64_t>& v) {
    std::string out = "[";
    for (uint64_t n : v) out += (out.size() > 1 ? "," : "") + std::to_string(n);
    return out + "]";
  };
  std::string out = "{\"node_id\":" + std::to_string(s.id) + ",\"role\":";
  io::append_json_string(out, raft::to_string(s.role));
  out += ",\"leader_id\":" + std::to_string(s.leader) + ",\"term\":" + std::to_string(s.term) +
         ",\"commit_index\":" + std::to_string(s.commit) + ",\"applied_index\":" + std::to_string(s.applied) +
         ",\"members\":" + ids(s.voters) + ",\"learners\":" + ids(s.learners) +
         ",\"caught_up\":" + (s.caught_up ? "true" : "false") + ",\"removed\":" + (s.removed ? "true" : "false") + "}";
  return out;
}

namespace {

http::response answer(const rb::change_outcome& o) {
  if (o.status != 200) {
    const char* code = o.status == 400 ? "invalid_request" : o.status == 404 ? "not_found"
                       : o.status == 409                   ? "conflict"
                                                           : "unavailable";
    return http::json_error(o.status, code, o.message);
  }
  http::response r;
  r.body = "{\"status\":\"accepted\",\"message\":";
  io::append_json_string(r.body, o.message);
  r.body += "}";
  return r;
}

// The body's "id" (a positive integer), and "addr" when asked for.
std::optional<rb::change_outcome> read_body(std::string_view body, uint64_t& id, std::string* host, uint16_t* port) {
  auto parsed = core::parse_json(body);
  auto* v = std::get_if<core::value>(&parsed);
  auto idv = v ? v->ref().find("id") : std::nullopt;
  if (!idv || idv->type() != core::json_type::integer || idv->as_int() < 1)
    return rb::change_outcome{400, "expected a JSON object with \"id\": a node id (1 or more)"};
  id = uint64_t(idv->as_int());
  if (!host) return std::nullopt;
  auto addr = v->ref().find("addr");
  std::string a = addr && addr->type() == core::json_type::string ? std::string(addr->as_string()) : "";
  size_t colon = a.rfind(':');
  unsigned long p = colon == std::string::npos ? 0 : strtoul(a.c_str() + colon + 1, nullptr, 10);
  if (colon == std::string::npos || colon == 0 || p == 0 || p > 65535)
    return rb::change_outcome{400, "expected \"addr\": the new node's HOST:PORT for its peers"};
  *host = a.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  *port = uint16_t(p);
  return std::nullopt;
}

io::task<http::response> change(rb::replica* replica, rb::member_change what, uint64_t id, std::string host,
                                uint16_t port) {
  auto job = io::submit_to(0, [replica, what, id, host = std::move(host), port]() mutable {
    return replica->change_member(what, id, std::move(host), port);
  });
  rb::change_outcome o = co_await std::move(job);
  co_return answer(o);
}

io::task<http::response> status(rb::replica* replica) {
  auto job = io::submit_to(0, [replica] { return replica->status(); });
  rb::replica_status s = co_await std::move(job);
  http::response r;
  r.body = "{\"raft\":" + raft_status_json(s) + "}";
  co_return r;
}

io::task<http::response> refused(rb::change_outcome o) { co_return answer(o); }

}  // namespace

void add_cluster_routes(http::router& r, rb::replica* replica) {
  r.add("GET", "/api/v1/cluster", [replica](http::request&) { return status(replica); });
  r.add("POST", "/api/v1/cluster/members", [replica](http::request& q) {
    uint64_t id = 0;
    std::string host;
    uint16_t port = 0;
    if (auto bad = read_body(q.body(), id, &host, &port)) return refused(*bad);
    return change(replica, rb::member_change::add, id, std::move(host), port);
  });
  r.add("DELETE", "/api/v1/cluster/members/{id}", [replica](http::request& q) {
    std::string text(q.param("id"));
    char* end = nullptr;
    unsigned long long id = strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end || id == 0) return refused(rb::change_outcome{400, "expected a node id (1 or more)"});
    return change(replica, rb::member_change::remove, id, {}, 0);
  });
  r.add("POST", "/api/v1/cluster/leader", [replica](http::request& q) {
    uint64_t id = 0;
    if (auto bad = read_body(q.body(), id, nullptr, nullptr)) return refused(*bad);
    return change(replica, rb::member_change::transfer, id, {}, 0);
  });
}

}  // namespace xerv::app
