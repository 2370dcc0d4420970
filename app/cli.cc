#include "app/cli.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/json.h"
#include "flows/executor.h"
#include "flows/flow.h"
#include "io/file.h"
#include "io/ops.h"
#include "io/runtime.h"
#include "io/strings.h"
#include "io/when_all.h"

namespace xerv::app {
namespace {

// The server the CLI talks to: --url http://host:port, else XERV_API_HOST/PORT.
struct target {
  std::string host = "127.0.0.1";
  std::string port = "8080";
};

target server_target(const std::vector<std::string>& args) {
  target t;
  if (const char* h = getenv("XERV_API_HOST"); h && *h && std::string(h) != "0.0.0.0") t.host = h;
  if (const char* p = getenv("XERV_API_PORT"); p && *p) t.port = p;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "--url") continue;
    std::string u = args[i + 1];
    if (u.rfind("http://", 0) == 0) u = u.substr(7);
    size_t colon = u.rfind(':');
    t.host = u.substr(0, colon);
    if (colon != std::string::npos) t.port = u.substr(colon + 1);
    while (!t.port.empty() && t.port.back() == '/') t.port.pop_back();
  }
  return t;
}

// A plain blocking HTTP/1.1 exchange: the CLI is a short-lived client, not a shard.
bool http_call(const target& t, const std::string& method, const std::string& path, const std::string& body,
               int& status, std::string& response_body) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &res) != 0 || !res) return false;
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  if (!ok) {
    if (fd >= 0) close(fd);
    return false;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + t.host + "\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t sent = 0; sent < req.size();) {
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return false;
    }
    sent += size_t(n);
  }
  std::string raw;
  char buf[65536];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) raw.append(buf, size_t(n));
  close(fd);
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return false;
  status = std::atoi(raw.c_str() + 9);
  response_body = raw.substr(head_end + 4);
  return true;
}

bool has_flag(const std::vector<std::string>& args, const char* flag) {
  return std::find(args.begin(), args.end(), flag) != args.end();
}

std::string flag_value(const std::vector<std::string>& args, const char* flag, std::string fallback = {}) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) return args[i + 1];
  return fallback;
}

// Prints `details.errors` of an invalid_flow reply as file:line:col lines.
void print_flow_errors(const std::string& body, const std::string& file) {
  auto parsed = core::parse_json(body);
  if (auto* v = std::get_if<core::value>(&parsed)) {
    auto details = v->ref().find("details");
    auto errors = details ? details->find("errors") : std::nullopt;
    if (errors && errors->type() == core::json_type::array) {
      for (uint32_t i = 0; i < errors->size(); ++i) {
        auto e = errors->at(i);
        fprintf(stderr, "%s:%lld:%lld: %s\n", file.c_str(), static_cast<long long>(e.find("line")->as_int()),
                static_cast<long long>(e.find("column")->as_int()), std::string(e.find("message")->as_string()).c_str());
      }
      return;
    }
  }
  fprintf(stderr, "%s\n", body.c_str());
}

}  // namespace

int cmd_validate(const std::vector<std::string>& args) {
  if (args.empty()) {
    fprintf(stderr, "usage: xerv validate FILE\n");
    return 2;
  }
  std::string yaml;
  if (!io::read_file_blocking(args[0], yaml)) {
    fprintf(stderr, "xerv: cannot read %s\n", args[0].c_str());
    return 2;
  }
  auto r = flows::compile_flow(yaml);
  if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&r)) {
    fprintf(stderr, "%s", flows::format_errors(*errs, args[0]).c_str());
    fprintf(stderr, "%zu problem(s)\n", errs->size());
    return 1;
  }
  const auto& f = *std::get<std::unique_ptr<flows::compiled_flow>>(r);
  printf("%s: valid (pipeline %s, version %s, %zu vertices, %zu edges)\n", args[0].c_str(), f.name.c_str(),
         f.version.c_str(), f.vertices.size(), f.edges.size());
  return 0;
}

int cmd_deploy(const std::vector<std::string>& args) {
  std::string file = flag_value(args, "-f");
  if (file.empty()) file = flag_value(args, "--file");
  if (file.empty()) {
    fprintf(stderr, "usage: xerv deploy -f FILE [--dry-run] [--url http://HOST:PORT]\n");
    return 2;
  }
  std::string yaml;
  if (!io::read_file_blocking(file, yaml)) {
    fprintf(stderr, "xerv: cannot read %s\n", file.c_str());
    return 2;
  }
  bool dry = has_flag(args, "--dry-run");
  target t = server_target(args);
  int status = 0;
  std::string body;
  if (!http_call(t, "POST", dry ? "/api/v1/pipelines/validate" : "/api/v1/pipelines", yaml, status, body)) {
    fprintf(stderr, "xerv: cannot reach the server at %s:%s (start it with `xerv serve`, or pass --url)\n",
            t.host.c_str(), t.port.c_str());
    return 1;
  }
  if (status == 400) {
    print_flow_errors(body, file);
    return 1;
  }
  if (status >= 300) {
    fprintf(stderr, "xerv: server answered %d: %s\n", status, body.c_str());
    return 1;
  }
  printf("%s\n", dry ? "valid (dry run: nothing deployed)" : status == 201 ? "deployed" : "updated");
  if (!dry) printf("%s\n", body.c_str());
  return 0;
}

int cmd_list(const std::vector<std::string>& args) {
  target t = server_target(args);
  int status = 0;
  std::string body;
  if (!http_call(t, "GET", "/api/v1/pipelines", "", status, body) || status != 200) {
    fprintf(stderr, "xerv: cannot list pipelines from %s:%s\n", t.host.c_str(), t.port.c_str());
    return 1;
  }
  auto parsed = core::parse_json(body);
  auto* v = std::get_if<core::value>(&parsed);
  auto list = v ? v->ref().find("pipelines") : std::nullopt;
  if (!list) {
    fprintf(stderr, "xerv: unexpected reply: %s\n", body.c_str());
    return 1;
  }
  printf("%-32s %-10s %-10s %10s %10s %10s\n", "PIPELINE", "VERSION", "STATE", "STARTED", "COMPLETED", "FAILED");
  for (uint32_t i = 0; i < list->size(); ++i) {
    auto p = list->at(i);
    auto c = *p.find("counters");
    printf("%-32s %-10s %-10s %10lld %10lld %10lld\n", std::string(p.find("name")->as_string()).c_str(),
           std::string(p.find("version")->as_string()).c_str(), std::string(p.find("state")->as_string()).c_str(),
           static_cast<long long>(c.find("traces_started")->as_int()),
           static_cast<long long>(c.find("traces_completed")->as_int()),
           static_cast<long long>(c.find("traces_failed")->as_int()));
  }
  return 0;
}

// ---- cluster ----

int cmd_cluster(const std::vector<std::string>& args) {
  auto usage = [] {
    fprintf(stderr,
            "usage: xerv cluster status | add NODE_ID HOST:PORT | remove NODE_ID | transfer NODE_ID [--url http://HOST:PORT]\n");
    return 2;
  };
  std::vector<std::string> words;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--url") {
      ++i;
      continue;
    }
    words.push_back(args[i]);
  }
  if (words.empty()) return usage();
  const std::string& what = words[0];
  auto is_id = [](const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s != "0"; };
  std::string method = "GET", path = "/api/v1/cluster", body;
  if (what == "status" && words.size() == 1) {
  } else if (what == "add" && words.size() == 3 && is_id(words[1])) {
    method = "POST";
    path = "/api/v1/cluster/members";
    body = "{\"id\":" + words[1] + ",\"addr\":";
    io::append_json_string(body, words[2]);
    body += "}";
  } else if (what == "remove" && words.size() == 2 && is_id(words[1])) {
    method = "DELETE";
    path = "/api/v1/cluster/members/" + words[1];
  } else if (what == "transfer" && words.size() == 2 && is_id(words[1])) {
    method = "POST";
    path = "/api/v1/cluster/leader";
    body = "{\"id\":" + words[1] + "}";
  } else {
    return usage();
  }
  target t = server_target(args);
  int status = 0;
  std::string reply;
  if (!http_call(t, method, path, body, status, reply)) {
    fprintf(stderr, "xerv: cannot reach the server at %s:%s (pass --url)\n", t.host.c_str(), t.port.c_str());
    return 1;
  }
  if (status == 404 && what == "status") {
    fprintf(stderr, "xerv: %s:%s runs no Raft group (XERV_DISPATCH_BACKEND=raft)\n", t.host.c_str(), t.port.c_str());
    return 1;
  }
  if (status >= 300) {
    fprintf(stderr, "xerv: server answered %d: %s\n", status, reply.c_str());
    return 1;
  }
  printf("%s\n", reply.c_str());
  return 0;
}

// ---- bench ----

namespace {

struct bench_config {
  std::string yaml;
  std::string input = "{}";
  double seconds = 5;
  unsigned concurrency = 64;  // traces in flight per shard
};

struct shard_result {
  uint64_t traces = 0, nodes = 0, failed = 0;
  std::vector<uint32_t> latency_us;
};

struct node_counter final : flows::trace_observer {
  const flows::compiled_flow* flow = nullptr;
  uint64_t nodes = 0;
  void node_started(uint32_t) override {}
  void node_finished(uint32_t v, flows::node_status s, uint16_t, core::value_ref, uint64_t) override {
    if (s == flows::node_status::completed && !flow->vertices[v].is_trigger) ++nodes;
  }
  void node_log(uint32_t, io::log_level, std::string_view) override {}
};

io::task<void> bench_worker(const flows::compiled_flow* flow, const core::value* input, uint32_t trigger,
                            uint64_t end_ns, shard_result* out, node_counter* counter) {
  std::string id = "bench";
  while (io::monotonic_ns() < end_ns) {
    uint64_t t0 = io::monotonic_ns();
    auto r = co_await flows::execute_trace(*flow, core::value(input->bytes()), id, trigger, counter);
    out->latency_us.push_back(uint32_t(std::min<uint64_t>((io::monotonic_ns() - t0) / 1000, UINT32_MAX)));
    ++out->traces;
    if (r.status != flows::trace_status::completed) ++out->failed;
    // Synchronous flows never suspend: give the shard's loop a turn now and then.
    if ((out->traces & 63) == 0) co_await io::yield{};
  }
}

io::task<shard_result> bench_shard(bench_config cfg) {
  auto compiled = flows::compile_flow(cfg.yaml);
  auto flow = std::move(std::get<std::unique_ptr<flows::compiled_flow>>(compiled));
  core::value input = std::get<core::value>(core::parse_json(cfg.input));
  uint32_t trigger = flow->triggers.front().vertex;
  for (const auto& t : flow->triggers)
    if (t.type == "memory") trigger = t.vertex;
  shard_result out;
  out.latency_us.reserve(1 << 20);
  node_counter counter;
  counter.flow = flow.get();
  uint64_t end = io::monotonic_ns() + uint64_t(cfg.seconds * 1e9);
  std::vector<io::task<void>> workers;
  for (unsigned i = 0; i < cfg.concurrency; ++i)
    workers.push_back(bench_worker(flow.get(), &input, trigger, end, &out, &counter));
  co_await io::when_all(std::move(workers));
  out.nodes = counter.nodes;
  co_return out;
}

io::task<int> bench_main(bench_config cfg) {
  uint64_t t0 = io::monotonic_ns();
  auto job = io::invoke_on_all([cfg] { return bench_shard(cfg); });
  auto parts = co_await std::move(job);
  double elapsed = double(io::monotonic_ns() - t0) / 1e9;
  shard_result all;
  for (auto& p : parts) {
    all.traces += p.traces;
    all.nodes += p.nodes;
    all.failed += p.failed;
    all.latency_us.insert(all.latency_us.end(), p.latency_us.begin(), p.latency_us.end());
  }
  std::sort(all.latency_us.begin(), all.latency_us.end());
  auto pct = [&](double q) -> double {
    if (all.latency_us.empty()) return 0;
    return all.latency_us[std::min(all.latency_us.size() - 1, size_t(q * double(all.latency_us.size())))];
  };
  unsigned shards = io::shard_count();
  printf("shards %u, %u traces in flight per shard, %.2f s\n", shards, cfg.concurrency, elapsed);
  printf("traces      %llu (%llu failed)\n", static_cast<unsigned long long>(all.traces),
         static_cast<unsigned long long>(all.failed));
  printf("traces/s    %.0f (%.0f per shard)\n", double(all.traces) / elapsed, double(all.traces) / elapsed / shards);
  printf("nodes/s     %.0f (%.0f per shard)\n", double(all.nodes) / elapsed, double(all.nodes) / elapsed / shards);
  printf("latency us  p50 %.0f  p99 %.0f  p999 %.0f\n", pct(0.5), pct(0.99), pct(0.999));
  co_return all.failed == 0 ? 0 : 1;
}

}  // namespace

int cmd_bench(const std::vector<std::string>& args) {
  if (args.empty() || args[0].rfind("--", 0) == 0) {
    fprintf(stderr, "usage: xerv bench FLOW [--seconds N] [--concurrency N] [--input JSON] [--shards N]\n");
    return 2;
  }
  bench_config cfg;
  if (!io::read_file_blocking(args[0], cfg.yaml)) {
    fprintf(stderr, "xerv: cannot read %s\n", args[0].c_str());
    return 2;
  }
  auto r = flows::compile_flow(cfg.yaml);
  if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&r)) {
    fprintf(stderr, "%s", flows::format_errors(*errs, args[0]).c_str());
    return 1;
  }
  cfg.seconds = std::atof(flag_value(args, "--seconds", "5").c_str());
  cfg.concurrency = unsigned(std::max(1, std::atoi(flag_value(args, "--concurrency", "64").c_str())));
  cfg.input = flag_value(args, "--input", "{}");
  if (std::holds_alternative<core::json_error>(core::parse_json(cfg.input))) {
    fprintf(stderr, "xerv: --input is not valid JSON\n");
    return 2;
  }
  if (cfg.seconds <= 0 || cfg.seconds > 3600) {
    fprintf(stderr, "xerv: --seconds must be between 0 and 3600\n");
    return 2;
  }
  io::runtime_options opts;
  opts.shards = unsigned(std::max(0, std::atoi(flag_value(args, "--shards", "0").c_str())));
  io::set_log_level(io::log_level::warn);
  io::runtime rt(opts);
  return rt.run(bench_main(cfg));
}

}  // namespace xerv::app
