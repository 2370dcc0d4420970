// core/json: parsing into the binary encoding, reading in place, writing back.

#include "core/json.h"

#include <gtest/gtest.h>

using namespace xerv::core;

namespace {

value parse_ok(std::string_view text) {
  auto r = parse_json(text);
  if (auto* e = std::get_if<json_error>(&r)) {
    ADD_FAILURE() << "parse failed at " << e->offset << ": " << e->message << " in " << text;
    return value();
  }
  return std::get<value>(std::move(r));
}

json_error parse_bad(std::string_view text, json_limits limits = {}) {
  auto r = parse_json(text, limits);
  if (auto* e = std::get_if<json_error>(&r)) return *e;
  ADD_FAILURE() << "expected an error for " << text;
  return {};
}

TEST(json, round_trips_compact_text) {
  for (std::string_view doc : {
           R"({"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-2.5})",
           R"([])",
           R"({})",
           R"([[[]],{"x":[{}]}])",
           R"("just a string")",
           R"(42)",
           R"(-7)",
           R"(true)",
           R"(null)",
           R"({"z":1,"a":2,"m":3})",  // insertion order is kept
           R"({"esc":"quote \" backslash \\ newline \n tab \t ctl \u0001"})",
       }) {
    value v = parse_ok(doc);
    EXPECT_EQ(to_json(v.ref()), doc);
  }
}

TEST(json, reads_values_in_place) {
  value v = parse_ok(R"( { "order_id" : "A-1", "amount": 120.5, "qty": 3, "items": [ {"sku":"x"}, {"sku":"y"} ],
                          "vip": true, "note": null, "unicode": "caf\u00e9 \ud83d\ude00" } )");
  value_ref r = v.ref();
  ASSERT_EQ(r.type(), json_type::object);
  EXPECT_EQ(r.size(), 7u);
  EXPECT_EQ(r.find("order_id")->as_string(), "A-1");
  EXPECT_DOUBLE_EQ(r.find("amount")->as_double(), 120.5);
  EXPECT_EQ(r.find("qty")->type(), json_type::integer);
  EXPECT_EQ(r.find("qty")->as_int(), 3);
  EXPECT_DOUBLE_EQ(r.find("qty")->as_double(), 3.0);
  EXPECT_TRUE(r.find("vip")->as_bool());
  EXPECT_TRUE(r.find("note")->is_null());
  EXPECT_FALSE(r.find("missing").has_value());
  value_ref items = *r.find("items");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items.at(1).find("sku")->as_string(), "y");
  EXPECT_EQ(r.find("unicode")->as_string(), "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(r.key_at(0), "order_id");
  EXPECT_EQ(r.encoded_size(), v.bytes().size());
}

TEST(json, numbers) {
  EXPECT_EQ(to_json(parse_ok("9223372036854775807").ref()), "9223372036854775807");
  EXPECT_EQ(parse_ok("-9223372036854775808").ref().as_int(), INT64_MIN);
  // Beyond int64: kept as a double.
  EXPECT_EQ(parse_ok("18446744073709551615").ref().type(), json_type::real);
  EXPECT_EQ(to_json(parse_ok("0.1").ref()), "0.1");
  EXPECT_EQ(to_json(parse_ok("1e300").ref()), "1e+300");
  EXPECT_EQ(to_json(parse_ok("-0.0").ref()), "-0.0");  // "-0" would read back as the integer 0
}

// What write_json writes parses again and writes the same text (json_fuzz's
// invariant; these inputs broke it).
TEST(json, written_numbers_read_back) {
  for (std::string_view doc : {"-0.0", "[-0.0,0.0]", "18446744073709551615", "18446744073709551616.0", "-1e19", "-9.3e18",
                               "9223372036854775808", "9223372036854775808.0", "1e18", "123456789012345678901.5"}) {
    std::string first = to_json(parse_ok(doc).ref());
    value again = parse_ok(first);
    EXPECT_TRUE(equal(parse_ok(doc).ref(), again.ref())) << doc << " -> " << first;
    EXPECT_EQ(to_json(again.ref()), first) << doc;
  }
  EXPECT_EQ(to_json(parse_ok("18446744073709551615").ref()), "1.8446744073709552e+19");
}

// Readers disagree on which of two equal keys wins: such objects are refused,
// at the repeated key.
TEST(json, duplicate_keys_are_refused) {
  auto e = parse_bad(R"({"a":1,"b":2,"a":3})");
  EXPECT_EQ(e.offset, 13u) << e.message;
  EXPECT_NE(e.message.find("duplicate key"), std::string::npos) << e.message;
  EXPECT_EQ(parse_bad(R"({"a":1,"\u0061":2})").offset, 7u);  // equal once unescaped
  EXPECT_EQ(parse_bad(R"([{"x":{"k":1,"k":2}}])").offset, 13u);
  EXPECT_EQ(parse_bad(R"({"b":1,"a":1,"b":2,"a":2})").offset, 13u);  // the first repetition
  parse_ok(R"({"a":{"a":1},"b":[{"a":2},{"a":3}]})");                // one per object is fine
  EXPECT_EQ(parse_bad(R"({"a":{"x":1,"y":2},"a":2})").offset, 19u);  // after a nested object
  // Large objects are sorted rather than compared pairwise: same answer.
  std::string big = "{";
  for (int i = 0; i < 40; ++i) big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  parse_ok(big.substr(0, big.size() - 1) + "}");
  std::string at = big + "\"k7\":0}";
  EXPECT_EQ(parse_bad(at).offset, big.size());
}

TEST(json, malformed_input_reports_the_byte_offset) {
  EXPECT_EQ(parse_bad("{} x").offset, 3u);
  EXPECT_EQ(parse_bad("[1, 2] ]").offset, 7u);
  auto e = parse_bad(R"({"a": tru})");
  EXPECT_EQ(e.offset, 6u) << e.message;
  e = parse_bad(R"({"a" 1})");
  EXPECT_GE(e.offset, 4u) << e.message;
  EXPECT_LE(e.offset, 5u) << e.message;
  parse_bad("");
  parse_bad("[1,2");
  parse_bad(R"({"a":1,})");
  parse_bad(R"("unterminated)");
  parse_bad("nul");
  parse_bad(R"(["\x"])");
  for (const auto& bad : {std::string("[1,2"), std::string("{\"a\":}"), std::string("[01]")}) {
    auto err = parse_bad(bad);
    EXPECT_LE(err.offset, bad.size()) << bad;
    EXPECT_FALSE(err.message.empty()) << bad;
  }
}

TEST(json, limits_on_depth_and_size) {
  std::string deep(65, '[');
  deep += std::string(65, ']');
  auto e = parse_bad(deep);
  EXPECT_NE(e.message.find("nesting deeper than 64"), std::string::npos) << e.message;
  EXPECT_EQ(e.offset, 64u);
  std::string ok(64, '[');
  ok += std::string(64, ']');
  parse_ok(ok);
  json_limits small;
  small.bytes_max = 10;
  EXPECT_NE(parse_bad(R"({"a":"0123456789"})", small).message.find("larger than 10 bytes"), std::string::npos);
}

TEST(json, builder_and_equality) {
  value_builder b;
  b.begin_object();
  b.key("name");
  b.add_string("x");
  b.key("list");
  b.begin_array();
  b.add_int(1);
  b.add_double(2.5);
  b.add_null();
  b.add_bool(false);
  b.end();
  b.key("copy");
  value inner = parse_ok(R"({"k":[1,{"z":true}]})");
  b.add(inner.ref());
  b.end();
  value built = b.finish();
  EXPECT_EQ(to_json(built.ref()), R"({"name":"x","list":[1,2.5,null,false],"copy":{"k":[1,{"z":true}]}})");
  EXPECT_TRUE(equal(built.ref(), parse_ok(R"({"list":[1.0,2.5,null,false],"copy":{"k":[1,{"z":true}]},"name":"x"})").ref()));
  EXPECT_FALSE(equal(built.ref(), parse_ok(R"({"name":"x"})").ref()));
  EXPECT_FALSE(equal(parse_ok("[1,2]").ref(), parse_ok("[2,1]").ref()));
  EXPECT_TRUE(value().ref().is_null());
}

}  // namespace
