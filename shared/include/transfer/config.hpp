#pragma once
// One option table per program drives the command line (CLI11), the environment lookup and the
// help text: a flag beats its environment variable, which beats the default. The environment is
// passed in as a lookup function (tests use a map; main uses the process environment).

#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "transfer/result.hpp"

namespace transfer {

struct OptionSpec {
  std::string flag;           // long flag without dashes: "output-dir"
  std::string env;            // environment variable, or empty for a flag-only option
  std::string default_value;  // as text; empty means no default
  std::string help;
  bool is_switch = false;     // a boolean flag taking no value (like --once)
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The resolved value of every option, by flag name (switches: "1" when set, "" otherwise).
struct OptionValues {
  std::map<std::string, std::string> values;
  std::map<std::string, std::string> sources;  // flag name -> "flag" | "env" | "default"
  const std::string& get(const std::string& flag) const { return values.at(flag); }
  bool is_set(const std::string& flag) const { return !values.at(flag).empty(); }
};

// What main should do when the command line asks to stop early (--help, --version, an error).
struct EarlyExit {
  int code;
  std::string out;  // for stdout
  std::string err;  // for stderr
};

struct ProgramInfo {
  std::string name;
  std::string description;
  std::string version;
};

std::variant<OptionValues, EarlyExit> parse_options(const ProgramInfo& program,
                                                    const std::vector<OptionSpec>& specs,
                                                    const std::vector<std::string>& args,
                                                    const EnvLookup& env);

// The option table as a Markdown table (for the README): flag, env, default, meaning.
std::string options_markdown(const std::vector<OptionSpec>& specs);

// Typed conversions with errors that name the option.
Result<long long> parse_integer(const std::string& text, const std::string& what, long long min,
                                long long max);
Result<double> parse_seconds(const std::string& text, const std::string& what);
// Seconds as cpp-httplib's timeout setters take them: whole seconds and the microseconds left.
struct SplitSeconds {
  time_t sec = 0;
  time_t usec = 0;
};
SplitSeconds split_seconds(double seconds);
// Sizes: "1048576", "64K", "10M", "2G" (binary multiples).
Result<unsigned long long> parse_size(const std::string& text, const std::string& what);

}  // namespace transfer
