#include "flows/cron.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>

namespace xerv::flows {
namespace {

struct field_spec {
  const char* name;
  unsigned min, max;
  const char* const* names;  // names[i] is value min + i (null: numbers only)
};

const char* const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const char* const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

const field_spec f_second{"second", 0, 59, nullptr}, f_minute{"minute", 0, 59, nullptr},
    f_hour{"hour", 0, 23, nullptr}, f_day{"day-of-month", 1, 31, nullptr}, f_month{"month", 1, 12, month_names},
    f_weekday{"day-of-week", 0, 7, day_names};

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t start = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

std::optional<unsigned> number(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + unsigned(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

std::optional<unsigned> value(std::string_view s, const field_spec& f) {
  if (f.names && s.size() == 3) {
    for (unsigned i = 0; i <= f.max - f.min; ++i) {
      if (f.names == day_names && i == 7) break;
      bool same = true;
      for (size_t k = 0; k < 3; ++k) same = same && std::toupper(static_cast<unsigned char>(s[k])) == f.names[i][k];
      if (same) return f.min + i;
    }
  }
  auto v = number(s, f.max);
  if (!v || *v < f.min) return std::nullopt;
  return v;
}

// One field's plain items (lists of values, ranges and steps) as a bit set;
// the message names the field and the item when one is wrong.
std::variant<uint64_t, std::string> parse_bits(std::string_view text, const field_spec& f) {
  uint64_t bits = 0;
  for (std::string_view item : split(text, ',')) {
    auto bad = [&] { return std::string(f.name) + " field: '" + std::string(item) + "' is not valid (" +
                            std::to_string(f.min) + "-" + std::to_string(f.max) + ")"; };
    std::string_view range = item;
    unsigned step = 1;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      auto s = number(item.substr(slash + 1), f.max + 1);
      if (!s || *s == 0) return bad();
      step = *s;
      range = item.substr(0, slash);
    }
    unsigned lo = f.min, hi = f.max;
    if (range == "*" || range == "?") {
      if (range == "?" && &f != &f_day && &f != &f_weekday) return bad();  // only in the day fields
    } else if (size_t dash = range.find('-'); dash != std::string_view::npos) {
      auto a = value(range.substr(0, dash), f), b = value(range.substr(dash + 1), f);
      if (&f == &f_weekday && a && *a > 0 && b == 0u) b = 7;  // FRI-SUN: Sunday as 7
      if (!a || !b || *a > *b) return bad();
      lo = *a, hi = *b;
    } else {
      auto a = value(range, f);
      if (!a) return bad();
      lo = *a;
      hi = item.find('/') != std::string_view::npos ? f.max : *a;  // "a/n": from a to the end
    }
    for (unsigned v = lo; v <= hi; v += step) bits |= uint64_t(1) << v;
  }
  return bits;
}

// Vixie cron: a day field starting with `*` (`*`, `*/2`) is unrestricted.
bool is_any(std::string_view s) { return !s.empty() && (s.front() == '*' || s == "?"); }

}  // namespace

std::variant<cron_schedule, std::string> cron_schedule::parse(std::string_view expr) {
  cron_schedule c;
  c._text = std::string(expr);
  static const std::pair<const char*, const char*> macros[] = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"}};
  std::string_view body = expr;
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.front()))) body.remove_prefix(1);
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.remove_suffix(1);
  if (!body.empty() && body.front() == '@') {
    auto m = std::find_if(std::begin(macros), std::end(macros), [&](const auto& p) { return body == p.first; });
    if (m == std::end(macros))
      return "unknown schedule macro '" + std::string(body) + "' (@yearly, @annually, @monthly, @weekly, @daily, "
             "@midnight, @hourly)";
    body = m->second;
  }
  std::vector<std::string_view> f = words(body);
  if (f.size() != 5 && f.size() != 6)
    return "a schedule has 5 fields (minute hour day-of-month month day-of-week) or 6 (with leading seconds); '" +
           std::string(expr) + "' has " + std::to_string(f.size());
  if (f.size() == 5) f.insert(f.begin(), "0");
  auto take = [](std::variant<uint64_t, std::string> r, auto& out) -> std::optional<std::string> {
    if (auto* e = std::get_if<std::string>(&r)) return *e;
    out = static_cast<std::remove_reference_t<decltype(out)>>(std::get<uint64_t>(r));
    return std::nullopt;
  };
  if (auto e = take(parse_bits(f[0], f_second), c._seconds)) return *e;
  if (auto e = take(parse_bits(f[1], f_minute), c._minutes)) return *e;
  if (auto e = take(parse_bits(f[2], f_hour), c._hours)) return *e;
  if (auto e = take(parse_bits(f[4], f_month), c._months)) return *e;

  // Day of month: plain items, or L, LW, nW.
  c._days_any = is_any(f[3]);
  std::string plain;
  for (std::string_view item : split(f[3], ',')) {
    if (item == "L") c._last_day = true;
    else if (item == "LW") c._last_weekday_of_month = true;
    else if (item.size() > 1 && item.back() == 'W') {
      auto d = value(item.substr(0, item.size() - 1), f_day);
      if (!d) return "day-of-month field: '" + std::string(item) + "' is not valid (nW: n from 1 to 31)";
      c._nearest_weekday.push_back(*d);
    } else {
      plain += (plain.empty() ? "" : ",") + std::string(item);
    }
  }
  if (!plain.empty())
    if (auto e = take(parse_bits(plain, f_day), c._days)) return *e;

  // Day of week: plain items, or nL, n#k.
  c._weekdays_any = is_any(f[5]);
  plain.clear();
  uint64_t weekdays = 0;
  for (std::string_view item : split(f[5], ',')) {
    if (size_t hash = item.find('#'); hash != std::string_view::npos) {
      auto d = value(item.substr(0, hash), f_weekday);
      auto k = number(item.substr(hash + 1), 5);
      if (!d || !k || *k == 0) return "day-of-week field: '" + std::string(item) + "' is not valid (n#k: k from 1 to 5)";
      c._nth_weekday.emplace_back(*d % 7, *k);
    } else if (item.size() > 1 && item.back() == 'L') {
      auto d = value(item.substr(0, item.size() - 1), f_weekday);
      if (!d) return "day-of-week field: '" + std::string(item) + "' is not valid (nL: n from 0 to 7)";
      c._last_of_weekday |= uint8_t(1u << (*d % 7));
    } else {
      plain += (plain.empty() ? "" : ",") + std::string(item);
    }
  }
  if (!plain.empty())
    if (auto e = take(parse_bits(plain, f_weekday), weekdays)) return *e;
  if (weekdays & (1u << 7)) weekdays = (weekdays | 1u) & 0x7f;  // 7 is Sunday too
  c._weekdays = uint8_t(weekdays);
  if (!c._months) return "month field: matches no month";
  return c;
}

bool cron_schedule::day_matches(int64_t year, unsigned month, unsigned day, unsigned weekday) const {
  unsigned dim = days_in_month(year, month);
  bool by_day = (_days >> day) & 1 || (_last_day && day == dim);
  if (!by_day && _last_weekday_of_month) {
    unsigned last = dim, wd = unsigned(weekday_from_days(days_from_civil(year, month, dim)));
    last -= wd == 0 ? 2 : wd == 6 ? 1 : 0;
    by_day = day == last;
  }
  for (unsigned n : _nearest_weekday) {
    if (by_day) break;
    if (n > dim) continue;  // (31W in a 30-day month)
    unsigned wd = weekday_from_days(days_from_civil(year, month, n));
    unsigned target = n;
    if (wd == 6) target = n == 1 ? 3 : n - 1;      // Saturday: Friday, or Monday when the 1st
    if (wd == 0) target = n == dim ? n - 2 : n + 1;  // Sunday: Monday, or Friday when the last day
    by_day = day == target;
  }
  bool by_weekday = (_weekdays >> weekday) & 1 || ((_last_of_weekday >> weekday) & 1 && day + 7 > dim);
  for (auto [wd, k] : _nth_weekday) by_weekday = by_weekday || (wd == weekday && (day - 1) / 7 + 1 == k);
  // (`*` and `?` set every bit, so an unrestricted field passes the AND.)
  if (_days_any || _weekdays_any) return by_day && by_weekday;
  return by_day || by_weekday;
}

// The first matching second of the day at or after `sod`.
std::optional<int64_t> cron_schedule::time_of_day_from(int64_t sod) const {
  auto first_from = [](uint64_t bits, unsigned from) -> int {
    if (from >= 64) return -1;
    uint64_t rest = bits >> from;
    return rest ? int(from) + std::countr_zero(rest) : -1;
  };
  unsigned h0 = unsigned(sod / 3600), m0 = unsigned(sod / 60 % 60), s0 = unsigned(sod % 60);
  for (int h = first_from(_hours, h0); h >= 0 && h < 24; h = first_from(_hours, unsigned(h) + 1)) {
    bool same_h = unsigned(h) == h0;
    for (int m = first_from(_minutes, same_h ? m0 : 0); m >= 0 && m < 60; m = first_from(_minutes, unsigned(m) + 1)) {
      int s = first_from(_seconds, same_h && unsigned(m) == m0 ? s0 : 0);
      if (s >= 0 && s < 60) return int64_t(h) * 3600 + m * 60 + s;
    }
  }
  return std::nullopt;
}

std::optional<int64_t> cron_schedule::next_local(int64_t local_s) const {
  int64_t day = local_s >= 0 ? local_s / 86400 : (local_s - 86399) / 86400;
  int64_t sod = local_s - day * 86400;
  civil c = civil_from_days(day);
  int64_t end_year = c.year + 100;
  while (c.year <= end_year) {
    if (!((_months >> c.month) & 1)) {  // to the 1st of the next month
      c = c.month == 12 ? civil{c.year + 1, 1, 1} : civil{c.year, c.month + 1, 1};
      day = days_from_civil(c.year, c.month, 1);
      sod = 0;
      continue;
    }
    if (day_matches(c.year, c.month, c.day, weekday_from_days(day)))
      if (auto t = time_of_day_from(sod)) return day * 86400 + *t;
    ++day;
    sod = 0;
    c = civil_from_days(day);
  }
  return std::nullopt;
}

std::optional<int64_t> cron_schedule::next(int64_t after_s, const time_zone& zone) const {
  // (Not to_local(after_s + 1): from the second before a spring-forward that
  // would step over the skipped times.)
  int64_t local = zone.to_local(after_s) + 1;
  // Each turn passes one local time that is skipped or was already fired; a
  // repeated hour is at most an hour of such times.
  for (int turn = 0; turn < 100'000; ++turn) {
    auto l = next_local(local);
    if (!l) return std::nullopt;
    time_zone::resolved r = zone.from_local(*l);
    if (r.utc.empty()) {
      if (r.gap_end > after_s) return r.gap_end;  // skipped by a spring-forward: the first instant after
    } else if (r.utc.front() > after_s) {
      return r.utc.front();  // (a repeated local time: its first occurrence only)
    }
    local = *l + 1;
  }
  return std::nullopt;
}

const char* to_string(cron_missed m) {
  switch (m) {
    case cron_missed::skip: return "skip";
    case cron_missed::run_once: return "run_once";
    case cron_missed::run_all: return "run_all";
  }
  return "?";
}

const char* to_string(cron_overlap o) {
  switch (o) {
    case cron_overlap::allow: return "allow";
    case cron_overlap::skip: return "skip";
    case cron_overlap::queue: return "queue";
  }
  return "?";
}

}  // namespace xerv::flows
