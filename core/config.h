#pragma once
// Settings: each is declared once with its name, environment variable, flag,
// default and description, and a parser that writes the typed value. Loading
// applies defaults, then the config file, then the environment, then flags (so
// flags win); the first bad value stops loading with one line naming the setting.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xerv::core {

// Returns an error message, or empty when the text was accepted.
using setting_parser = std::function<std::string(std::string_view text)>;

struct setting {
  std::string key;      // config-file key, e.g. "api_port"
  std::string env;      // e.g. "XERV_API_PORT"; empty: none
  std::string flag;     // e.g. "--api-port"; empty: none
  std::string default_text;
  std::string description;
  setting_parser parse;
};

class settings {
 public:
  void add(setting s);
  const std::vector<setting>& all() const { return _all; }

  // Loads from `config_file` (if non-empty), the environment and `args` (flags
  // as `--name value` or `--name=value`). Arguments that are not known flags are
  // returned in `rest`. Returns an error line, or nothing on success.
  std::optional<std::string> load(const std::vector<std::string>& args, std::vector<std::string>& rest,
                                  const std::string& config_file);

  // Markdown table of every setting (docs and `--help`).
  std::string table() const;

 private:
  std::optional<std::string> apply(const setting& s, std::string_view text, std::string_view source);
  std::vector<setting> _all;
};

// Parsers for the usual value types. Each writes through the pointer on success.
setting_parser parse_uint(uint64_t* out, uint64_t min, uint64_t max);
setting_parser parse_bool(bool* out);
setting_parser parse_text(std::string* out, bool allow_empty);
// Byte sizes: "1048576", "512KiB", "1MiB", "2GiB" (also KB/MB/GB as powers of 1000).
setting_parser parse_bytes(uint64_t* out, uint64_t min, uint64_t max);
std::optional<uint64_t> parse_byte_size(std::string_view text);
// Durations: "3600" (seconds), "500ms", "45s", "30m", "1h"; stored in milliseconds.
setting_parser parse_duration_ms(uint64_t* out, uint64_t min_ms, uint64_t max_ms);
std::optional<uint64_t> parse_duration(std::string_view text);

}  // namespace xerv::core
