// The filesystem trigger's debouncer on a fake clock: what a burst of inotify
// changes settles into, when, and under which patterns and events.

#include <gtest/gtest.h>

#include "flows/watch.h"

using namespace xerv::flows;

namespace {

std::string show(const std::vector<fs_fire>& fires) {
  std::string out;
  for (const auto& f : fires) {
    if (!out.empty()) out += ' ';
    out += std::string(to_string(f.event)) + ":" + f.path;
    if (!f.from.empty()) out += "<" + f.from;
  }
  return out;
}

struct debounce_test : ::testing::Test {
  fs_trigger params;
  std::unique_ptr<fs_debounce> d;
  void SetUp() override { make(); }
  void make(size_t pending_max = 100) { d = std::make_unique<fs_debounce>(params, pending_max); }
  void add(const std::string& path, fs_change c, uint64_t at, uint32_t cookie = 0) {
    ASSERT_TRUE(d->add(path, c, cookie, at));
  }
};

}  // namespace

TEST_F(debounce_test, a_file_written_in_steps_fires_once_after_its_quiet_period) {
  add("/in/a", fs_change::create, 1000);
  add("/in/a", fs_change::modify, 1030);
  add("/in/a", fs_change::modify, 1060);
  add("/in/a", fs_change::close_write, 1090);
  EXPECT_EQ(show(d->due(1150)), "");  // 100 ms after the last change, not the first
  EXPECT_EQ(d->next_ms(), 1190u);
  EXPECT_EQ(show(d->due(1190)), "created:/in/a");
  EXPECT_EQ(show(d->due(5000)), "");
  EXPECT_FALSE(d->next_ms());
}

TEST_F(debounce_test, an_open_writer_is_waited_for_until_close_write_or_a_long_quiet) {
  add("/in/slow", fs_change::create, 0);
  add("/in/slow", fs_change::modify, 10);
  EXPECT_EQ(show(d->due(500)), "");  // quiet for 490 ms, but still open for writing
  add("/in/slow", fs_change::close_write, 700);
  EXPECT_EQ(show(d->due(800)), "created:/in/slow");
  // A hard link: created, never written or closed. It fires after max(10 × 100 ms, 1 s).
  add("/in/link", fs_change::create, 2000);
  EXPECT_EQ(show(d->due(2999)), "");
  EXPECT_EQ(show(d->due(3000)), "created:/in/link");
}

TEST_F(debounce_test, changes_within_one_window_coalesce) {
  add("/in/gone", fs_change::create, 0);
  add("/in/gone", fs_change::close_write, 5);
  add("/in/gone", fs_change::remove, 10);  // came and went: nothing
  add("/in/old", fs_change::modify, 0);
  add("/in/old", fs_change::remove, 10);   // modified, then deleted: deleted
  add("/in/swap", fs_change::remove, 0);
  add("/in/swap", fs_change::create, 5);
  add("/in/swap", fs_change::close_write, 10);  // deleted, then created: replaced
  add("/in/touched", fs_change::close_write, 0);  // touch of an existing file
  EXPECT_EQ(show(d->due(1000)), "modified:/in/touched deleted:/in/old modified:/in/swap");
}

TEST_F(debounce_test, renames_pair_by_cookie) {
  add("/in/a", fs_change::moved_from, 0, 7);
  add("/in/b", fs_change::moved_to, 0, 7);
  add("/in/c", fs_change::moved_from, 0, 8);  // moved out of the watched paths
  add("/in/d", fs_change::moved_to, 0, 9);    // moved in from elsewhere
  EXPECT_EQ(show(d->due(100)), "deleted:/in/c moved:/in/b</in/a created:/in/d");
  EXPECT_EQ(d->size(), 0u);
}

TEST_F(debounce_test, a_file_written_then_renamed_fires_once_as_created_at_its_new_name) {
  add("/in/.part", fs_change::create, 0);
  add("/in/.part", fs_change::close_write, 20);
  add("/in/.part", fs_change::moved_from, 30, 3);
  add("/in/final", fs_change::moved_to, 30, 3);
  EXPECT_EQ(show(d->due(200)), "created:/in/final");
  // A temporary file renamed away before it settled is nothing.
  add("/in/tmp", fs_change::create, 300);
  add("/in/tmp", fs_change::close_write, 310);
  add("/in/tmp", fs_change::moved_from, 320, 4);
  EXPECT_EQ(show(d->due(500)), "");
}

TEST_F(debounce_test, patterns_decide_each_name_of_a_rename) {
  params.patterns = {"*.csv"};
  make();
  add("/in/x.tmp", fs_change::moved_from, 0, 1);
  add("/in/x.csv", fs_change::moved_to, 0, 1);   // into the pattern: created
  add("/in/y.csv", fs_change::moved_from, 0, 2);
  add("/in/y.bak", fs_change::moved_to, 0, 2);   // out of it: deleted
  add("/in/z.csv", fs_change::moved_from, 0, 3);
  add("/in/w.csv", fs_change::moved_to, 0, 3);   // both match: moved
  add("/in/u.tmp", fs_change::moved_from, 0, 4);
  add("/in/v.tmp", fs_change::moved_to, 0, 4);   // neither: nothing
  EXPECT_EQ(show(d->due(100)), "moved:/in/w.csv</in/z.csv created:/in/x.csv deleted:/in/y.csv");
}

TEST_F(debounce_test, patterns_are_globs_on_the_file_name) {
  params.patterns = {"*.csv", "report-??.json"};
  EXPECT_TRUE(params.matches("a.csv"));
  EXPECT_TRUE(params.matches("report-01.json"));
  EXPECT_FALSE(params.matches("report-001.json"));
  EXPECT_FALSE(params.matches(".hidden.csv"));  // a leading dot is matched only by a leading dot
  EXPECT_FALSE(params.matches("a.csv.tmp"));
  params.patterns.clear();
  EXPECT_TRUE(params.matches("anything"));
}

TEST_F(debounce_test, only_the_subscribed_events_fire) {
  params.events = uint8_t(fs_event::deleted) | uint8_t(fs_event::moved);
  make();
  add("/in/a", fs_change::create, 0);
  add("/in/a", fs_change::close_write, 0);
  add("/in/b", fs_change::remove, 0);
  add("/in/c", fs_change::modify, 0);
  add("/in/c", fs_change::close_write, 0);
  EXPECT_EQ(show(d->due(100)), "deleted:/in/b");
}

TEST_F(debounce_test, a_zero_debounce_fires_at_the_next_look) {
  params.debounce_ms = 0;
  make();
  add("/in/a", fs_change::appeared, 50);
  EXPECT_EQ(d->next_ms(), 50u);
  EXPECT_EQ(show(d->due(50)), "created:/in/a");
}

TEST_F(debounce_test, the_pending_table_is_bounded) {
  make(2);
  add("/in/a", fs_change::appeared, 0);
  add("/in/b", fs_change::appeared, 0);
  EXPECT_FALSE(d->add("/in/c", fs_change::appeared, 0, 0));
  EXPECT_FALSE(d->add("/in/d", fs_change::moved_from, 0, 5));
  EXPECT_TRUE(d->add("/in/a", fs_change::modify, 0, 1));  // a path already waiting takes more changes
  EXPECT_EQ(d->size(), 2u);
  EXPECT_EQ(show(d->due(2000)), "created:/in/b created:/in/a");
}

TEST(fs_events, names_round_trip) {
  for (const char* n : {"created", "modified", "deleted", "moved"}) {
    auto e = parse_fs_event(n);
    ASSERT_TRUE(e) << n;
    EXPECT_STREQ(to_string(*e), n);
  }
  EXPECT_FALSE(parse_fs_event("renamed"));
}

TEST_F(debounce_test, renamed_then_deleted_or_renamed_back) {
  add("/in/a", fs_change::moved_from, 0, 1);
  add("/in/b", fs_change::moved_to, 0, 1);
  add("/in/b", fs_change::remove, 10);  // the reader knew a: a is gone
  add("/in/c", fs_change::moved_from, 0, 2);
  add("/in/d", fs_change::moved_to, 0, 2);
  add("/in/d", fs_change::moved_from, 5, 3);
  add("/in/c", fs_change::moved_to, 5, 3);  // and back: nothing happened
  EXPECT_EQ(show(d->due(1000)), "deleted:/in/a");
}

TEST_F(debounce_test, a_new_file_renamed_over_a_deleted_one_replaces_it) {
  add("/in/b", fs_change::remove, 0);
  add("/in/tmp", fs_change::create, 0);
  add("/in/tmp", fs_change::close_write, 5);
  add("/in/tmp", fs_change::moved_from, 10, 4);
  add("/in/b", fs_change::moved_to, 10, 4);
  EXPECT_EQ(show(d->due(1000)), "modified:/in/b");
}

TEST_F(debounce_test, modified_then_renamed_away_and_back_is_modified) {
  add("/in/a", fs_change::modify, 0);
  add("/in/a", fs_change::close_write, 0);
  add("/in/a", fs_change::moved_from, 5, 6);
  add("/in/b", fs_change::moved_to, 5, 6);
  add("/in/b", fs_change::moved_from, 6, 7);
  add("/in/a", fs_change::moved_to, 6, 7);
  EXPECT_EQ(show(d->due(1000)), "modified:/in/a");
}

TEST_F(debounce_test, a_renamed_directory_takes_what_waits_under_it) {
  add("/in/tmp/x", fs_change::create, 0);
  add("/in/tmp/x", fs_change::close_write, 5);
  add("/in/tmpfile", fs_change::appeared, 5);  // a sibling with the same prefix stays
  d->rename_dir("/in/tmp", "/in/final");
  EXPECT_EQ(show(d->due(1000)), "created:/in/final/x created:/in/tmpfile");
}
