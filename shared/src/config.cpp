#include "transfer/config.hpp"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace transfer {
namespace {

std::string help_line(const OptionSpec& spec) {
  std::string text = spec.help;
  if (!spec.env.empty()) text += " [env " + spec.env + "]";
  if (!spec.default_value.empty()) text += " [default: " + spec.default_value + "]";
  return text;
}

}  // namespace

std::variant<OptionValues, EarlyExit> parse_options(const ProgramInfo& program,
                                                    const std::vector<OptionSpec>& specs,
                                                    const std::vector<std::string>& args,
                                                    const EnvLookup& env) {
  CLI::App app(program.description, program.name);
  app.set_version_flag("--version", program.name + " " + program.version);
  app.get_formatter()->column_width(34);
  bool print_markdown = false;
  app.add_flag("--options-markdown", print_markdown, "Print the option table as Markdown and exit")
      ->group("");  // hidden: used to write the README

  std::map<std::string, std::string> given;
  std::map<std::string, bool> switches;
  std::map<std::string, CLI::Option*> options;
  for (const auto& spec : specs) {
    if (spec.is_switch) {
      switches[spec.flag] = false;
      options[spec.flag] = app.add_flag("--" + spec.flag, switches[spec.flag], help_line(spec));
    } else {
      options[spec.flag] = app.add_option("--" + spec.flag, given[spec.flag], help_line(spec));
    }
  }

  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes args reversed
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out;
    std::ostringstream err;
    const int code = app.exit(e, out, err);
    return EarlyExit{code == 0 ? 0 : 2, out.str(), err.str()};
  }
  if (print_markdown) return EarlyExit{0, options_markdown(specs), {}};

  OptionValues result;
  for (const auto& spec : specs) {
    std::string value;
    std::string source = "default";
    if (options[spec.flag]->count() > 0) {
      value = spec.is_switch ? (switches[spec.flag] ? "1" : "") : given[spec.flag];
      source = "flag";
    } else if (auto v = spec.env.empty() ? std::nullopt : env(spec.env); v && !v->empty()) {
      value = *v;
      source = "env";
    } else {
      value = spec.default_value;
    }
    result.values[spec.flag] = value;
    result.sources[spec.flag] = source;
  }
  return result;
}

std::string options_markdown(const std::vector<OptionSpec>& specs) {
  std::string out = "| flag | environment | default | meaning |\n|---|---|---|---|\n";
  for (const auto& spec : specs) {
    out += "| `--" + spec.flag + "` | " + (spec.env.empty() ? "" : "`" + spec.env + "`") + " | " +
           (spec.default_value.empty() ? "" : "`" + spec.default_value + "`") + " | " + spec.help +
           " |\n";
  }
  return out;
}

Result<long long> parse_integer(const std::string& text, const std::string& what, long long min,
                                long long max) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < min || v > max) {
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": expected a whole number from " + std::to_string(min) + " to " +
                          std::to_string(max) + ", got '" + text + "'");
  }
  return v;
}

Result<double> parse_seconds(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0 || v > 86400.0 * 365) {
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": expected a number of seconds, got '" + text + "'");
  }
  return v;
}

SplitSeconds split_seconds(double seconds) {
  const auto sec = static_cast<time_t>(seconds);
  return {sec, static_cast<time_t>((seconds - static_cast<double>(sec)) * 1e6)};
}

Result<unsigned long long> parse_size(const std::string& text, const std::string& what) {
  std::string digits = text;
  unsigned long long mult = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'k': case 'K': mult = 1ULL << 10; break;
      case 'm': case 'M': mult = 1ULL << 20; break;
      case 'g': case 'G': mult = 1ULL << 30; break;
      case 't': case 'T': mult = 1ULL << 40; break;
      default: break;
    }
    if (mult != 1) digits.pop_back();
  }
  auto n = parse_integer(digits, what, 0, (1LL << 62) / static_cast<long long>(mult));
  if (!n) {
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": expected a size like 1048576, 64K, 10M or 2G, got '" + text + "'");
  }
  return static_cast<unsigned long long>(*n) * mult;
}

}  // namespace transfer
