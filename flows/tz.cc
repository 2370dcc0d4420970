#include "flows/tz.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace xerv::flows {

// ---- calendar (days since 1970-01-01, proleptic Gregorian) ----

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;                                     // [0, 399]
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;   // [0, 365], from March 1
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;             // [0, 146096]
  return era * 146097 + doe - 719468;
}

civil civil_from_days(int64_t z) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  unsigned d = unsigned(doy - (153 * mp + 2) / 5 + 1);
  unsigned m = unsigned(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (m <= 2), m, d};
}

unsigned weekday_from_days(int64_t z) { return unsigned(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6); }

bool leap_year(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

// ---- POSIX TZ rules ----

// The local instant (seconds) at which a rule date happens in year `y`.
int64_t rule_local(const tz_rule::date& d, int64_t y) {
  int64_t jan1 = days_from_civil(y, 1, 1);
  int64_t day = 0;
  switch (d.kind) {
    case tz_rule::date::julian_no_leap: day = jan1 + d.day - 1 + (leap_year(y) && d.day >= 60); break;
    case tz_rule::date::julian_leap: day = jan1 + d.day; break;
    case tz_rule::date::month_week_day: {
      int64_t first = days_from_civil(y, unsigned(d.month), 1);
      day = first + (d.day - int(weekday_from_days(first)) + 7) % 7 + (d.week - 1) * 7;
      while (day >= first + days_in_month(y, unsigned(d.month))) day -= 7;  // week 5: the last one
      break;
    }
  }
  return day * 86400 + d.time_s;
}

struct cursor {
  std::string_view s;
  size_t i = 0;
  bool done() const { return i >= s.size(); }
  char peek() const { return done() ? '\0' : s[i]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i;
    return true;
  }
  std::optional<int> number(int max) {
    size_t start = i;
    int v = 0;
    while (!done() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i++] - '0');
      if (v > max) return std::nullopt;
    }
    if (i == start) return std::nullopt;
    return v;
  }
  // A zone abbreviation: 3+ letters, or <...> (may hold digits and signs).
  bool name() {
    if (eat('<')) {
      size_t start = i;
      while (!done() && s[i] != '>') ++i;
      return i - start >= 3 && eat('>');
    }
    size_t start = i;
    while (!done() && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) ++i;
    return i - start >= 3;
  }
  // [+-]hh[:mm[:ss]], hours up to `max_h`.
  std::optional<int32_t> duration(int max_h) {
    int sign = 1;
    if (eat('-')) sign = -1;
    else eat('+');
    auto h = number(max_h);
    if (!h) return std::nullopt;
    int32_t v = *h * 3600;
    if (eat(':')) {
      auto m = number(59);
      if (!m) return std::nullopt;
      v += *m * 60;
      if (eat(':')) {
        auto sec = number(59);
        if (!sec) return std::nullopt;
        v += *sec;
      }
    }
    return sign * v;
  }
  std::optional<tz_rule::date> date() {
    tz_rule::date d;
    if (eat('M')) {
      auto m = number(12);
      if (!m || *m < 1 || !eat('.')) return std::nullopt;
      auto w = number(5);
      if (!w || *w < 1 || !eat('.')) return std::nullopt;
      auto wd = number(6);
      if (!wd) return std::nullopt;
      d.month = *m, d.week = *w, d.day = *wd;
    } else if (eat('J')) {
      auto n = number(365);
      if (!n || *n < 1) return std::nullopt;
      d.kind = tz_rule::date::julian_no_leap, d.day = *n;
    } else {
      auto n = number(365);
      if (!n) return std::nullopt;
      d.kind = tz_rule::date::julian_leap, d.day = *n;
    }
    if (eat('/')) {
      auto t = duration(167);  // RFC 8536 allows -167 to 167 hours
      if (!t) return std::nullopt;
      d.time_s = *t;
    }
    return d;
  }
};

uint32_t be32(const unsigned char* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
int64_t be64(const unsigned char* p) { return int64_t(uint64_t(be32(p)) << 32 | be32(p + 4)); }

bool valid_zone_name(std::string_view n) {
  if (n.empty() || n.size() > 255 || n.front() == '/' || n.find("..") != std::string_view::npos) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
           c == '-' || c == '+';
  });
}

}  // namespace

int32_t tz_rule::offset_at(int64_t utc_s) const {
  if (!has_dst) return std_offset_s;
  int64_t y = civil_from_days(floor_div(utc_s + std_offset_s, 86400)).year;
  // The start is given in standard time, the end in daylight time.
  int64_t begins = rule_local(start, y) - std_offset_s;
  int64_t ends = rule_local(end, y) - dst_offset_s;
  bool dst = begins < ends ? utc_s >= begins && utc_s < ends : utc_s < ends || utc_s >= begins;
  return dst ? dst_offset_s : std_offset_s;
}

std::optional<tz_rule> parse_tz_rule(std::string_view s) {
  cursor c{s};
  tz_rule r;
  if (!c.name()) return std::nullopt;
  auto std_off = c.duration(24);
  if (!std_off) return std::nullopt;
  r.std_offset_s = -*std_off;  // POSIX counts west of UTC
  if (c.done()) return r;
  if (!c.name()) return std::nullopt;
  r.has_dst = true;
  r.dst_offset_s = r.std_offset_s + 3600;
  if (c.peek() != ',' && !c.done()) {
    auto dst_off = c.duration(24);
    if (!dst_off) return std::nullopt;
    r.dst_offset_s = -*dst_off;
  }
  if (c.done()) {  // POSIX's default: the US rules
    r.start = {tz_rule::date::month_week_day, 0, 3, 2, 7200};
    r.end = {tz_rule::date::month_week_day, 0, 11, 1, 7200};
    return r;
  }
  if (!c.eat(',')) return std::nullopt;
  auto start = c.date();
  if (!start || !c.eat(',')) return std::nullopt;
  auto end = c.date();
  if (!end || !c.done()) return std::nullopt;
  r.start = *start, r.end = *end;
  return r;
}

time_zone time_zone::utc() {
  time_zone z;
  z._name = "UTC";
  return z;
}

// A deploy-time read of a small file (like the flow YAML files at start), not
// on any trace's path.
std::variant<time_zone, std::string> time_zone::load(std::string_view name) {
  if (name == "UTC" || name == "Etc/UTC") return utc();
  if (!valid_zone_name(name)) return "'" + std::string(name) + "' is not an IANA time zone name";
  const char* dir = getenv("TZDIR");
  std::string path = std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  if (!in) return "unknown time zone '" + std::string(name) + "' (no " + path + "; is tzdata installed?)";
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() > (1 << 20)) return path + " is too large for a TZif file";
  return parse(name, bytes);
}

std::variant<time_zone, std::string> time_zone::parse(std::string_view name, std::string_view tzif) {
  auto bad = [&](const char* why) { return "time zone '" + std::string(name) + "': " + why; };
  auto* p = reinterpret_cast<const unsigned char*>(tzif.data());
  size_t n = tzif.size();
  auto header = [&](size_t at, uint32_t (&counts)[6]) {
    if (at + 44 > n || tzif.substr(at, 4) != "TZif") return false;
    for (int i = 0; i < 6; ++i) counts[i] = be32(p + at + 20 + 4 * i);
    return true;
  };
  uint32_t c[6];  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  if (!header(0, c)) return bad("not a TZif file");
  bool v2 = tzif[4] >= '2';
  size_t at = 44;
  size_t time_bytes = 4;
  if (v2) {  // skip the 32-bit block: the 64-bit one follows, with the footer
    at += size_t(c[3]) * 5 + size_t(c[4]) * 6 + c[5] + size_t(c[2]) * 8 + c[1] + c[0];
    if (!header(at, c)) return bad("truncated TZif file");
    at += 44;
    time_bytes = 8;
  }
  size_t leap_bytes = time_bytes + 4;
  size_t data = size_t(c[3]) * (time_bytes + 1) + size_t(c[4]) * 6 + c[5] + size_t(c[2]) * leap_bytes + c[1] + c[0];
  if (c[4] == 0 || c[4] > 256 || at + data > n) return bad("truncated TZif file");
  // (right/ zones count leap seconds: their instants are not Unix time.)
  if (c[2] != 0) return bad("a zone with leap seconds (right/...) is not supported; use the plain zone name");
  time_zone z;
  z._name = std::string(name);
  const unsigned char* times = p + at;
  const unsigned char* idx = times + size_t(c[3]) * time_bytes;
  const unsigned char* types = idx + c[3];
  auto type_offset = [&](unsigned t) { return int32_t(be32(types + 6 * t)); };
  for (uint32_t i = 0; i < c[3]; ++i) {
    int64_t t = time_bytes == 8 ? be64(times + 8 * i) : int64_t(int32_t(be32(times + 4 * i)));
    if (idx[i] >= c[4] || (!z._transitions.empty() && t <= z._transitions.back())) return bad("corrupt transitions");
    z._transitions.push_back(t);
    z._offsets.push_back(type_offset(idx[i]));
  }
  z._initial_offset = type_offset(0);
  if (v2) {
    size_t f = at + data;
    if (f < n && tzif[f] == '\n') {
      size_t end = tzif.find('\n', f + 1);
      if (end == std::string_view::npos) return bad("truncated footer");
      std::string_view rule = tzif.substr(f + 1, end - f - 1);
      if (!rule.empty()) {
        z._rule = parse_tz_rule(rule);
        if (!z._rule) return bad("its POSIX TZ rule does not parse");
      }
    }
  }
  return z;
}

int32_t time_zone::offset_at(int64_t utc_s) const {
  if (_transitions.empty()) return _rule ? _rule->offset_at(utc_s) : _initial_offset;
  if (utc_s < _transitions.front()) return _initial_offset;
  if (_rule && utc_s >= _transitions.back()) return _rule->offset_at(utc_s);
  auto it = std::upper_bound(_transitions.begin(), _transitions.end(), utc_s);
  return _offsets[size_t(it - _transitions.begin()) - 1];
}

time_zone::resolved time_zone::from_local(int64_t local_s) const {
  // Transitions are months apart: the offsets a day either side are the only
  // candidates.
  int32_t before = offset_at(local_s - 86400), after = offset_at(local_s + 86400);
  resolved r;
  for (int32_t o : {before, after})
    if (offset_at(local_s - o) == o && std::find(r.utc.begin(), r.utc.end(), local_s - o) == r.utc.end())
      r.utc.push_back(local_s - o);
  std::sort(r.utc.begin(), r.utc.end());
  if (!r.utc.empty()) return r;
  // Skipped: the transition lies between the two readings of the local time.
  int64_t lo = local_s - std::max(before, after), hi = local_s - std::min(before, after);
  if (lo >= hi) {  // (offsets changing twice within two days: take the reading before)
    r.utc.push_back(local_s - before);
    return r;
  }
  int32_t first = offset_at(lo);
  while (hi - lo > 1) {
    int64_t mid = lo + (hi - lo) / 2;
    (offset_at(mid) == first ? lo : hi) = mid;
  }
  r.gap_end = hi;
  return r;
}

}  // namespace xerv::flows
