#pragma once
// Cron schedules (SPEC §3): 5 fields (minute hour day-of-month month
// day-of-week) or 6 with leading seconds; `*`, `?`, values, ranges `a-b`,
// steps `/n`, lists `a,b`, names (JAN-DEC, SUN-SAT), the macros @yearly
// @annually @monthly @weekly @daily @midnight @hourly, and Quartz's extras:
// day-of-month `L` (last day), `LW` (last weekday), `nW` (the weekday nearest
// day n, within the month); day-of-week `nL` (the month's last such day) and
// `n#k` (its k-th). Day-of-week 0 and 7 are Sunday. When both day fields are
// restricted (neither starts with `*` nor is `?`), a day matching either one
// matches (Vixie cron); otherwise both must.
//
// next() works on the zone's wall clock: a local time that a spring-forward
// skips fires once, at the first instant after the gap; one that a fall-back
// repeats fires once, at its first occurrence.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "flows/tz.h"

namespace xerv::flows {

class cron_schedule {
 public:
  // The schedule, or what is wrong with it.
  static std::variant<cron_schedule, std::string> parse(std::string_view expr);

  // The first instant strictly after `after_s` (Unix seconds) that the
  // schedule names in `zone`; nullopt when there is none in the next 100 years.
  std::optional<int64_t> next(int64_t after_s, const time_zone& zone) const;
  const std::string& text() const { return _text; }

 private:
  // The first local time >= `local_s` (seconds on the zone's wall clock) that
  // matches every field.
  std::optional<int64_t> next_local(int64_t local_s) const;
  bool day_matches(int64_t year, unsigned month, unsigned day, unsigned weekday) const;
  std::optional<int64_t> time_of_day_from(int64_t sod) const;

  std::string _text;
  uint64_t _seconds = 0, _minutes = 0;  // bit n: n
  uint32_t _hours = 0, _days = 0;       // days: bit 1-31
  uint16_t _months = 0;                 // bit 1-12
  uint8_t _weekdays = 0;                // bit 0-6 (Sunday first)
  bool _days_any = true, _weekdays_any = true;  // `*` or `?`
  bool _last_day = false, _last_weekday_of_month = false;
  std::vector<unsigned> _nearest_weekday;  // nW
  uint8_t _last_of_weekday = 0;            // nL: bit per weekday
  std::vector<std::pair<unsigned, unsigned>> _nth_weekday;  // n#k: (weekday, k)
};

// A cron trigger's parameters (SPEC §3), compiled at deploy.
enum class cron_missed : uint8_t { skip, run_once, run_all };
enum class cron_overlap : uint8_t { allow, skip, queue };
struct cron_trigger {
  cron_schedule schedule;
  time_zone zone = time_zone::utc();
  cron_missed missed = cron_missed::run_once;  // instants passed while xerv was down (or late by over a second)
  cron_overlap overlap = cron_overlap::allow;  // an instant that comes while its previous trace runs
};
const char* to_string(cron_missed m);
const char* to_string(cron_overlap o);

}  // namespace xerv::flows
