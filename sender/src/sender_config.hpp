#pragma once
// The sender's options: one table for flags, environment and --help.

#include <string>
#include <variant>
#include <vector>

#include "transfer/config.hpp"

namespace transfer::sender {

struct SenderConfig {
  std::string input_dir;
  std::string key_path;
  double scan_interval_s = 5;
  std::string status_db_path;
  std::string receiver_address;
  int receiver_port = 8080;
  std::string receiver_uri;
  std::string log_level;
  size_t max_depth = 512;
  double connect_timeout_s = 10;
  double io_timeout_s = 60;
  bool once = false;
};

const std::vector<OptionSpec>& sender_options();
std::variant<SenderConfig, EarlyExit> load_sender_config(const std::vector<std::string>& args,
                                                         const EnvLookup& env);

}  // namespace transfer::sender
