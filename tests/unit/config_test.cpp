#include "transfer/config.hpp"

#include <gtest/gtest.h>

namespace transfer {
namespace {

const std::vector<OptionSpec> kSpecs = {
    {"output-dir", "OUTPUT_DIR", "/default/out", "where"},
    {"port", "SERVER_PORT", "8080", "port"},
    {"once", "", "", "one scan", true},
};
const ProgramInfo kInfo{"prog", "test program", "1.2.3"};

EnvLookup map_env(std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Config, FlagBeatsEnvBeatsDefault) {
  auto r = parse_options(kInfo, kSpecs, {}, map_env({}));
  EXPECT_EQ(std::get<OptionValues>(r).get("output-dir"), "/default/out");
  r = parse_options(kInfo, kSpecs, {}, map_env({{"OUTPUT_DIR", "/env"}}));
  EXPECT_EQ(std::get<OptionValues>(r).get("output-dir"), "/env");
  EXPECT_EQ(std::get<OptionValues>(r).sources.at("output-dir"), "env");
  r = parse_options(kInfo, kSpecs, {"--output-dir", "/flag", "--once"}, map_env({{"OUTPUT_DIR", "/env"}}));
  EXPECT_EQ(std::get<OptionValues>(r).get("output-dir"), "/flag");
  EXPECT_TRUE(std::get<OptionValues>(r).is_set("once"));
}

TEST(Config, HelpListsEveryOptionWithEnvAndDefault) {
  auto r = parse_options(kInfo, kSpecs, {"--help"}, map_env({}));
  const auto& exit = std::get<EarlyExit>(r);
  EXPECT_EQ(exit.code, 0);
  for (const char* s : {"--output-dir", "OUTPUT_DIR", "/default/out", "SERVER_PORT", "8080", "--once"}) {
    EXPECT_NE(exit.out.find(s), std::string::npos) << s;
  }
  auto v = parse_options(kInfo, kSpecs, {"--version"}, map_env({}));
  EXPECT_EQ(std::get<EarlyExit>(v).code, 0);
  EXPECT_NE(std::get<EarlyExit>(v).out.find("1.2.3"), std::string::npos);
  auto bad = parse_options(kInfo, kSpecs, {"--nope"}, map_env({}));
  EXPECT_EQ(std::get<EarlyExit>(bad).code, 2);
}

TEST(Config, TypedValues) {
  EXPECT_EQ(*parse_integer("8080", "P", 0, 65535), 8080);
  EXPECT_FALSE(parse_integer("80x", "P", 0, 65535).ok());
  EXPECT_FALSE(parse_integer("70000", "P", 0, 65535).ok());
  EXPECT_EQ(*parse_size("64K", "S"), 65536ULL);
  EXPECT_EQ(*parse_size("2G", "S"), 2ULL << 30);
  EXPECT_FALSE(parse_size("lots", "S").ok());
  EXPECT_DOUBLE_EQ(*parse_seconds("0.5", "T"), 0.5);
  EXPECT_FALSE(parse_seconds("-1", "T").ok());
}

TEST(Config, SplitsSecondsForTimeoutSetters) {
  EXPECT_EQ(split_seconds(2.5).sec, 2);
  EXPECT_EQ(split_seconds(2.5).usec, 500000);
  EXPECT_EQ(split_seconds(30).usec, 0);
  EXPECT_EQ(split_seconds(0.25).sec, 0);
}

}  // namespace
}  // namespace transfer
