// Filesystem triggers over the REST API (SPEC §3) on real directories: each
// kind of change fires once with the documented input, patterns and events
// filter, a file written in steps fires once (debounce), recursive watches take
// new subdirectories, a missing directory is an invalid flow, a deleted one puts
// the trigger in state error until it comes back, and a disabled trigger does
// not fire.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/api_server.h"

using xerv::testing::api;
using xerv::testing::json_field;
using xerv::testing::json_number;
namespace fs = std::filesystem;

namespace {

std::string fs_flow(const std::string& name, const std::string& params) {
  return "name: " + name + R"(
version: "1"
triggers:
  - {id: files, type: filesystem, params: {)" + params + R"(}}
nodes:
  show: {type: std::log, config: {message: "${files.event} ${files.path}"}}
edges:
  - {from: files, to: show}
)";
}

struct inbox {
  fs::path dir = fs::temp_directory_path() / ("xerv-fs-" + std::to_string(getpid()) + "-" + std::to_string(++serial));
  inbox() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~inbox() { fs::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
  static inline int serial = 0;
};

void write(const std::string& path, const std::string& data, std::ios::openmode mode = std::ios::trunc) {
  std::ofstream(path, std::ios::binary | mode) << data;
}

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The traces of `pipeline` as "event:path[<from]", sorted; and each input checked.
std::vector<std::string> fired(api& s, const std::string& pipeline) {
  auto list = s.get("/api/v1/traces?pipeline_id=" + pipeline + "&limit=1000");
  std::vector<std::string> out;
  for (size_t at = 0; (at = list.body.find("\"trace_id\":\"", at)) != std::string::npos;) {
    at += 12;
    std::string id = list.body.substr(at, list.body.find('"', at) - at);
    std::string body = s.get("/api/v1/traces/" + id).body;
    size_t in = body.find("\"input\":{");
    EXPECT_NE(in, std::string::npos) << body;
    if (in == std::string::npos) continue;
    std::string input = body.substr(in);
    std::string event = json_field(input, "event");
    std::string path = json_field(input, "path");
    std::string from = json_field(input, "from");
    EXPECT_EQ(json_field(input, "trigger"), pipeline + ".files") << input;
    if (event == "deleted") {
      EXPECT_NE(input.find("\"size\":null,\"mtime\":null"), std::string::npos) << input;
    } else {
      EXPECT_GE(json_number(input, "size"), 0) << input;
      EXPECT_EQ(json_field(input, "mtime").size(), 24u) << input;  // RFC 3339 with milliseconds
    }
    out.push_back(event + ":" + path + (from.empty() ? "" : "<" + from));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Waits (bounded) for `n` traces, then a little longer so that an extra one shows.
std::vector<std::string> wait_fired(api& s, const std::string& pipeline, size_t n) {
  for (int i = 0; i < 100; ++i) {
    auto r = s.get("/api/v1/traces?pipeline_id=" + pipeline + "&limit=1000");
    if (json_number(r.body, "total") >= (long long)n) break;
    pause_ms(50);
  }
  pause_ms(400);
  return fired(s, pipeline);
}

std::string trigger_json(api& s, const std::string& id) {
  auto r = s.get("/api/v1/triggers");
  size_t at = r.body.find("{\"id\":\"" + id + "\"");
  return at == std::string::npos ? std::string() : r.body.substr(at, r.body.find('}', at) + 1 - at);
}

}  // namespace

TEST(filesystem_trigger, each_change_fires_once_with_patterns_and_debounce) {
  inbox in;
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", fs_flow("drop", "paths: [" + in.dir.string() + R"(], patterns: ["*.csv"])")).status,
            201);
  // Written in three steps over ~60 ms: one event, after the close.
  {
    std::ofstream f(in / "a.csv");
    for (int i = 0; i < 3; ++i) {
      f << "row" << i << "\n" << std::flush;
      pause_ms(30);
    }
  }
  write(in / "note.txt", "ignored");  // no pattern matches
  write(in / "flash.csv", "x");       // created and deleted within one window: nothing
  fs::remove(in / "flash.csv");
  write(in / "b.tmp", "b");
  ASSERT_EQ(wait_fired(s, "drop", 1), std::vector<std::string>{"created:" + (in / "a.csv")});
  write(in / "a.csv", "more\n", std::ios::app);
  pause_ms(400);
  fs::rename(in / "a.csv", in / "c.csv");
  fs::rename(in / "b.tmp", in / "b.csv");  // into the pattern: created
  pause_ms(400);
  fs::remove(in / "c.csv");
  std::vector<std::string> want = {"created:" + (in / "a.csv"), "created:" + (in / "b.csv"),
                                   "deleted:" + (in / "c.csv"), "modified:" + (in / "a.csv"),
                                   "moved:" + (in / "c.csv") + "<" + (in / "a.csv")};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(wait_fired(s, "drop", want.size()), want);
  std::string t = trigger_json(s, "drop.files");
  EXPECT_NE(t.find("\"state\":\"active\""), std::string::npos) << t;
  EXPECT_EQ(json_number(t, "fire_count"), (long long)want.size()) << t;
  EXPECT_EQ(json_number(t, "watched_dirs"), 1) << t;
  EXPECT_EQ(json_number(t, "overflow_count"), 0) << t;
}

TEST(filesystem_trigger, events_filter_and_the_size_is_the_settled_file) {
  inbox in;
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", fs_flow("only", "paths: " + in.dir.string() + ", events: [created, deleted]"))
                .status,
            201);
  write(in / "x", std::string(1000, 'x'));
  pause_ms(400);
  write(in / "x", "y", std::ios::app);  // modified: not subscribed
  pause_ms(400);
  fs::remove(in / "x");
  std::vector<std::string> want = {"created:" + (in / "x"), "deleted:" + (in / "x")};
  EXPECT_EQ(wait_fired(s, "only", 2), want);
  auto list = s.get("/api/v1/traces?pipeline_id=only&limit=1000");
  bool saw_size = false;
  for (size_t at = 0; (at = list.body.find("\"trace_id\":\"", at)) != std::string::npos;) {
    at += 12;
    std::string body = s.get("/api/v1/traces/" + list.body.substr(at, 36)).body;
    if (body.find("\"event\":\"created\"") != std::string::npos) {
      EXPECT_EQ(json_number(body.substr(body.find("\"input\":")), "size"), 1000) << body;
      saw_size = true;
    }
  }
  EXPECT_TRUE(saw_size) << list.body;
}

TEST(filesystem_trigger, recursive_watches_take_new_subdirectories) {
  inbox in;
  fs::create_directories(in.dir / "old" / "deep");
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", fs_flow("tree", "paths: " + in.dir.string() + ", recursive: true")).status, 201);
  write(in / "old/deep/a", "a");
  // A subdirectory made now, with a file written into it at once (before the
  // watch on it can exist: found when it is watched).
  fs::create_directories(in.dir / "new" / "deeper");
  write(in / "new/deeper/b", "b");
  std::vector<std::string> want = {"created:" + (in / "new/deeper/b"), "created:" + (in / "old/deep/a")};
  EXPECT_EQ(wait_fired(s, "tree", 2), want);
  pause_ms(200);
  write(in / "new/deeper/c", "c");  // watched by now
  fs::rename(in.dir / "old", in.dir / "moved");  // a directory renamed inside the tree: watched under its new name
  pause_ms(200);
  write(in / "moved/deep/d", "d");
  want.push_back("created:" + (in / "new/deeper/c"));
  want.push_back("created:" + (in / "moved/deep/d"));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(wait_fired(s, "tree", 4), want);
  EXPECT_EQ(json_number(trigger_json(s, "tree.files"), "watched_dirs"), 5);
  // A subdirectory gone before it could be watched is no error.
  for (int i = 0; i < 20; ++i) {
    fs::create_directory(in.dir / "flash");
    fs::remove(in.dir / "flash");
  }
  pause_ms(300);
  std::string t = trigger_json(s, "tree.files");
  EXPECT_NE(t.find("\"state\":\"active\""), std::string::npos) << t;
  EXPECT_EQ(json_number(t, "watched_dirs"), 5) << t;
  // Built in a staging directory, then renamed into place: its file fires
  // once, under the final name, and the directory is watched there.
  fs::create_directory(in.dir / "stage");
  write(in / "stage/x", "x");
  fs::rename(in.dir / "stage", in.dir / "final");
  want.push_back("created:" + (in / "final/x"));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(wait_fired(s, "tree", want.size()), want);
  write(in / "final/y", "y");
  want.push_back("created:" + (in / "final/y"));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(wait_fired(s, "tree", want.size()), want);
}

// From XERV_PIPELINES_DIR (or stored), a directory missing at start does not
// stop xerv: the trigger is in state error until the directory is there.
TEST(filesystem_trigger, a_directory_missing_at_start_is_an_error_not_a_failed_start) {
  inbox in;
  fs::create_directories(in.dir / "flows");
  std::string dir = in / "later";
  std::ofstream(in.dir / "flows" / "late.yaml") << fs_flow("late", "paths: [" + dir + "]");
  api s({"XERV_PIPELINES_DIR=" + (in.dir / "flows").string()});
  ASSERT_NE(s.port, 0);
  std::string t = trigger_json(s, "late.files");
  EXPECT_NE(t.find("\"state\":\"error\""), std::string::npos) << t;
  EXPECT_EQ(json_field(t, "error"), dir + ": No such file or directory") << t;
  fs::create_directories(dir);
  write(dir + "/first", "f");  // there before the watch: fires as created once watched
  for (int i = 0; i < 150; ++i) {
    t = trigger_json(s, "late.files");
    if (t.find("\"state\":\"active\"") != std::string::npos) break;
    pause_ms(20);
  }
  EXPECT_NE(t.find("\"state\":\"active\""), std::string::npos) << t;
  EXPECT_EQ(wait_fired(s, "late", 1), std::vector<std::string>{"created:" + dir + "/first"});
}

TEST(filesystem_trigger, a_missing_directory_is_an_invalid_flow_unless_create_is_set) {
  inbox in;
  api s;
  std::string missing = in / "not/there";
  auto r = s.post("/api/v1/pipelines", fs_flow("nope", "paths: [" + missing + "]"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_field(r.body, "error"), "invalid_flow") << r.body;
  EXPECT_NE(r.body.find(missing + "': No such file or directory"), std::string::npos) << r.body;
  write(in / "plain", "not a directory");
  r = s.post("/api/v1/pipelines", fs_flow("nope", "paths: [" + (in / "plain") + "]"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("plain' is not a directory"), std::string::npos) << r.body;
  ASSERT_EQ(s.post("/api/v1/pipelines", fs_flow("made", "paths: [" + missing + "], create: true")).status, 201);
  for (int i = 0; i < 100 && !fs::is_directory(missing); ++i) pause_ms(20);
  EXPECT_TRUE(fs::is_directory(missing));
  pause_ms(100);
  write(missing + "/f", "f");
  EXPECT_EQ(wait_fired(s, "made", 1), std::vector<std::string>{"created:" + missing + "/f"});
}

TEST(filesystem_trigger, a_deleted_directory_is_an_error_until_it_comes_back) {
  inbox in;
  fs::create_directories(in.dir / "watched");
  std::string dir = in / "watched";
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", fs_flow("gone", "paths: [" + dir + "]")).status, 201);
  fs::remove_all(dir);
  std::string t;
  for (int i = 0; i < 100; ++i) {
    t = trigger_json(s, "gone.files");
    if (t.find("\"state\":\"error\"") != std::string::npos) break;
    pause_ms(20);
  }
  EXPECT_NE(t.find("\"state\":\"error\""), std::string::npos) << t;
  EXPECT_EQ(json_field(t, "error"), dir + ": the directory was deleted") << t;
  EXPECT_TRUE(s.get("/api/v1/traces?pipeline_id=gone").body.find("\"total\":0") != std::string::npos);
  // Back: watched again within about a second; what is in it by then fires as created.
  fs::create_directories(dir);
  write(dir + "/early", "e");
  for (int i = 0; i < 150; ++i) {
    t = trigger_json(s, "gone.files");
    if (t.find("\"state\":\"active\"") != std::string::npos) break;
    pause_ms(20);
  }
  EXPECT_NE(t.find("\"state\":\"active\""), std::string::npos) << t;
  EXPECT_EQ(t.find("\"error\""), std::string::npos) << t;
  write(dir + "/late", "l");
  std::vector<std::string> want = {"created:" + dir + "/early", "created:" + dir + "/late"};
  EXPECT_EQ(wait_fired(s, "gone", 2), want);
}

TEST(filesystem_trigger, a_disabled_trigger_does_not_fire_and_fires_again_once_enabled) {
  inbox in;
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines", fs_flow("sw", "paths: " + in.dir.string() + ", debounce_ms: 20")).status, 201);
  ASSERT_EQ(s.post("/api/v1/triggers/sw.files/disable", "").status, 200);
  EXPECT_NE(trigger_json(s, "sw.files").find("\"state\":\"disabled\""), std::string::npos);
  write(in / "while_off", "x");
  pause_ms(400);
  ASSERT_EQ(s.post("/api/v1/triggers/sw.files/enable", "").status, 200);
  pause_ms(100);
  write(in / "while_on", "x");
  EXPECT_EQ(wait_fired(s, "sw", 1), std::vector<std::string>{"created:" + (in / "while_on")});
}

// The kernel's queue overflows while xerv is stopped (SIGSTOP): the overflow
// is counted, and the watch resyncs: a subdirectory made meanwhile (its event
// lost) is watched and its file fires.
TEST(filesystem_trigger, after_a_queue_overflow_the_watch_resyncs) {
  inbox in;
  api s;
  ASSERT_EQ(s.post("/api/v1/pipelines",
                   fs_flow("flood", "paths: " + in.dir.string() + R"(, recursive: true, patterns: ["*.csv"])"))
                .status,
            201);
  pause_ms(200);
  s.proc->signal(SIGSTOP);
  // Two events per file (create, close-write): past fs.inotify.max_queued_events (16384 by default).
  std::ifstream limit("/proc/sys/fs/inotify/max_queued_events");
  long max_queued = 16384;
  limit >> max_queued;
  for (long i = 0; i < max_queued / 2 + 1000; ++i) write(in / ("f" + std::to_string(i) + ".dat"), "");
  fs::create_directories(in.dir / "new");
  write(in / "new/late.csv", "late");
  s.proc->signal(SIGCONT);
  std::string t;
  for (int i = 0; i < 200; ++i) {
    t = trigger_json(s, "flood.files");
    if (json_number(t, "watched_dirs") == 2) break;
    pause_ms(20);
  }
  EXPECT_GE(json_number(t, "overflow_count"), 1) << t;
  EXPECT_EQ(json_number(t, "watched_dirs"), 2) << t;
  EXPECT_NE(t.find("\"state\":\"active\""), std::string::npos) << t;
  EXPECT_EQ(wait_fired(s, "flood", 1), std::vector<std::string>{"created:" + (in / "new/late.csv")});
}
