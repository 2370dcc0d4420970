#pragma once
// IANA time zones for cron schedules, read from the system's tz database
// (TZif files under $TZDIR, default /usr/share/zoneinfo; Debian's tzdata).
// GCC 12's <chrono> has no time zones, and a zone needs little: the table of
// transitions (UTC offset from each instant on) and the POSIX TZ rule in the
// file's footer for instants after the last transition (RFC 8536). Loaded once
// at deploy time; immutable afterwards, so every shard may read one object.
//
// Times are Unix seconds (UTC) and "local seconds" (the same count on the
// zone's wall clock: local = utc + offset).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace xerv::flows {

// A POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"): the standard offset, and
// optionally a DST offset with the yearly rules that start and end it.
struct tz_rule {
  struct date {
    enum kind_t { julian_no_leap, julian_leap, month_week_day } kind = month_week_day;
    int day = 0;  // Jn: 1-365 (Feb 29 never counted); n: 0-365; Mm.w.d: d (0 = Sunday)
    int month = 0, week = 0;
    int32_t time_s = 7200;  // local time of day it happens (may be negative or past 24h)
  };
  int32_t std_offset_s = 0;  // east of UTC
  bool has_dst = false;
  int32_t dst_offset_s = 0;
  date start, end;
  int32_t offset_at(int64_t utc_s) const;
};

// Parses the POSIX TZ string of a TZif footer; nullopt when it is not one.
std::optional<tz_rule> parse_tz_rule(std::string_view s);

class time_zone {
 public:
  // UTC, or the zone `name` names in the tz database; an error message when it
  // is not there or does not parse.
  static std::variant<time_zone, std::string> load(std::string_view name);
  // From the bytes of a TZif file (the tests build their own).
  static std::variant<time_zone, std::string> parse(std::string_view name, std::string_view tzif);
  static time_zone utc();

  const std::string& name() const { return _name; }
  int32_t offset_at(int64_t utc_s) const;
  int64_t to_local(int64_t utc_s) const { return utc_s + offset_at(utc_s); }
  // The instants a local time names: one; two in a repeated hour (earlier
  // first); none in a skipped one, where `gap_end` is the first instant after
  // the gap (the transition).
  struct resolved {
    std::vector<int64_t> utc;
    int64_t gap_end = 0;
  };
  resolved from_local(int64_t local_s) const;

 private:
  std::string _name;
  std::vector<int64_t> _transitions;  // UTC, ascending
  std::vector<int32_t> _offsets;      // in force from each transition on
  int32_t _initial_offset = 0;        // before the first transition
  std::optional<tz_rule> _rule;       // after the last transition
};

// Proleptic Gregorian calendar helpers (days since 1970-01-01).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
struct civil {
  int64_t year;
  unsigned month, day;
};
civil civil_from_days(int64_t days);
unsigned weekday_from_days(int64_t days);  // 0 = Sunday
bool leap_year(int64_t y);
unsigned days_in_month(int64_t y, unsigned m);

}  // namespace xerv::flows
