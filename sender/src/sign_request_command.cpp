#include "sign_request_command.hpp"

#include <openssl/rand.h>

#include "destinations.hpp"
#include "sender_config.hpp"
#include "transfer/key_file.hpp"
#include "transfer/sha256.hpp"
#include "transfer/upload_signature.hpp"

namespace transfer::sender {
namespace {

constexpr const char* kUsage =
    "usage: sender sign-request [--method GET] [--destination NAME] TARGET [sender options]\n";

bool is_token(const std::string& s) {
  return !s.empty() && s.size() <= 16 &&
         s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string::npos;
}

}  // namespace

std::optional<int> run_sign_request(const std::vector<std::string>& args, const EnvLookup& env,
                                    uint64_t now_unix_seconds, std::ostream& out,
                                    std::ostream& err) {
  if (args.empty() || args[0] != "sign-request") return std::nullopt;
  std::string method = "GET";
  std::string destination;
  std::string target;
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--method" || a == "--destination") && i + 1 < args.size()) {
      (a == "--method" ? method : destination) = args[++i];
    } else if (target.empty() && !a.empty() && a[0] == '/') {
      target = a;
    } else {
      rest.push_back(a);
    }
  }
  if (target.empty() || !is_token(method) || target.find_first_of(" \r\n\t") != std::string::npos) {
    err << "sender sign-request: give the request target as sent, starting with '/'\n" << kUsage;
    return 2;
  }
  auto loaded = load_sender_config(rest, env);
  if (auto* exit = std::get_if<EarlyExit>(&loaded)) {
    out << exit->out;
    err << exit->err;
    return exit->code;
  }
  const auto& config = std::get<SenderConfig>(loaded);
  std::string key_path = config.key_path;
  if (!destination.empty()) {
    if (config.destinations_file.empty()) {
      err << "sender sign-request: --destination needs DESTINATIONS_FILE\n";
      return 2;
    }
    auto destinations = load_destinations_file(config.destinations_file, config);
    if (!destinations) {
      err << "sender sign-request: " << destinations.error().message << "\n";
      return 1;
    }
    key_path.clear();
    for (const auto& d : *destinations) {
      if (d.name == destination) key_path = d.key_file;
    }
    if (key_path.empty()) {
      err << "sender sign-request: no destination named " << destination << "\n";
      return 2;
    }
  }
  auto keys = load_key_file(key_path);
  if (!keys || keys->empty()) {
    err << "sender sign-request: " << (keys ? key_path + ": no key" : keys.error().message) << "\n";
    return 1;
  }
  auto signing_key = derive_upload_signing_key(keys->front());
  if (!signing_key) {
    err << "sender sign-request: " << signing_key.error().message << "\n";
    return 1;
  }
  uint8_t nonce[8];
  RAND_bytes(nonce, sizeof nonce);
  const std::string transfer_id = to_hex(nonce, sizeof nonce);
  const SignedHead head{method, target, 0, "", "", transfer_id};
  out << "X-Transfer-Id: " << transfer_id << "\n"
      << kSignatureHeader << ": " << sign_upload_head(*signing_key, head, now_unix_seconds) << "\n";
  return 0;
}

}  // namespace transfer::sender
