#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>

namespace xerv::core {

void settings::add(setting s) { _all.push_back(std::move(s)); }

std::optional<std::string> settings::apply(const setting& s, std::string_view text, std::string_view source) {
  std::string err = s.parse(text);
  if (err.empty()) return std::nullopt;
  std::string where = source == "flag" ? s.flag : source == "env" ? s.env : std::string(source) + ": " + s.key;
  return "invalid " + where + "=" + std::string(text) + ": " + err;
}

std::optional<std::string> settings::load(const std::vector<std::string>& args, std::vector<std::string>& rest,
                                          const std::string& config_file) {
  for (const setting& s : _all)
    if (auto e = apply(s, s.default_text, "default")) return e;

  if (!config_file.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(config_file);
    } catch (const YAML::BadFile&) {
      return "cannot read config file " + config_file;
    } catch (const YAML::Exception& e) {
      return "config file " + config_file + ": " + e.what();
    }
    if (root && !root.IsNull()) {
      if (!root.IsMap()) return "config file " + config_file + ": expected a map of settings";
      for (const auto& kv : root) {
        std::string key = kv.first.as<std::string>();
        const setting* found = nullptr;
        for (const setting& s : _all)
          if (s.key == key) found = &s;
        if (!found) return "config file " + config_file + ":" + std::to_string(kv.first.Mark().line + 1) +
                           ": unknown setting '" + key + "'";
        if (!kv.second.IsScalar()) return "config file " + config_file + ": setting '" + key + "' must be a single value";
        if (auto e = apply(*found, kv.second.Scalar(), config_file)) return e;
      }
    }
  }

  for (const setting& s : _all) {
    if (s.env.empty()) continue;
    if (const char* v = std::getenv(s.env.c_str()))
      if (auto e = apply(s, v, "env")) return e;
  }

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const setting* found = nullptr;
    std::string value;
    bool inline_value = false;
    for (const setting& s : _all) {
      if (s.flag.empty()) continue;
      if (a == s.flag) {
        found = &s;
      } else if (a.size() > s.flag.size() && a.compare(0, s.flag.size(), s.flag) == 0 && a[s.flag.size()] == '=') {
        found = &s;
        value = a.substr(s.flag.size() + 1);
        inline_value = true;
      }
      if (found) break;
    }
    if (!found) {
      rest.push_back(a);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return "missing value for " + found->flag;
      value = args[++i];
    }
    if (auto e = apply(*found, value, "flag")) return e;
  }
  return std::nullopt;
}

std::string settings::table() const {
  std::string out = "| variable | flag | config key | default | meaning |\n|---|---|---|---|---|\n";
  for (const setting& s : _all) {
    out += "| `" + (s.env.empty() ? std::string("-") : s.env) + "` | `" + (s.flag.empty() ? std::string("-") : s.flag) +
           "` | `" + s.key + "` | `" + (s.default_text.empty() ? std::string("(unset)") : s.default_text) + "` | " +
           s.description + " |\n";
  }
  return out;
}

setting_parser parse_uint(uint64_t* out, uint64_t min, uint64_t max) {
  return [=](std::string_view t) -> std::string {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || t.empty())
      return "expected an integer between " + std::to_string(min) + " and " + std::to_string(max);
    if (v < min || v > max) return "must be between " + std::to_string(min) + " and " + std::to_string(max);
    *out = v;
    return {};
  };
}

setting_parser parse_bool(bool* out) {
  return [=](std::string_view t) -> std::string {
    if (t == "true" || t == "1" || t == "yes" || t == "on") *out = true;
    else if (t == "false" || t == "0" || t == "no" || t == "off") *out = false;
    else return "expected true or false";
    return {};
  };
}

setting_parser parse_text(std::string* out, bool allow_empty) {
  return [=](std::string_view t) -> std::string {
    if (t.empty() && !allow_empty) return "must not be empty";
    *out = std::string(t);
    return {};
  };
}

std::optional<uint64_t> parse_byte_size(std::string_view t) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p == t.data()) return std::nullopt;
  std::string_view unit(p, size_t(t.data() + t.size() - p));
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  uint64_t mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KiB" || unit == "K" || unit == "k") mult = 1ull << 10;
  else if (unit == "MiB" || unit == "M") mult = 1ull << 20;
  else if (unit == "GiB" || unit == "G") mult = 1ull << 30;
  else if (unit == "KB" || unit == "kB") mult = 1000;
  else if (unit == "MB") mult = 1000 * 1000;
  else if (unit == "GB") mult = 1000 * 1000 * 1000;
  else return std::nullopt;
  if (v > UINT64_MAX / mult) return std::nullopt;
  return v * mult;
}

setting_parser parse_bytes(uint64_t* out, uint64_t min, uint64_t max) {
  return [=](std::string_view t) -> std::string {
    auto v = parse_byte_size(t);
    if (!v) return "expected a size such as 1048576, 512KiB or 1MiB";
    if (*v < min || *v > max) return "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes";
    *out = *v;
    return {};
  };
}

std::optional<uint64_t> parse_duration(std::string_view t) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p == t.data()) return std::nullopt;
  std::string_view unit(p, size_t(t.data() + t.size() - p));
  uint64_t mult = 0;
  if (unit.empty() || unit == "s") mult = 1000;
  else if (unit == "ms") mult = 1;
  else if (unit == "m") mult = 60'000;
  else if (unit == "h") mult = 3'600'000;
  else return std::nullopt;
  if (v > UINT64_MAX / mult) return std::nullopt;
  return v * mult;
}

setting_parser parse_duration_ms(uint64_t* out, uint64_t min_ms, uint64_t max_ms) {
  return [=](std::string_view t) -> std::string {
    auto v = parse_duration(t);
    if (!v) return "expected a duration such as 3600, 90s, 30m or 1h";
    if (*v < min_ms || *v > max_ms) return "must be between " + std::to_string(min_ms) + " and " + std::to_string(max_ms) + " ms";
    *out = *v;
    return {};
  };
}

}  // namespace xerv::core
