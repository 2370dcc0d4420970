// Cron schedules and time zones (flows/cron.h, flows/tz.h): the next fire of a
// table of expressions, DST transitions in Europe/Berlin and America/New_York
// (from the system tz database, as the server reads it), leap days, L/W/#,
// 6-field seconds, the POSIX rules past the last transition, and the errors.

#include <gtest/gtest.h>

#include "flows/cron.h"
#include "flows/tz.h"

namespace {

using xerv::flows::cron_schedule;
using xerv::flows::time_zone;

// "2026-03-29T01:00:00Z" → Unix seconds.
int64_t at(const char* iso) {
  int y, mo, d, h, mi, s;
  EXPECT_EQ(sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s), 6) << iso;
  return xerv::flows::days_from_civil(y, unsigned(mo), unsigned(d)) * 86400 + h * 3600 + mi * 60 + s;
}

std::string iso(int64_t t) {
  auto c = xerv::flows::civil_from_days(t >= 0 ? t / 86400 : (t - 86399) / 86400);
  int64_t sod = t - xerv::flows::days_from_civil(c.year, c.month, c.day) * 86400;
  char buf[40];
  snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<long long>(c.year), c.month, c.day,
           static_cast<long long>(sod / 3600), static_cast<long long>(sod / 60 % 60), static_cast<long long>(sod % 60));
  return buf;
}

time_zone zone(const char* name) {
  auto z = time_zone::load(name);
  if (auto* e = std::get_if<std::string>(&z)) ADD_FAILURE() << *e;
  return std::holds_alternative<time_zone>(z) ? std::get<time_zone>(z) : time_zone::utc();
}

cron_schedule schedule(const char* expr) {
  auto c = cron_schedule::parse(expr);
  if (auto* e = std::get_if<std::string>(&c)) ADD_FAILURE() << expr << ": " << *e;
  return std::holds_alternative<cron_schedule>(c) ? std::get<cron_schedule>(c) : std::get<cron_schedule>(
                                                                                      cron_schedule::parse("* * * * *"));
}

// The fires after `after`, in order.
std::vector<std::string> fires(const char* expr, const char* tz, const char* after, int n) {
  cron_schedule c = schedule(expr);
  time_zone z = zone(tz);
  std::vector<std::string> out;
  int64_t t = at(after);
  for (int i = 0; i < n; ++i) {
    auto next = c.next(t, z);
    if (!next) {
      out.push_back("never");
      break;
    }
    EXPECT_GT(*next, t);
    out.push_back(iso(*next));
    t = *next;
  }
  return out;
}

using list = std::vector<std::string>;

TEST(cron, fields_ranges_steps_lists_names_and_macros) {
  EXPECT_EQ(fires("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", 3),
            (list{"2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z"}));
  EXPECT_EQ(fires("0 9-17/4 * * *", "UTC", "2026-01-01T10:00:00Z", 3),
            (list{"2026-01-01T13:00:00Z", "2026-01-01T17:00:00Z", "2026-01-02T09:00:00Z"}));
  EXPECT_EQ(fires("5,10 0 * * *", "UTC", "2026-01-01T00:05:00Z", 2), (list{"2026-01-01T00:10:00Z", "2026-01-02T00:05:00Z"}));
  EXPECT_EQ(fires("0 0 * jan,Jul sun", "UTC", "2026-01-20T00:00:00Z", 2),
            (list{"2026-01-25T00:00:00Z", "2026-07-05T00:00:00Z"}));
  EXPECT_EQ(fires("0 0 * * 7", "UTC", "2026-12-03T00:00:00Z", 1), (list{"2026-12-06T00:00:00Z"}));  // 7 is Sunday
  EXPECT_EQ(fires("0 0 * * FRI-SUN", "UTC", "2026-12-03T00:00:00Z", 3),
            (list{"2026-12-04T00:00:00Z", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z"}));
  EXPECT_EQ(fires("@hourly", "UTC", "2026-12-03T10:00:00Z", 1), (list{"2026-12-03T11:00:00Z"}));  // strictly after
  EXPECT_EQ(fires("@daily", "UTC", "2026-12-03T10:00:00Z", 1), (list{"2026-12-04T00:00:00Z"}));
  EXPECT_EQ(fires("@weekly", "UTC", "2026-12-03T10:00:00Z", 1), (list{"2026-12-06T00:00:00Z"}));
  EXPECT_EQ(fires("@monthly", "UTC", "2026-12-03T10:00:00Z", 1), (list{"2027-01-01T00:00:00Z"}));
  EXPECT_EQ(fires("@yearly", "UTC", "2026-12-03T10:00:00Z", 1), (list{"2027-01-01T00:00:00Z"}));
  // Both day fields restricted: either matches (the 13th, or any Friday).
  EXPECT_EQ(fires("0 0 13 * FRI", "UTC", "2026-12-03T00:00:00Z", 3),
            (list{"2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"}));
  EXPECT_EQ(fires("0 0 ? * MON", "UTC", "2026-12-03T00:00:00Z", 1), (list{"2026-12-07T00:00:00Z"}));
  // A day field starting with * is unrestricted (Vixie): every other day AND a Monday.
  EXPECT_EQ(fires("0 0 */2 * MON", "UTC", "2026-12-03T00:00:00Z", 2),
            (list{"2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z"}));
  EXPECT_EQ(fires("0 0 * * 0-0", "UTC", "2026-12-03T00:00:00Z", 1), (list{"2026-12-06T00:00:00Z"}));  // Sundays only
}

TEST(cron, six_fields_have_seconds_first) {
  EXPECT_EQ(fires("30 15 10 * * *", "UTC", "2026-12-03T10:15:31Z", 1), (list{"2026-12-04T10:15:30Z"}));
  EXPECT_EQ(fires("*/20 * * * * *", "UTC", "2026-12-03T10:15:59Z", 3),
            (list{"2026-12-03T10:16:00Z", "2026-12-03T10:16:20Z", "2026-12-03T10:16:40Z"}));
  EXPECT_EQ(fires("* * * * * *", "UTC", "2026-12-31T23:59:59Z", 1), (list{"2027-01-01T00:00:00Z"}));
}

TEST(cron, leap_days_and_last_nearest_and_nth_days) {
  EXPECT_EQ(fires("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 2), (list{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}));
  EXPECT_EQ(fires("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", 1), (list{"2104-02-29T00:00:00Z"}));  // 2100 is not leap
  EXPECT_EQ(fires("0 0 L * *", "UTC", "2024-02-01T00:00:00Z", 3),
            (list{"2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z", "2024-04-30T00:00:00Z"}));
  EXPECT_EQ(fires("0 0 L 2 *", "UTC", "2023-01-01T00:00:00Z", 2), (list{"2023-02-28T00:00:00Z", "2024-02-29T00:00:00Z"}));
  // May 31 2026 is a Sunday: the last weekday is Friday the 29th.
  EXPECT_EQ(fires("0 0 LW * *", "UTC", "2026-05-01T00:00:00Z", 1), (list{"2026-05-29T00:00:00Z"}));
  // Aug 15 2026 is a Saturday: Friday the 14th. Aug 1 is a Saturday too: Monday the 3rd (not July).
  EXPECT_EQ(fires("0 0 15W * *", "UTC", "2026-08-01T00:00:00Z", 1), (list{"2026-08-14T00:00:00Z"}));
  EXPECT_EQ(fires("0 0 1W * *", "UTC", "2026-07-15T00:00:00Z", 1), (list{"2026-08-03T00:00:00Z"}));
  // 31W does not exist in April; 15W still fires (Wednesday the 15th).
  EXPECT_EQ(fires("0 0 31W,15W * *", "UTC", "2026-04-01T00:00:00Z", 1), (list{"2026-04-15T00:00:00Z"}));
  // Last Friday of December 2026 is the 25th; its second Monday the 14th.
  EXPECT_EQ(fires("0 9 * * 5L", "UTC", "2026-12-01T00:00:00Z", 1), (list{"2026-12-25T09:00:00Z"}));
  EXPECT_EQ(fires("0 9 * * MON#2", "UTC", "2026-12-01T00:00:00Z", 2), (list{"2026-12-14T09:00:00Z", "2027-01-11T09:00:00Z"}));
  EXPECT_EQ(fires("0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z", 1), (list{"never"}));
  EXPECT_EQ(fires("0 0 31 4,6 *", "UTC", "2026-01-01T00:00:00Z", 1), (list{"never"}));
}

// Spring forward: 02:00 local does not exist; a time in the gap fires once, at
// the first instant after it. Fall back: 02:00-02:59 (Berlin) or 01:00-01:59
// (New York) happen twice; a time in them fires once, the first time.
TEST(cron, dst_transitions_in_two_zones) {
  // Berlin 2026-03-29: 02:00 CET → 03:00 CEST (01:00Z).
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
            (list{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}));
  // An every-minute schedule through the gap: 01:59 CET, then 03:00 CEST, once.
  EXPECT_EQ(fires("* * * * *", "Europe/Berlin", "2026-03-29T00:58:30Z", 3),
            (list{"2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:01:00Z"}));
  EXPECT_EQ(fires("* * * * * *", "Europe/Berlin", "2026-03-29T00:59:59Z", 1), (list{"2026-03-29T01:00:00Z"}));
  // From the very second before the gap, the skipped 02:30 still fires at 03:00.
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-03-29T00:59:59Z", 1), (list{"2026-03-29T01:00:00Z"}));
  // Berlin 2026-10-25: 03:00 CEST → 02:00 CET (01:00Z); 02:30 fires at its CEST occurrence only.
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            (list{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}));
  // New York 2026-03-08: 02:00 EST → 03:00 EDT (07:00Z).
  EXPECT_EQ(fires("0 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2),
            (list{"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"}));
  // New York 2026-11-01: 02:00 EDT → 01:00 EST (06:00Z): 01:00 and 01:30 once each.
  EXPECT_EQ(fires("*/30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 3),
            (list{"2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:00:00Z"}));
  // Hourly in New York across the fall-back: 00:00, 01:00 EDT, (01:00 EST skipped), 02:00 EST.
  EXPECT_EQ(fires("0 * * * *", "America/New_York", "2026-11-01T03:30:00Z", 3),
            (list{"2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"}));
}

TEST(cron, far_future_uses_the_zone_rule) {
  EXPECT_EQ(fires("0 12 1 7 *", "Europe/Berlin", "2100-01-01T00:00:00Z", 1), (list{"2100-07-01T10:00:00Z"}));
  EXPECT_EQ(fires("0 12 1 1 *", "Europe/Berlin", "2100-06-01T00:00:00Z", 1), (list{"2101-01-01T11:00:00Z"}));
}

TEST(cron, bad_expressions_say_what_is_wrong) {
  struct bad {
    const char* expr;
    const char* says;
  };
  for (const bad& b : {bad{"61 * * * *", "minute field: '61'"}, bad{"* * *", "has 3"},
                       bad{"@reboot", "unknown schedule macro"}, bad{"0 0 * * 8", "day-of-week field: '8'"},
                       bad{"0 0 * * 1#6", "n#k"}, bad{"*/0 * * * *", "minute field: '*/0'"},
                       bad{"5-1 * * * *", "minute field: '5-1'"}, bad{"0 0 ? * *", ""},
                       bad{"0 ? * * *", "hour field: '?'"}, bad{"0 0 32W * *", "nW"},
                       bad{"0 0 * FOO *", "month field: 'FOO'"}, bad{"", "has 0"}, bad{"0 0 * * 1,", "day-of-week"}}) {
    auto r = cron_schedule::parse(b.expr);
    if (std::string(b.says).empty()) {
      EXPECT_TRUE(std::holds_alternative<cron_schedule>(r)) << b.expr;
      continue;
    }
    ASSERT_TRUE(std::holds_alternative<std::string>(r)) << b.expr;
    EXPECT_NE(std::get<std::string>(r).find(b.says), std::string::npos) << b.expr << ": " << std::get<std::string>(r);
  }
}

TEST(tz, offsets_gaps_and_repeats) {
  time_zone berlin = zone("Europe/Berlin");
  EXPECT_EQ(berlin.offset_at(at("2026-01-15T12:00:00Z")), 3600);
  EXPECT_EQ(berlin.offset_at(at("2026-07-15T12:00:00Z")), 7200);
  EXPECT_EQ(berlin.offset_at(at("2026-03-29T00:59:59Z")), 3600);
  EXPECT_EQ(berlin.offset_at(at("2026-03-29T01:00:00Z")), 7200);
  // 02:30 on 2026-03-29 does not exist; on 2026-10-25 it happens twice.
  auto gap = berlin.from_local(at("2026-03-29T02:30:00Z"));
  EXPECT_TRUE(gap.utc.empty());
  EXPECT_EQ(iso(gap.gap_end), "2026-03-29T01:00:00Z");
  auto twice = berlin.from_local(at("2026-10-25T02:30:00Z"));
  ASSERT_EQ(twice.utc.size(), 2u);
  EXPECT_EQ(iso(twice.utc[0]), "2026-10-25T00:30:00Z");
  EXPECT_EQ(iso(twice.utc[1]), "2026-10-25T01:30:00Z");
  auto once = berlin.from_local(at("2026-06-01T12:00:00Z"));
  ASSERT_EQ(once.utc.size(), 1u);
  EXPECT_EQ(iso(once.utc[0]), "2026-06-01T10:00:00Z");
  EXPECT_EQ(zone("America/New_York").offset_at(at("2026-07-04T12:00:00Z")), -4 * 3600);
  EXPECT_EQ(time_zone::utc().offset_at(at("2026-07-04T12:00:00Z")), 0);
}

TEST(tz, posix_rules) {
  auto sydney = xerv::flows::parse_tz_rule("AEST-10AEDT,M10.1.0,M4.1.0/3");  // southern hemisphere
  ASSERT_TRUE(sydney);
  EXPECT_EQ(sydney->offset_at(at("2100-01-15T00:00:00Z")), 11 * 3600);
  EXPECT_EQ(sydney->offset_at(at("2100-07-15T00:00:00Z")), 10 * 3600);
  auto plus3 = xerv::flows::parse_tz_rule("<+03>-3");
  ASSERT_TRUE(plus3);
  EXPECT_EQ(plus3->offset_at(0), 3 * 3600);
  auto ny = xerv::flows::parse_tz_rule("EST5EDT,M3.2.0,M11.1.0");
  ASSERT_TRUE(ny);
  EXPECT_EQ(ny->offset_at(at("2026-03-08T06:59:59Z")), -5 * 3600);
  EXPECT_EQ(ny->offset_at(at("2026-03-08T07:00:00Z")), -4 * 3600);
  EXPECT_EQ(ny->offset_at(at("2026-11-01T05:59:59Z")), -4 * 3600);
  EXPECT_EQ(ny->offset_at(at("2026-11-01T06:00:00Z")), -5 * 3600);
  auto julian = xerv::flows::parse_tz_rule("XXX3YYY,J60/0,300");  // Jn skips Feb 29, n counts it
  ASSERT_TRUE(julian);
  for (const char* bad : {"", "CE", "CET", "CET-1CEST,M13.1.0,M10.5.0", "CET-1CEST,M3.5.0", "CET-1CEST,M3.5.0,M10.5.0/x"})
    EXPECT_FALSE(xerv::flows::parse_tz_rule(bad)) << bad;
}

TEST(tz, unknown_and_unsafe_names_are_refused) {
  for (const char* name : {"Nowhere/Special", "../../etc/passwd", "/etc/localtime", "Europe/Berlin\n", ""}) {
    auto z = time_zone::load(name);
    ASSERT_TRUE(std::holds_alternative<std::string>(z)) << name;
  }
  auto leap = time_zone::load("right/Europe/Berlin");  // leap seconds: not Unix time
  if (auto* e = std::get_if<std::string>(&leap)) EXPECT_NE(e->find("leap seconds"), std::string::npos) << *e;
  else ADD_FAILURE() << "right/Europe/Berlin was accepted";
  auto bad = time_zone::parse("X", "TZif2 but not really");
  EXPECT_TRUE(std::holds_alternative<std::string>(bad));
}

}  // namespace
