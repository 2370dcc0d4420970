// Settings: value parsers, precedence (flags > environment > config file >
// defaults), error lines that name their source, and xerv's own declarations.
// Each test clears the environment variables it may read and restores them after;
// config files are written to a temporary directory and removed.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "app/config.h"
#include "core/config.h"
#include "io/log.h"

using namespace xerv;

namespace {

// A file under $TMPDIR (or /tmp), removed when the object goes away.
class temp_file {
 public:
  explicit temp_file(const std::string& content) {
    const char* dir = getenv("TMPDIR");
    _path = std::string(dir && *dir ? dir : "/tmp") + "/xerv_config_test_XXXXXX.yaml";
    int fd = mkstemps(_path.data(), 5);
    EXPECT_GE(fd, 0);
    if (fd < 0) return;
    FILE* f = fdopen(fd, "w");
    fwrite(content.data(), 1, content.size(), f);
    fclose(f);
  }
  ~temp_file() { unlink(_path.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  const std::string& path() const { return _path; }

 private:
  std::string _path;
};

struct demo {
  uint64_t port = 0;
  bool on = false;
  std::string name;
  uint64_t size = 0;
  std::string hidden;
};

// `d` must outlive the returned settings: the parsers write through it.
core::settings demo_settings(demo& d) {
  core::settings s;
  s.add({"port", "XERV_TEST_PORT", "--port", "80", "a port", core::parse_uint(&d.port, 1, 65535)});
  s.add({"on", "XERV_TEST_ON", "--on", "false", "a switch", core::parse_bool(&d.on)});
  s.add({"name", "XERV_TEST_NAME", "--name", "default", "a name", core::parse_text(&d.name, false)});
  s.add({"size", "XERV_TEST_SIZE", "--size", "1MiB", "a size", core::parse_bytes(&d.size, 1, uint64_t{1} << 30)});
  s.add({"hidden", "", "", "", "no env, no flag", core::parse_text(&d.hidden, true)});
  return s;
}

// Clears every variable a test here may read and puts the old values back after.
class config_env : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> names = {"XERV_TEST_PORT", "XERV_TEST_ON", "XERV_TEST_NAME", "XERV_TEST_SIZE"};
    app::config scratch;
    core::settings declared = app::declare_settings(scratch);
    for (const core::setting& s : declared.all())
      if (!s.env.empty()) names.push_back(s.env);
    for (const std::string& n : names) {
      const char* v = getenv(n.c_str());
      _saved.push_back({n, v ? std::optional<std::string>(v) : std::nullopt});
      unsetenv(n.c_str());
    }
  }
  void TearDown() override {
    for (const auto& [n, v] : _saved) {
      if (v) setenv(n.c_str(), v->c_str(), 1);
      else unsetenv(n.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> _saved;
};

std::optional<std::string> load_demo(demo& d, const std::vector<std::string>& args, const std::string& file = "",
                                     std::vector<std::string>* rest_out = nullptr) {
  core::settings s = demo_settings(d);
  std::vector<std::string> rest;
  auto err = s.load(args, rest, file);
  if (rest_out) *rest_out = rest;
  return err;
}

std::optional<std::string> load_app(app::config& c, const std::vector<std::string>& args,
                                    std::vector<std::string>* rest_out = nullptr) {
  std::vector<std::string> rest;
  auto err = app::load_config(c, args, rest);
  if (rest_out) *rest_out = rest;
  return err;
}

void expect_one_line(const std::optional<std::string>& err) {
  ASSERT_TRUE(err.has_value());
  EXPECT_FALSE(err->empty());
  EXPECT_EQ(err->find('\n'), std::string::npos) << *err;
}

bool contains(const std::optional<std::string>& s, const std::string& part) {
  return s && s->find(part) != std::string::npos;
}

}  // namespace

// ---- value parsers ----

TEST(config_parsers, uint) {
  uint64_t v = 7;
  auto p = core::parse_uint(&v, 1, 100);
  EXPECT_EQ(p("42"), "");
  EXPECT_EQ(v, 42u);
  EXPECT_EQ(p("1"), "");
  EXPECT_EQ(p("100"), "");
  EXPECT_EQ(v, 100u);
  for (const char* bad : {"", "0", "101", "-1", "1x", " 1", "1 ", "+1", "0x10", "18446744073709551616"}) {
    SCOPED_TRACE(bad);
    EXPECT_NE(p(bad), "");
  }
  EXPECT_EQ(v, 100u);  // unchanged by rejected values
  EXPECT_EQ(p("0"), "must be between 1 and 100");
  EXPECT_EQ(p("x"), "expected an integer between 1 and 100");
}

TEST(config_parsers, boolean) {
  bool b = false;
  auto p = core::parse_bool(&b);
  for (const char* yes : {"true", "1", "yes", "on"}) {
    b = false;
    EXPECT_EQ(p(yes), "");
    EXPECT_TRUE(b) << yes;
  }
  for (const char* no : {"false", "0", "no", "off"}) {
    b = true;
    EXPECT_EQ(p(no), "");
    EXPECT_FALSE(b) << no;
  }
  b = true;
  for (const char* bad : {"", "TRUE", "2", "y", "enabled"}) EXPECT_EQ(p(bad), "expected true or false") << bad;
  EXPECT_TRUE(b);
}

TEST(config_parsers, text) {
  std::string s = "old";
  EXPECT_EQ(core::parse_text(&s, false)("new"), "");
  EXPECT_EQ(s, "new");
  EXPECT_EQ(core::parse_text(&s, false)(""), "must not be empty");
  EXPECT_EQ(s, "new");
  EXPECT_EQ(core::parse_text(&s, true)(""), "");
  EXPECT_EQ(s, "");
}

TEST(config_parsers, byte_sizes) {
  EXPECT_EQ(core::parse_byte_size("1MiB"), uint64_t{1} << 20);
  EXPECT_EQ(core::parse_byte_size("512KiB"), uint64_t{512} << 10);
  EXPECT_EQ(core::parse_byte_size("1048576"), uint64_t{1048576});
  EXPECT_EQ(core::parse_byte_size("2GiB"), uint64_t{2} << 30);
  EXPECT_EQ(core::parse_byte_size("0"), uint64_t{0});
  EXPECT_EQ(core::parse_byte_size("10B"), uint64_t{10});
  EXPECT_EQ(core::parse_byte_size("4M"), uint64_t{4} << 20);
  EXPECT_EQ(core::parse_byte_size("8k"), uint64_t{8} << 10);
  EXPECT_EQ(core::parse_byte_size("1KB"), uint64_t{1000});
  EXPECT_EQ(core::parse_byte_size("1kB"), uint64_t{1000});
  EXPECT_EQ(core::parse_byte_size("3MB"), uint64_t{3'000'000});
  EXPECT_EQ(core::parse_byte_size("1GB"), uint64_t{1'000'000'000});
  EXPECT_EQ(core::parse_byte_size("1 MiB"), uint64_t{1} << 20);
  for (const char* bad : {"1XB", "", "MiB", "-1", "1.5MiB", "1mib", "1 MiB ", "1MiBs", " 1", "99999999999999999999",
                          "17179869184GiB"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(core::parse_byte_size(bad), std::nullopt);
  }
  EXPECT_EQ(core::parse_byte_size("17179869183GiB"), uint64_t{17179869183} << 30);
}

TEST(config_parsers, bytes_setting) {
  uint64_t v = 0;
  auto p = core::parse_bytes(&v, 1, uint64_t{1} << 20);
  EXPECT_EQ(p("512KiB"), "");
  EXPECT_EQ(v, uint64_t{512} << 10);
  EXPECT_EQ(p("1XB"), "expected a size such as 1048576, 512KiB or 1MiB");
  EXPECT_EQ(p("2MiB"), "must be between 1 and 1048576 bytes");
  EXPECT_EQ(p("0"), "must be between 1 and 1048576 bytes");
  EXPECT_EQ(v, uint64_t{512} << 10);
}

TEST(config_parsers, log_level) {
  using io::log_level;
  EXPECT_EQ(io::parse_log_level("debug"), log_level::debug);
  EXPECT_EQ(io::parse_log_level("trace"), log_level::debug);
  EXPECT_EQ(io::parse_log_level("info"), log_level::info);
  EXPECT_EQ(io::parse_log_level("warn"), log_level::warn);
  EXPECT_EQ(io::parse_log_level("warning"), log_level::warn);
  EXPECT_EQ(io::parse_log_level("error"), log_level::error);
  EXPECT_EQ(io::parse_log_level(" error "), log_level::error);
  EXPECT_EQ(io::parse_log_level("xerv=debug"), log_level::debug);
  EXPECT_EQ(io::parse_log_level("warn,xerv=debug"), log_level::debug);
  EXPECT_EQ(io::parse_log_level("xerv=error,warn"), log_level::error);
  EXPECT_EQ(io::parse_log_level("hyper=trace, xerv = warn"), log_level::warn);
  EXPECT_EQ(io::parse_log_level("hyper=trace,debug"), log_level::debug);
  // Directives for other crates only: the default level.
  EXPECT_EQ(io::parse_log_level("hyper=trace"), log_level::info);
  for (const char* bad : {"", ",", "loud", "DEBUG", "xerv=loud", "debug,loud"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(io::parse_log_level(bad), std::nullopt);
  }
}

TEST(config_parsers, log_format) {
  EXPECT_EQ(io::parse_log_format("pretty"), io::log_format::pretty);
  EXPECT_EQ(io::parse_log_format("compact"), io::log_format::compact);
  EXPECT_EQ(io::parse_log_format("json"), io::log_format::json);
  for (const char* bad : {"", "JSON", "text", "json "}) EXPECT_EQ(io::parse_log_format(bad), std::nullopt) << bad;
}

// ---- core::settings ----

TEST_F(config_env, defaults) {
  demo d;
  EXPECT_EQ(load_demo(d, {}), std::nullopt);
  EXPECT_EQ(d.port, 80u);
  EXPECT_FALSE(d.on);
  EXPECT_EQ(d.name, "default");
  EXPECT_EQ(d.size, uint64_t{1} << 20);
}

TEST_F(config_env, precedence_flags_env_file_defaults) {
  temp_file file("port: 81\nname: from-file\n");
  setenv("XERV_TEST_PORT", "82", 1);
  {
    demo d;
    EXPECT_EQ(load_demo(d, {"--port", "83"}, file.path()), std::nullopt);
    EXPECT_EQ(d.port, 83u);             // flag over environment
    EXPECT_EQ(d.name, "from-file");     // file over default
    EXPECT_EQ(d.size, uint64_t{1} << 20);  // default
  }
  {
    demo d;
    EXPECT_EQ(load_demo(d, {}, file.path()), std::nullopt);
    EXPECT_EQ(d.port, 82u);  // environment over file
  }
  unsetenv("XERV_TEST_PORT");
  {
    demo d;
    EXPECT_EQ(load_demo(d, {}, file.path()), std::nullopt);
    EXPECT_EQ(d.port, 81u);  // file over default
  }
  {
    demo d;
    EXPECT_EQ(load_demo(d, {}), std::nullopt);
    EXPECT_EQ(d.port, 80u);
  }
}

TEST_F(config_env, flag_forms) {
  {
    demo d;
    EXPECT_EQ(load_demo(d, {"--port=90", "--on", "true", "--name=a=b"}), std::nullopt);
    EXPECT_EQ(d.port, 90u);
    EXPECT_TRUE(d.on);
    EXPECT_EQ(d.name, "a=b");
  }
  {
    demo d;
    EXPECT_EQ(load_demo(d, {"--port", "91", "--port=92"}), std::nullopt);
    EXPECT_EQ(d.port, 92u);  // the last occurrence wins
  }
  {
    demo d;
    // The value after a flag is taken as is, even if it looks like a flag.
    EXPECT_EQ(load_demo(d, {"--name", "--port"}), std::nullopt);
    EXPECT_EQ(d.name, "--port");
    EXPECT_EQ(d.port, 80u);
  }
  {
    demo d;
    EXPECT_EQ(load_demo(d, {"--port"}), "missing value for --port");
  }
}

TEST_F(config_env, unknown_flags_are_returned_in_rest) {
  demo d;
  std::vector<std::string> rest;
  EXPECT_EQ(load_demo(d, {"serve", "--verbose", "x", "--port", "9", "--portx=1", "-p", "--hidden=1", "--size=2KiB"}, "",
                      &rest),
            std::nullopt);
  EXPECT_EQ(rest, (std::vector<std::string>{"serve", "--verbose", "x", "--portx=1", "-p", "--hidden=1"}));
  EXPECT_EQ(d.port, 9u);
  EXPECT_EQ(d.size, uint64_t{2} << 10);
}

TEST_F(config_env, bad_values_name_their_source) {
  {
    demo d;
    auto err = load_demo(d, {"--port=0"});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid --port=0: must be between 1 and 65535");
  }
  {
    demo d;
    auto err = load_demo(d, {"--size", "1XB"});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid --size=1XB: expected a size such as 1048576, 512KiB or 1MiB");
  }
  {
    setenv("XERV_TEST_ON", "maybe", 1);
    demo d;
    auto err = load_demo(d, {});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid XERV_TEST_ON=maybe: expected true or false");
    unsetenv("XERV_TEST_ON");
  }
  {
    temp_file file("name: ok\nport: lots\n");
    demo d;
    auto err = load_demo(d, {}, file.path());
    expect_one_line(err);
    EXPECT_EQ(err, "invalid " + file.path() + ": port=lots: expected an integer between 1 and 65535");
  }
}

TEST_F(config_env, bad_value_in_a_lower_source_stops_loading_even_if_overridden) {
  // Every source is validated in turn, so a bad environment value is reported even
  // when a flag sets the same setting.
  setenv("XERV_TEST_PORT", "nope", 1);
  demo d;
  auto err = load_demo(d, {"--port=5"});
  EXPECT_TRUE(contains(err, "XERV_TEST_PORT")) << err.value_or("");
}

TEST_F(config_env, unknown_key_in_file_names_file_and_line) {
  temp_file file("# settings\nport: 81\n\nbogus_key: 1\n");
  demo d;
  auto err = load_demo(d, {}, file.path());
  expect_one_line(err);
  EXPECT_EQ(err, "config file " + file.path() + ":4: unknown setting 'bogus_key'");
}

TEST_F(config_env, malformed_files) {
  {
    temp_file file("port: [1, 2]\n");
    demo d;
    auto err = load_demo(d, {}, file.path());
    expect_one_line(err);
    EXPECT_EQ(err, "config file " + file.path() + ": setting 'port' must be a single value");
  }
  {
    temp_file file("- port\n- name\n");
    demo d;
    auto err = load_demo(d, {}, file.path());
    expect_one_line(err);
    EXPECT_EQ(err, "config file " + file.path() + ": expected a map of settings");
  }
  {
    temp_file file("port: 81\nname: [unclosed\n");
    demo d;
    auto err = load_demo(d, {}, file.path());
    expect_one_line(err);
    EXPECT_TRUE(contains(err, "config file " + file.path() + ": ")) << *err;
    EXPECT_TRUE(contains(err, "line")) << *err;
  }
  {
    demo d;
    auto err = load_demo(d, {}, "/nonexistent/xerv.yaml");
    expect_one_line(err);
    EXPECT_EQ(err, "cannot read config file /nonexistent/xerv.yaml");
  }
  {
    temp_file file("");  // an empty file sets nothing
    demo d;
    EXPECT_EQ(load_demo(d, {}, file.path()), std::nullopt);
    EXPECT_EQ(d.port, 80u);
  }
}

TEST_F(config_env, table_lists_every_setting) {
  demo d;
  core::settings s = demo_settings(d);
  std::string t = s.table();
  EXPECT_NE(t.find("| `XERV_TEST_PORT` | `--port` | `port` | `80` | a port |\n"), std::string::npos) << t;
  EXPECT_NE(t.find("| `-` | `-` | `hidden` | `(unset)` | no env, no flag |\n"), std::string::npos) << t;
}

// ---- xerv's settings ----

TEST_F(config_env, app_defaults) {
  app::config c;
  std::vector<std::string> rest;
  EXPECT_EQ(load_app(c, {}, &rest), std::nullopt);
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(c.api_host, "0.0.0.0");
  EXPECT_EQ(c.api_port, 8080u);
  EXPECT_EQ(c.data_dir, "/tmp/xerv");
  EXPECT_EQ(c.shards, 0u);
  EXPECT_TRUE(c.metrics_enabled);
  EXPECT_EQ(c.metrics_port, 0u);
  EXPECT_EQ(c.log_format, io::log_format::pretty);
  EXPECT_EQ(c.log_level, io::log_level::info);
  EXPECT_EQ(c.wal_sync, "always");
  EXPECT_EQ(c.pipelines_dir, "");
  EXPECT_EQ(c.max_body_bytes, uint64_t{1} << 20);
  EXPECT_EQ(c.header_timeout_ms, 10'000u);
  EXPECT_EQ(c.idle_timeout_ms, 60'000u);
  EXPECT_EQ(c.connections_max, 10'000u);
  EXPECT_EQ(c.shutdown_timeout_ms, 30'000u);
  EXPECT_FALSE(c.debug_routes);
}

TEST_F(config_env, app_precedence) {
  temp_file file("api_port: 9000\nshards: 2\nwal_sync: batch\nmax_body_bytes: 2MiB\n");
  setenv("XERV_API_PORT", "9001", 1);
  setenv("XERV_WAL_SYNC", "none", 1);
  app::config c;
  EXPECT_EQ(load_app(c, {"--config", file.path(), "--api-port", "9002"}), std::nullopt);
  EXPECT_EQ(c.api_port, 9002u);                   // flag
  EXPECT_EQ(c.wal_sync, "none");                  // environment over file
  EXPECT_EQ(c.shards, 2u);                        // file over default
  EXPECT_EQ(c.max_body_bytes, uint64_t{2} << 20); // file
  EXPECT_EQ(c.data_dir, "/tmp/xerv");             // default

  app::config d;
  EXPECT_EQ(load_app(d, {"--config=" + file.path()}), std::nullopt);
  EXPECT_EQ(d.api_port, 9001u);
  EXPECT_EQ(d.shards, 2u);
}

TEST_F(config_env, app_flags_and_rest) {
  app::config c;
  std::vector<std::string> rest;
  EXPECT_EQ(load_app(c,
                     {"serve", "--api-host=127.0.0.1", "--shards", "4", "--verbose", "--metrics-port=9100",
                      "--log-format", "json", "--pipelines", "/srv/flows", "--debug-routes=yes", "--rust-log=debug"},
                     &rest),
            std::nullopt);
  EXPECT_EQ(rest, (std::vector<std::string>{"serve", "--verbose", "--rust-log=debug"}));
  EXPECT_EQ(c.api_host, "127.0.0.1");
  EXPECT_EQ(c.shards, 4u);
  EXPECT_EQ(c.metrics_port, 9100u);
  EXPECT_EQ(c.log_format, io::log_format::json);
  EXPECT_EQ(c.pipelines_dir, "/srv/flows");
  EXPECT_TRUE(c.debug_routes);
}

TEST_F(config_env, app_config_flag_needs_a_value) {
  app::config c;
  EXPECT_EQ(load_app(c, {"--config"}), "missing value for --config");
}

TEST_F(config_env, app_bad_values) {
  {
    app::config c;
    auto err = load_app(c, {"--api-port=70000"});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid --api-port=70000: must be between 0 and 65535");
  }
  {
    app::config c;
    auto err = load_app(c, {"--metrics-port", "0"});
    expect_one_line(err);
    EXPECT_TRUE(contains(err, "--metrics-port")) << *err;
  }
  {
    setenv("XERV_SHARDS", "many", 1);
    app::config c;
    auto err = load_app(c, {});
    expect_one_line(err);
    EXPECT_TRUE(contains(err, "XERV_SHARDS=many")) << *err;
    unsetenv("XERV_SHARDS");
  }
  {
    temp_file file("max_body_bytes: 1XB\n");
    app::config c;
    auto err = load_app(c, {"--config", file.path()});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid " + file.path() + ": max_body_bytes=1XB: expected a size such as 1048576, 512KiB or 1MiB");
  }
  {
    temp_file file("api_port: 1\nlisten: 1\n");
    app::config c;
    auto err = load_app(c, {"--config", file.path()});
    expect_one_line(err);
    EXPECT_EQ(err, "config file " + file.path() + ":2: unknown setting 'listen'");
  }
  {
    app::config c;
    auto err = load_app(c, {"--wal-sync=sometimes"});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid --wal-sync=sometimes: expected always, batch or none");
  }
  {
    app::config c;
    auto err = load_app(c, {"--log-format=xml"});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid --log-format=xml: expected pretty, compact or json");
  }
  {
    app::config c;
    auto err = load_app(c, {"--api-host="});
    expect_one_line(err);
    EXPECT_EQ(err, "invalid --api-host=: must not be empty");
  }
}

TEST_F(config_env, app_sizes) {
  struct tcase {
    const char* text;
    uint64_t bytes;
  };
  for (const tcase& t : {tcase{"1MiB", 1 << 20}, tcase{"512KiB", 512 << 10}, tcase{"1048576", 1048576},
                         tcase{"2GiB", uint64_t{2} << 30}}) {
    SCOPED_TRACE(t.text);
    app::config c;
    EXPECT_EQ(load_app(c, {std::string("--max-body-bytes=") + t.text}), std::nullopt);
    EXPECT_EQ(c.max_body_bytes, t.bytes);
  }
  setenv("XERV_MAX_BODY_BYTES", "512KiB", 1);
  app::config c;
  EXPECT_EQ(load_app(c, {}), std::nullopt);
  EXPECT_EQ(c.max_body_bytes, uint64_t{512} << 10);
  for (const char* bad : {"1XB", "0", "3GiB"}) {
    app::config e;
    auto err = load_app(e, {std::string("--max-body-bytes=") + bad});
    expect_one_line(err);
    EXPECT_TRUE(contains(err, std::string("--max-body-bytes=") + bad)) << *err;
  }
}

TEST_F(config_env, app_metrics_port_may_be_unset) {
  setenv("XERV_METRICS_PORT", "", 1);
  app::config c;
  EXPECT_EQ(load_app(c, {}), std::nullopt);
  EXPECT_EQ(c.metrics_port, 0u);
  setenv("XERV_METRICS_PORT", "9100", 1);
  app::config d;
  EXPECT_EQ(load_app(d, {}), std::nullopt);
  EXPECT_EQ(d.metrics_port, 9100u);
}

TEST_F(config_env, rust_log_sets_the_level) {
  setenv("RUST_LOG", "xerv=debug", 1);
  app::config c;
  EXPECT_EQ(load_app(c, {}), std::nullopt);
  EXPECT_EQ(c.log_level, io::log_level::debug);

  setenv("RUST_LOG", "warn,tokio=trace", 1);
  app::config d;
  EXPECT_EQ(load_app(d, {}), std::nullopt);
  EXPECT_EQ(d.log_level, io::log_level::warn);
}

TEST_F(config_env, xerv_log_wins_over_rust_log) {
  setenv("RUST_LOG", "xerv=debug", 1);
  setenv("XERV_LOG", "warn", 1);
  app::config c;
  EXPECT_EQ(load_app(c, {}), std::nullopt);
  EXPECT_EQ(c.log_level, io::log_level::warn);

  // And the flag wins over both.
  app::config d;
  EXPECT_EQ(load_app(d, {"--log=error"}), std::nullopt);
  EXPECT_EQ(d.log_level, io::log_level::error);
}

TEST_F(config_env, rust_log_wins_over_the_config_file) {
  temp_file file("log: error\n");
  setenv("RUST_LOG", "xerv=debug", 1);
  app::config c;
  EXPECT_EQ(load_app(c, {"--config", file.path()}), std::nullopt);
  EXPECT_EQ(c.log_level, io::log_level::debug);
}

TEST_F(config_env, log_level_errors) {
  setenv("RUST_LOG", "xerv=loud", 1);
  app::config c;
  auto err = load_app(c, {});
  expect_one_line(err);
  EXPECT_EQ(err, "invalid RUST_LOG=xerv=loud: expected debug, info, warn or error (or xerv=LEVEL)");
  unsetenv("RUST_LOG");

  app::config d;
  err = load_app(d, {"--log", "verbose"});
  expect_one_line(err);
  EXPECT_TRUE(contains(err, "--log=verbose")) << *err;
}

TEST_F(config_env, every_app_setting_has_a_key_env_and_description) {
  app::config c;
  core::settings s = app::declare_settings(c);
  ASSERT_FALSE(s.all().empty());
  for (const core::setting& one : s.all()) {
    SCOPED_TRACE(one.key);
    EXPECT_FALSE(one.key.empty());
    EXPECT_FALSE(one.env.empty());
    EXPECT_FALSE(one.description.empty());
    EXPECT_TRUE(one.parse);
    for (const core::setting& other : s.all()) {
      if (&other == &one) continue;
      EXPECT_NE(other.key, one.key);
      EXPECT_NE(other.env, one.env);
      if (!one.flag.empty()) {
        EXPECT_NE(other.flag, one.flag);
      }
    }
  }
}
