// `xerv inspect`: a trace's durable history read straight from the WAL files, with
// no server running (SPEC §6). Plain blocking reads: this never runs on a shard.

#include <dirent.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "app/cli.h"
#include "core/json.h"
#include "core/wal.h"
#include "flows/executor.h"
#include "flows/journal.h"
#include "flows/nodes/structural.h"
#include "io/strings.h"

namespace xerv::app {
namespace {

struct history {
  std::optional<flows::started_record> start;
  std::vector<flows::node_record> nodes;
  std::optional<flows::ended_record> end;
  std::optional<flows::idempotency_record> key;  // the newest record of the key that started it
  std::optional<flows::suspended_record> suspended;  // its last suspension
  std::optional<flows::continuation> resumed;        // ...and the resume that followed it
  std::optional<flows::cron_record> cron;            // the cron fire that started it
};

void field(std::string& out, const char* key) {
  if (out.back() != '{') out += ',';
  out += '"';
  out += key;
  out += "\":";
}
void str_field(std::string& out, const char* key, std::string_view v) {
  field(out, key);
  io::append_json_string(out, v);
}
void num_field(std::string& out, const char* key, uint64_t v) {
  field(out, key);
  out += std::to_string(v);
}
void value_field(std::string& out, const char* key, const std::string& encoded) {
  field(out, key);
  if (encoded.empty()) out += "null";
  else core::write_json(out, core::value_ref(encoded.data()));
}
void logs_field(std::string& out, const std::vector<flows::log_line>& logs) {
  for (const auto& l : logs) {
    out += out.back() == '[' ? "{" : ",{";
    num_field(out, "timestamp_ms", l.unix_ms);
    str_field(out, "level", io::to_string(l.level));
    str_field(out, "node", l.node);
    str_field(out, "message", l.message);
    out += '}';
  }
}

std::string render(const history& h) {
  const auto& s = *h.start;
  std::string out = "{";
  str_field(out, "trace_id", s.id.to_string());
  str_field(out, "pipeline_id", s.pipeline);
  str_field(out, "version", s.version);
  str_field(out, "trigger", s.trigger);
  num_field(out, "created_at_ms", s.created_ms);
  const char* status = h.end                        ? flows::to_string(flows::trace_status(h.end->status))
                       : h.suspended && !h.resumed ? "suspended"
                                                   : "unfinished";
  str_field(out, "status", status);
  if (h.suspended) {
    field(out, "suspension");
    out += '{';
    str_field(out, "hook_id", h.suspended->hook_id);
    str_field(out, "node", h.suspended->node);
    num_field(out, "suspended_at_ms", h.suspended->suspended_ms);
    num_field(out, "expires_at_ms", h.suspended->expires_ms);
    value_field(out, "metadata", h.suspended->metadata);
    if (h.resumed) {
      str_field(out, "decision", flows::nodes::to_string(flows::nodes::wait_decision(h.resumed->decision)));
      value_field(out, "response_data", h.resumed->response_data);
    }
    out += '}';
  }
  value_field(out, "input", s.input);
  if (h.key) {
    str_field(out, "idempotency_key", h.key->key);
    num_field(out, "idempotency_expires_at_ms", h.key->expires_ms);
  }
  if (h.cron) num_field(out, "cron_scheduled_at_s", uint64_t(h.cron->scheduled_s));
  field(out, "nodes");
  out += '[';
  std::vector<flows::log_line> logs;
  for (const auto& n : h.nodes) {
    out += out.back() == '[' ? "{" : ",{";
    str_field(out, "node", n.node);
    str_field(out, "port", n.port);
    num_field(out, "finished_at_ms", n.finished_ms);
    num_field(out, "duration_us", n.duration_us);
    value_field(out, "output", n.output);
    out += '}';
    logs.insert(logs.end(), n.logs.begin(), n.logs.end());
  }
  out += ']';
  if (h.end) {
    num_field(out, "finished_at_ms", h.end->finished_ms);
    value_field(out, "output", h.end->output);
    if (!h.end->error_message.empty() || !h.end->error_node.empty()) {
      str_field(out, "error_node", h.end->error_node);
      if (!h.end->error_code.empty()) str_field(out, "error_code", h.end->error_code);
      str_field(out, "error_message", h.end->error_message);
    }
    logs.insert(logs.end(), h.end->logs.begin(), h.end->logs.end());
  }
  field(out, "logs");
  out += '[';
  logs_field(out, logs);
  out += "]}";
  return out;
}

std::vector<std::string> shard_dirs(const std::string& wal_dir) {
  std::vector<std::string> out;
  DIR* d = opendir(wal_dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d))
    if (std::string_view(e->d_name).starts_with("shard-")) out.push_back(wal_dir + "/" + e->d_name);
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Every trace history in `dirs` (all of them when `only` is null).
std::map<std::pair<uint64_t, uint64_t>, history> read_histories(const std::vector<std::string>& dirs,
                                                                 const core::trace_id* only) {
  std::map<std::pair<uint64_t, uint64_t>, history> out;
  for (const auto& dir : dirs) {
    uint64_t prev = 0;
    for (const auto& [seq, path] : core::list_segments(dir)) {
      std::ifstream in(path, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string bytes = ss.str();
      auto scan = core::scan_segment(bytes, seq, prev, [&](const core::wal_record& r) {
        auto id = flows::record_trace(r.payload);
        if (!id || (only && !(*id == *only))) return;
        history& h = out[{id->hi, id->lo}];
        switch (flows::journal_type(r.type)) {
          case flows::journal_type::started:
            if (auto st = flows::decode_started(r.payload); st && !st->continuation.empty()) {
              h.resumed = flows::decode_continuation(st->continuation);
              if (!h.start) h.start = std::move(st);
            } else {
              h.start = std::move(st);
            }
            break;
          case flows::journal_type::node:
            if (auto n = flows::decode_node(r.payload)) h.nodes.push_back(std::move(*n));
            break;
          case flows::journal_type::ended:
            if (auto fh = core::decode_final_header(r.payload); fh && fh->status == flows::suspended_status) {
              h.suspended = flows::decode_suspended(r.payload);
              h.resumed.reset();
              if (!h.start && h.suspended) h.start = h.suspended->start;  // its admission went with retention
              break;
            }
            h.end = flows::decode_ended(r.payload);
            break;
          case flows::journal_type::idempotency: h.key = flows::decode_idempotency(r.payload); break;
          case flows::journal_type::cron: h.cron = flows::decode_cron(r.payload); break;
        }
      });
      if (scan.corrupt)
        fprintf(stderr, "xerv inspect: %s: unreadable from offset %zu (%s)\n", path.c_str(), scan.valid_end,
                scan.reason.c_str());
      prev = scan.last_lsn;
    }
  }
  return out;
}

}  // namespace

int cmd_inspect(const std::vector<std::string>& args) {
  const char* env = getenv("XERV_DATA_DIR");
  std::string data_dir = env && *env ? env : "/tmp/xerv";
  std::string id_text;
  bool all = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--data-dir" && i + 1 < args.size()) data_dir = args[++i];
    else if (args[i].starts_with("--data-dir=")) data_dir = args[i].substr(11);
    else if (args[i] == "--all") all = true;
    else if (!args[i].starts_with("--") && id_text.empty()) id_text = args[i];
    else {
      fprintf(stderr, "xerv inspect: unexpected argument '%s'\nusage: xerv inspect TRACE_ID|--all [--data-dir DIR]\n",
              args[i].c_str());
      return 2;
    }
  }
  std::optional<core::trace_id> id;
  if (!all) {
    id = core::trace_id::parse(id_text);
    if (!id) {
      fprintf(stderr, "xerv inspect: '%s' is not a trace id\nusage: xerv inspect TRACE_ID|--all [--data-dir DIR]\n",
              id_text.c_str());
      return 2;
    }
  }
  auto dirs = shard_dirs(data_dir + "/wal");
  if (dirs.empty()) {
    fprintf(stderr, "xerv inspect: no write-ahead log under %s/wal\n", data_dir.c_str());
    return 1;
  }
  auto histories = read_histories(dirs, id ? &*id : nullptr);
  size_t shown = 0;
  for (const auto& [key, h] : histories) {
    if (!h.start) continue;  // its start was deleted by retention
    printf("%s\n", render(h).c_str());
    ++shown;
  }
  if (id && shown == 0) {
    fprintf(stderr, "xerv inspect: trace %s is not in the write-ahead log under %s\n", id_text.c_str(),
            data_dir.c_str());
    return 1;
  }
  return 0;
}

}  // namespace xerv::app
