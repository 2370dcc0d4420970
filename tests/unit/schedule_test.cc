// The cron triggers of a shard (flows/schedule.h) on a fake clock: fires on
// time, the missed policies, the overlap policies, an update, and recovery of
// the last fire from its journal record (undone when its admission is missing).

#include <gtest/gtest.h>

#include "core/wal.h"
#include "flows/flow.h"
#include "flows/journal.h"
#include "flows/schedule.h"

namespace {

using namespace xerv;
using flows::cron_fire;
using flows::cron_table;

constexpr uint64_t t0 = 1'800'000'000'000;  // ms, a whole second
constexpr int64_t s0 = int64_t(t0 / 1000);

std::shared_ptr<const flows::compiled_flow> flow(const std::string& params, const std::string& name = "tick") {
  auto r = flows::compile_flow("name: " + name + R"(
version: "1"
triggers:
  - {id: every, type: cron, params: {)" + params + R"(}}
nodes:
  note: {type: std::log, config: {message: "tick"}}
edges:
  - {from: every, to: note}
)");
  if (auto* errors = std::get_if<std::vector<flows::flow_error>>(&r)) {
    ADD_FAILURE() << errors->front().message;
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<flows::compiled_flow>>(r));
}

auto all = [](std::string_view, std::string_view) { return true; };

// The instants (relative to s0) of `fires`, missed ones marked with a '!'.
std::vector<std::string> instants(const std::vector<cron_fire>& fires) {
  std::vector<std::string> out;
  for (const auto& f : fires) out.push_back(std::to_string(f.scheduled_s - s0) + (f.missed ? "!" : ""));
  return out;
}
using list = std::vector<std::string>;

TEST(cron_table, fires_each_instant_once_on_time) {
  cron_table c;
  c.install(flow(R"(schedule: "* * * * * *")"), t0, all, nullptr);
  EXPECT_EQ(c.next_ms(), t0 + 1000);
  EXPECT_TRUE(c.due(t0 + 999).empty());
  auto f = c.due(t0 + 1000);
  ASSERT_EQ(instants(f), (list{"1"}));
  c.journal(f[0], core::trace_id{1, 1}, nullptr);  // (the engine journals each fire it admits)
  uint64_t gen = f[0].generation;
  EXPECT_EQ(f[0].pipeline, "tick");
  EXPECT_EQ(f[0].trigger, "every");
  EXPECT_TRUE(c.due(t0 + 1500).empty());
  auto f2 = c.due(t0 + 2004);
  EXPECT_EQ(instants(f2), (list{"2"}));
  c.journal(f2[0], core::trace_id{1, 2}, nullptr);
  auto v = c.find("tick", "every");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->fires, 2u);
  EXPECT_EQ(v->last_s, s0 + 2);
  EXPECT_EQ(v->next_s, s0 + 3);
  EXPECT_EQ(v->running, 2u);  // allow: overlap is fine
  c.ended("tick", "every", gen + 1);  // another deployment's trace: not this one's
  EXPECT_EQ(c.find("tick", "every")->running, 2u);
  c.ended("tick", "every", gen);
  EXPECT_EQ(c.find("tick", "every")->running, 1u);
  // A shard that does not own it does not run it.
  cron_table other;
  other.install(flow(R"(schedule: "* * * * * *")"), t0, [](std::string_view, std::string_view) { return false; }, nullptr);
  EXPECT_TRUE(other.empty());
}

// Deployed at t0, first looked at 10 s later: +1..+8 are missed (over a second
// late), +9 and +10 are on time.
TEST(cron_table, missed_policies) {
  struct row {
    const char* missed;
    list expect;
    uint64_t skipped;
  };
  for (const row& r : {row{"skip", {"9", "10"}, 8}, row{"run_once", {"8!", "9", "10"}, 7},
                       row{"run_all", {"1!", "2!", "3!", "4!", "5!", "6!", "7!", "8!", "9", "10"}, 0}}) {
    SCOPED_TRACE(r.missed);
    cron_table c;
    c.install(flow(std::string(R"(schedule: "* * * * * *", missed: )") + r.missed), t0, all, nullptr);
    EXPECT_EQ(instants(c.due(t0 + 10'000)), r.expect);
    EXPECT_EQ(c.find("tick", "every")->skipped, r.skipped);
    EXPECT_EQ(c.next_ms(), t0 + 11'000);
  }
  // run_all is bounded per look: the newest.
  cron_table bounded(flows::cron_options{1000, 3});
  bounded.install(flow(R"(schedule: "* * * * * *", missed: run_all)"), t0, all, nullptr);
  EXPECT_EQ(instants(bounded.due(t0 + 10'000)), (list{"6!", "7!", "8!", "9", "10"}));
  // Down for three days with an every-second schedule: run_once fires for the
  // newest missed instant, without a call per instant.
  cron_table once;
  once.install(flow(R"(schedule: "* * * * * *", missed: run_once)"), t0, all, nullptr);
  EXPECT_EQ(instants(once.due(t0 + 3 * 86'400'000)), (list{"259198!", "259199", "259200"}));
  EXPECT_GE(once.find("tick", "every")->skipped, 999u);
}

// A paused pipeline refuses its fires: they are skipped and handled (a
// restart does not catch them up); a recovered trace counts for overlap.
TEST(cron_table, refused_fires_and_recovered_traces) {
  cron_table c;
  c.install(flow(R"(schedule: "* * * * * *", overlap: skip)"), t0, all, nullptr);
  auto f = c.due(t0 + 1000);
  ASSERT_EQ(f.size(), 1u);
  c.refused(f[0], nullptr);
  auto v = *c.find("tick", "every");
  EXPECT_EQ(v.running, 0u);
  EXPECT_EQ(v.skipped, 1u);
  EXPECT_EQ(v.last_s, 0);  // nothing was fired
  auto f2 = c.due(t0 + 2000);
  EXPECT_EQ(instants(f2), (list{"2"}));  // not blocked by the refused one
  c.ended("tick", "every", f2[0].generation);
  uint64_t gen = c.started("tick", "every");  // a trace recovered after a restart
  EXPECT_EQ(gen, f[0].generation);
  EXPECT_EQ(c.started("tick", "nope"), 0u);
  EXPECT_TRUE(c.due(t0 + 3000).empty());  // skip: it runs
}

TEST(cron_table, overlap_policies) {
  {
    cron_table c;
    c.install(flow(R"(schedule: "* * * * * *", overlap: skip)"), t0, all, nullptr);
    auto f = c.due(t0 + 1000);
    EXPECT_EQ(instants(f), (list{"1"}));
    EXPECT_TRUE(c.due(t0 + 2000).empty());  // +1 still runs
    EXPECT_EQ(c.find("tick", "every")->skipped, 1u);
    c.ended("tick", "every", f[0].generation);
    EXPECT_EQ(instants(c.due(t0 + 3000)), (list{"3"}));
  }
  {
    cron_table c;
    c.install(flow(R"(schedule: "* * * * * *", overlap: queue)"), t0, all, nullptr);
    auto f = c.due(t0 + 1000);
    EXPECT_EQ(instants(f), (list{"1"}));
    EXPECT_TRUE(c.due(t0 + 2000).empty());  // +2 waits
    EXPECT_TRUE(c.due(t0 + 3000).empty());  // +3 replaces it: one waits at most
    EXPECT_EQ(c.find("tick", "every")->skipped, 1u);
    EXPECT_EQ(c.next_ms(), t0 + 4000);
    c.ended("tick", "every", f[0].generation);
    EXPECT_EQ(c.next_ms(), 0u);  // the queued one is due now
    EXPECT_EQ(instants(c.due(t0 + 3100)), (list{"3"}));
    EXPECT_TRUE(c.due(t0 + 3200).empty());
  }
}

TEST(cron_table, an_update_keeps_an_unchanged_schedule_and_remove_forgets) {
  cron_table c;
  c.install(flow(R"(schedule: "*/5 * * * * *")"), t0, all, nullptr);
  EXPECT_EQ(instants(c.due(t0 + 5000)), (list{"5"}));
  c.install(flow(R"(schedule: "*/5 * * * * *")"), t0 + 7000, all, nullptr);  // same schedule, later deploy
  EXPECT_EQ(c.next_ms(), t0 + 10'000);
  c.install(flow(R"(schedule: "*/3 * * * * *")"), t0 + 7000, all, nullptr);  // changed: from the later of deploy, last fire
  EXPECT_EQ(c.next_ms(), t0 + 9000);
  c.remove("tick", nullptr);
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.next_ms());
}

// Recovery: the newest record per trigger is the last fire, unless its
// admission never made it to the log; a schedule changed while down, or a
// delete, starts from the deploy.
TEST(cron_table, replay_restores_the_last_fire_and_undoes_a_torn_one) {
  std::string payload;
  core::trace_id id{7, 9};
  flows::encode(payload, flows::cron_record{id, s0 + 5, s0 + 4, "tick", "every", false, std::string("* * * * * *\0UTC", 15)});
  core::wal_record rec{42, uint32_t(flows::journal_type::cron), 3, payload, 0};
  for (bool admitted : {true, false}) {
    SCOPED_TRACE(admitted);
    cron_table c;
    c.install(flow(R"(schedule: "* * * * * *")"), t0, all, nullptr);  // installed before the log is replayed
    EXPECT_TRUE(c.replay(rec));
    c.end_replay([&](const core::trace_id& t) { return admitted && t == id; }, nullptr);
    EXPECT_EQ(c.next_ms(), t0 + (admitted ? 6000 : 5000));
    EXPECT_EQ(c.find("tick", "every")->last_s, s0 + (admitted ? 5 : 4));
  }
  // Written under another schedule: from the deploy (t0 + 20 s here).
  {
    std::string other;
    flows::encode(other, flows::cron_record{id, s0 + 5, s0 + 4, "tick", "every", false, std::string("0 * * * *\0UTC", 13)});
    core::wal_record changed{43, uint32_t(flows::journal_type::cron), 3, other, 0};
    cron_table c;
    c.install(flow(R"(schedule: "* * * * * *")"), t0 + 20'000, all, nullptr);
    EXPECT_TRUE(c.replay(changed));
    c.end_replay([](const core::trace_id&) { return true; }, nullptr);
    EXPECT_EQ(c.next_ms(), t0 + 21'000);
  }
  // A delete's tombstone: as if never fired.
  {
    std::string tomb;
    flows::encode(tomb, flows::cron_record{{}, 0, s0 + 5, "tick", "every", false, ""});
    core::wal_record deleted{44, uint32_t(flows::journal_type::cron), 3, tomb, 0};
    cron_table c;
    c.install(flow(R"(schedule: "* * * * * *")"), t0 + 20'000, all, nullptr);
    EXPECT_TRUE(c.replay(rec));
    EXPECT_TRUE(c.replay(deleted));
    c.end_replay([](const core::trace_id&) { return true; }, nullptr);
    EXPECT_EQ(c.next_ms(), t0 + 21'000);
  }
  // A record of a pipeline that is not installed is forgotten.
  cron_table gone;
  EXPECT_TRUE(gone.replay(rec));
  gone.end_replay([](const core::trace_id&) { return true; }, nullptr);
  EXPECT_TRUE(gone.empty());
  flows::cron_record back = *flows::decode_cron(payload);
  EXPECT_EQ(back.scheduled_s, s0 + 5);
  EXPECT_EQ(back.previous_s, s0 + 4);
  EXPECT_EQ(back.trigger, "every");
  EXPECT_FALSE(flows::decode_cron(payload.substr(0, payload.size() - 1)));
}

TEST(cron_table, bad_cron_params_are_invalid_flows) {
  for (auto [params, says] : {std::pair<const char*, const char*>{"", "params.schedule is required"},
                              {R"(schedule: "61 * * * *")", "minute field"},
                              {R"(schedule: "* * * * *", timezone: Mars/Base)", "unknown time zone"},
                              {R"(schedule: "0 0 30 2 *")", "never fires"},
                              {R"(schedule: "* * * * *", missed: twice)", "missed must be one of skip, run_once, run_all"},
                              {R"(schedule: "* * * * *", overlap: no)", "overlap must be one of allow, skip, queue"},
                              {R"(schedule: "* * * * *", every: 1)", "unknown cron param 'every'"}}) {
    auto r = flows::compile_flow(std::string(R"(name: bad
version: "1"
triggers:
  - {id: every, type: cron, params: {)") + params + R"(}}
nodes:
  note: {type: std::log, config: {message: "tick"}}
edges:
  - {from: every, to: note}
)");
    auto* errors = std::get_if<std::vector<flows::flow_error>>(&r);
    ASSERT_TRUE(errors) << params;
    EXPECT_NE(errors->front().message.find(says), std::string::npos) << params << ": " << errors->front().message;
  }
}

}  // namespace
