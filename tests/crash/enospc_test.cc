// Disk full (SPEC §11): on a small loop-mounted ext4 the WAL runs out of space;
// admissions answer 503 `unavailable` while reads keep working, admissions come
// back once space returns, and nothing acknowledged is lost (checked after a
// kill -9 and a restart). Needs root for mount; skipped with a message otherwise.

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <filesystem>
#include <set>
#include <thread>

#include "tests/integration/xerv_process.h"

namespace {

using xerv::testing::client;
using xerv::testing::request;
using xerv::testing::xerv_process;
namespace fs = std::filesystem;

const char* k_flow = R"(name: disk_flow
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/disk, method: POST, respond: async}}
nodes:
  note: {type: std::log, config: {message: "stored"}}
edges:
  - {from: hook, to: note}
)";


int sh(const std::string& cmd) { return system((cmd + " >/dev/null 2>&1").c_str()); }

struct loop_fs {
  fs::path root, image, mnt;
  bool mounted = false;
  std::string why_not;
  loop_fs() {
    root = fs::temp_directory_path() / ("xerv-enospc-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "mnt");
    image = root / "disk.img";
    mnt = root / "mnt";
    if (geteuid() != 0) {
      why_not = "not root: cannot mount a size-limited file system";
      return;
    }
    if (sh("truncate -s 48M " + image.string()) != 0 || sh("mkfs.ext4 -q -F " + image.string()) != 0) {
      why_not = "mkfs.ext4 failed (is e2fsprogs installed?)";
      return;
    }
    if (sh("mount -o loop " + image.string() + " " + mnt.string()) != 0) {
      why_not = "mount -o loop failed (no loop devices in this container?)";
      return;
    }
    mounted = true;
  }
  ~loop_fs() {
    // xerv's rings hold its data directory lock until the kernel has torn them
    // down, a moment after the process is reaped: the mount is busy until then.
    for (int i = 0; mounted && i < 100; ++i) {
      if (sh("umount " + mnt.string()) == 0) mounted = false;
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  // Fills all but `leave` bytes of free space.
  void fill(uint64_t leave) {
    auto sp = fs::space(mnt);
    uint64_t size = sp.available > leave ? sp.available - leave : 0;
    sh("fallocate -l " + std::to_string(size) + " " + (mnt / "filler").string());
  }
};

TEST(enospc, disk_full_refuses_admissions_then_recovers) {
  loop_fs disk;
  if (!disk.mounted) GTEST_SKIP() << disk.why_not;
  fs::create_directories(disk.root / "flows");
  std::ofstream(disk.root / "flows" / "disk.yaml") << k_flow;
  std::vector<std::string> env = {"XERV_SHARDS=1",
                                  "XERV_DATA_DIR=" + (disk.mnt / "data").string(),
                                  "XERV_PIPELINES_DIR=" + (disk.root / "flows").string(),
                                  "XERV_LOG_FORMAT=compact",
                                  "XERV_WAL_SEGMENT_BYTES=1MiB",
                                  "XERV_ARENA_BYTES=1MiB"};
  std::set<std::string> acked;
  {
    xerv_process p(env);
    uint16_t port = p.wait_ready();
    ASSERT_NE(port, 0) << p.log();
    for (int i = 0; i < 5; ++i) {  // the first segment exists and is preallocated
      auto r = request(port, "POST", "/hooks/disk", "{}");
      ASSERT_EQ(r.status, 202) << r.body;
      acked.insert(r.headers["x-xerv-trace-id"]);
    }
    disk.fill(256 << 10);  // less than one segment: the next rotation fails

    // Post until the WAL runs out of room and admissions are refused.
    std::string body = R"({"pad":")" + std::string(2000, 'x') + R"("})";
    int refused = 0;
    for (int i = 0; i < 5000 && refused == 0; ++i) {
      auto r = request(port, "POST", "/hooks/disk", body);
      ASSERT_TRUE(r.complete) << "the server must stay up on a full disk\n" << p.log();
      if (r.status == 202) acked.insert(r.headers["x-xerv-trace-id"]);
      else if (r.status == 503) ++refused;
      else FAIL() << r.status << " " << r.body;
      if (refused) {
        EXPECT_NE(r.body.find("\"error\":\"unavailable\""), std::string::npos) << r.body;
      }
    }
    ASSERT_GT(refused, 0) << "the disk never filled up";
    ASSERT_FALSE(acked.empty());
    // Still refusing, still serving reads.
    EXPECT_EQ(request(port, "POST", "/hooks/disk", "{}").status, 503);
    EXPECT_EQ(request(port, "GET", "/health", "").status, 200);
    EXPECT_EQ(request(port, "GET", "/api/v1/pipelines", "").status, 200);
    auto metrics = request(port, "GET", "/metrics", "");
    EXPECT_NE(metrics.body.find("xerv_wal_unavailable 1"), std::string::npos) << metrics.body.substr(0, 2000);

    // Space returns: admissions succeed again within a few retries.
    fs::remove(disk.mnt / "filler");
    int status = 0;
    for (int i = 0; i < 100 && status != 202; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto r = request(port, "POST", "/hooks/disk", "{}");
      status = r.status;
      if (status == 202) acked.insert(r.headers["x-xerv-trace-id"]);
    }
    EXPECT_EQ(status, 202) << p.log();
    EXPECT_NE(p.log().find("writes succeed again"), std::string::npos) << p.log();
    p.signal(SIGKILL);
    p.wait_exit(std::chrono::milliseconds(5000));
  }
  // Nothing acknowledged was lost.
  xerv_process again(env);
  uint16_t port = again.wait_ready();
  ASSERT_NE(port, 0) << again.log();
  for (const auto& id : acked) {
    auto body = request(port, "GET", "/api/v1/traces/" + id, "").body;
    EXPECT_EQ(body.find("\"status\":\"completed\""), body.find("\"status\":")) << id << ": " << body;
  }
  again.signal(SIGTERM);
  EXPECT_EQ(again.wait_exit(std::chrono::milliseconds(15000)), 0) << again.log();
}

}  // namespace
