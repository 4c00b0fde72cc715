#include "sender_admin.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <set>

#include "outbox_store.hpp"
#include "sender_config.hpp"
#include "sender_service.hpp"
#include "transfer/file_util.hpp"

namespace transfer::sender {
namespace {

constexpr const char* kUsage =
    "usage: sender status [--json] [options]\n"
    "       sender retry <NAME|--all-failed> [options]\n"
    "       sender forget <NAME> [options]\n"
    "       sender verify [--json] [options]\n"
    "options are the daemon's (see sender --help), e.g. --status-db-path or STATUS_DB_PATH\n";

struct Command {
  std::string verb;
  std::string name;  // retry/forget target
  bool json = false;
  bool all_failed = false;
  SenderConfig config;
};

nlohmann::json entry_json(const OutboxEntry& e) {
  return {{"name", e.name},
          {"sha256", e.sha256},
          {"state", std::string(to_string(e.state))},
          {"attempts", e.attempts},
          {"error", e.last_error},
          {"first_seen_at", e.first_seen_at},
          {"updated_at", e.updated_at},
          {"receiver_status", e.receiver_status},
          {"quarantine_path", e.quarantine_path}};
}

std::string dump(const nlohmann::json& j) { return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"; }

bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

int status(Command& c, OutboxStore& store, std::ostream& out, std::ostream& err) {
  auto counts = store.counts();
  auto pending = store.in_state(OutboxState::kPending);
  auto failed = store.in_state(OutboxState::kFailed);
  auto errors = store.recent_errors(5);
  if (!counts || !pending || !failed || !errors) {
    err << "sender status: " << (!counts ? counts.error() : !pending ? pending.error() : !failed ? failed.error() : errors.error()).message << "\n";
    return 1;
  }
  std::optional<OutboxEntry> oldest;
  for (const auto* list : {&*pending, &*failed}) {
    for (const auto& e : *list) {
      if (!oldest || e.first_seen_at < oldest->first_seen_at) oldest = e;
    }
  }
  if (c.json) {
    nlohmann::json j;
    j["database"] = c.config.state_db_file();
    j["counts"] = nlohmann::json::object();
    for (const auto& [state, n] : *counts) j["counts"][std::string(to_string(state))] = n;
    j["oldest_pending"] = oldest ? nlohmann::json{{"name", oldest->name}, {"since", oldest->first_seen_at}} : nlohmann::json(nullptr);
    j["last_errors"] = nlohmann::json::array();
    for (const auto& e : *errors) j["last_errors"].push_back(entry_json(e));
    out << dump(j);
    return 0;
  }
  out << "state database " << c.config.state_db_file() << "\n\n";
  out << fmt::format("{:<12} {:>8}\n", "STATE", "FILES");
  for (const auto& [state, n] : *counts) out << fmt::format("{:<12} {:>8}\n", to_string(state), n);
  out << "\noldest pending: " << (oldest ? oldest->name + " (seen " + oldest->first_seen_at + ")" : "none") << "\n";
  out << "\nlast errors:" << (errors->empty() ? " none\n" : "\n");
  if (!errors->empty()) {
    out << fmt::format("{:<24} {:<11} {:>8}  {:<28} {}\n", "UPDATED", "STATE", "ATTEMPTS", "FILE", "ERROR");
    for (const auto& e : *errors) {
      out << fmt::format("{:<24} {:<11} {:>8}  {:<28} {}\n", e.updated_at, to_string(e.state), e.attempts, e.name,
                         e.last_error.substr(0, 200));
    }
  }
  return 0;
}

// Back to pending (a moved-away quarantined file is moved back first).
Status retry_one(const Command& c, OutboxStore& store, const OutboxEntry& e, std::ostream& out) {
  if (e.state == OutboxState::kQuarantined && !e.quarantine_path.empty()) {
    const std::string back = c.config.input_dir + "/" + e.name;
    struct stat st {};
    if (::lstat(back.c_str(), &st) == 0) {
      return make_error(ErrorCode::kConflict, e.name + ": cannot move " + e.quarantine_path + " back: " + back +
                                                  " exists (move or remove one of them first)");
    }
    if (::lstat(e.quarantine_path.c_str(), &st) != 0) {
      return make_error(ErrorCode::kIo, e.name + ": the quarantined copy " + e.quarantine_path +
                                                  " is gone; use `sender forget " + e.name + "` to drop its record");
    }
    if (auto moved = move_file(e.quarantine_path, back); !moved) return moved;
    ::unlink((e.quarantine_path + ".reason").c_str());
    out << e.name << ": moved back from " << e.quarantine_path << "\n";
  }
  if (auto st = store.reset(e.name, e.sha256); !st) return st;
  out << e.name << ": " << to_string(e.state) << " -> pending (sent again at the next pass)\n";
  return ok_status();
}

int retry(Command& c, OutboxStore& store, std::ostream& out, std::ostream& err) {
  std::vector<OutboxEntry> targets;
  auto add = [&](Result<std::vector<OutboxEntry>> rows) -> bool {
    if (!rows) {
      err << "sender retry: " << rows.error().message << "\n";
      return false;
    }
    for (auto& e : *rows) {
      if (e.state == OutboxState::kFailed || e.state == OutboxState::kQuarantined) targets.push_back(std::move(e));
    }
    return true;
  };
  if (c.all_failed) {
    if (!add(store.in_state(OutboxState::kFailed)) || !add(store.in_state(OutboxState::kQuarantined))) return 1;
    if (targets.empty()) {
      out << "nothing to retry: no failed or quarantined file\n";
      return 0;
    }
  } else {
    if (!add(store.by_name(c.name))) return 1;
    if (targets.empty()) {
      err << "sender retry: no failed or quarantined file named '" << c.name << "' (see `sender status`)\n";
      return 1;
    }
  }
  int code = 0;
  for (const auto& e : targets) {
    if (auto st = retry_one(c, store, e, out); !st) {
      err << "sender retry: " << st.error().message << "\n";
      code = 1;
    }
  }
  return code;
}

int forget(Command& c, OutboxStore& store, std::ostream& out, std::ostream& err) {
  auto n = store.forget(c.name);
  if (!n) {
    err << "sender forget: " << n.error().message << "\n";
    return 1;
  }
  if (*n == 0) {
    err << "sender forget: no record of '" << c.name << "'\n";
    return 1;
  }
  out << "forgot " << *n << " record(s) of " << c.name
      << "; the sender sends it again at its next scan (the receiver answers unchanged content as a duplicate)\n";
  return 0;
}

int verify(Command& c, OutboxStore& store, std::ostream& out, std::ostream& err) {
  std::vector<std::string> problems;
  std::vector<std::string> notes;
  auto integrity = store.integrity_check();
  if (!integrity) {
    err << "sender verify: " << integrity.error().message << "\n";
    return 1;
  }
  if (integrity->size() != 1 || integrity->front() != "ok") {
    for (const auto& line : *integrity) problems.push_back("integrity: " + line);
  }
  auto rows = store.all();
  if (!rows) {
    err << "sender verify: " << rows.error().message << "\n";
    return 1;
  }
  std::set<std::string> known;
  std::map<std::string, const OutboxEntry*> newest;  // by name: the last updated row
  for (const auto& e : *rows) {
    known.insert(e.name);
    auto& slot = newest[e.name];
    if (!slot || e.updated_at >= slot->updated_at) slot = &e;
    if (e.state == OutboxState::kQuarantined && !e.quarantine_path.empty() && ::access(e.quarantine_path.c_str(), F_OK) != 0) {
      problems.push_back(e.name + ": quarantined to " + e.quarantine_path + ", which is gone (`sender forget " + e.name + "` drops the record)");
    }
  }
  for (const auto& [name, e] : newest) {
    struct stat st {};
    const std::string path = c.config.input_dir + "/" + name;
    const bool present = ::stat(path.c_str(), &st) == 0;
    if ((e->state == OutboxState::kPending || e->state == OutboxState::kFailed) && !present) {
      notes.push_back(name + ": " + std::string(to_string(e->state)) + " but no longer in the input directory (it will not be sent)");
    }
    if (e->state == OutboxState::kDelivered && present &&
        (st.st_size != e->size || static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec != e->mtime_ns)) {
      notes.push_back(name + ": changed since it was delivered (the new content will be sent)");
    }
  }
  std::error_code ec;
  int64_t unseen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(c.config.input_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_ignored_name(name, c.config.ignore_globs) && !known.count(name)) ++unseen;
  }
  if (ec) problems.push_back("cannot list the input directory " + c.config.input_dir + ": " + ec.message());
  if (unseen > 0) notes.push_back(std::to_string(unseen) + " file(s) in the input directory not yet seen by the sender");
  int64_t spooled = 0;
  for (const auto& entry : std::filesystem::directory_iterator(c.config.status_db_path + "/spool", ec)) {
    if (entry.path().extension() == ".tmp") ++spooled;
  }
  if (spooled > 0) notes.push_back(std::to_string(spooled) + " spool file(s) in use or left by a crash (removed at the next start)");
  if (c.json) {
    out << dump({{"database", c.config.state_db_file()}, {"integrity", *integrity}, {"records", rows->size()},
                 {"problems", problems}, {"notes", notes}, {"ok", problems.empty()}});
  } else {
    out << "state database " << c.config.state_db_file() << ": " << rows->size() << " record(s), integrity "
        << (integrity->size() == 1 && integrity->front() == "ok" ? "ok" : "FAILED") << "\n";
    for (const auto& p : problems) out << "problem: " << p << "\n";
    for (const auto& n : notes) out << "note: " << n << "\n";
    out << (problems.empty() ? "consistent\n" : std::to_string(problems.size()) + " problem(s)\n");
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace

std::optional<int> run_admin_command(const std::vector<std::string>& args, const EnvLookup& env,
                                     std::ostream& out, std::ostream& err) {
  static const std::set<std::string> kVerbs = {"status", "retry", "forget", "verify"};
  if (args.empty() || !kVerbs.count(args[0])) return std::nullopt;
  Command c;
  c.verb = args[0];
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json" && (c.verb == "status" || c.verb == "verify")) {
      c.json = true;
    } else if (a == "--all-failed" && c.verb == "retry") {
      c.all_failed = true;
    } else if (i == 1 && (c.verb == "retry" || c.verb == "forget") && a.rfind("-", 0) != 0) {
      c.name = a;
    } else {
      rest.push_back(a);
    }
  }
  const bool needs_name = c.verb == "forget" || (c.verb == "retry" && !c.all_failed);
  if (needs_name && !plain_file_name(c.name)) {
    err << "sender " << c.verb << ": give the file name as it is in the input directory (no '/')\n" << kUsage;
    return 2;
  }
  if (c.verb == "retry" && c.all_failed && !c.name.empty()) {
    err << "sender retry: give a NAME or --all-failed, not both\n" << kUsage;
    return 2;
  }
  auto loaded = load_sender_config(rest, env);
  if (auto* exit = std::get_if<EarlyExit>(&loaded)) {
    out << exit->out;
    err << exit->err;
    if (exit->code != 0) err << kUsage;
    return exit->code;
  }
  c.config = std::get<SenderConfig>(loaded);
  if (::access(c.config.state_db_file().c_str(), F_OK) != 0) {
    err << "sender " << c.verb << ": no state database at " << c.config.state_db_file()
        << " (set STATUS_DB_PATH or --status-db-path to the daemon's)\n";
    return 1;
  }
  auto store = OutboxStore::open(c.config.state_db_file());
  if (!store) {
    err << "sender " << c.verb << ": " << store.error().message << "\n";
    return 1;
  }
  if (c.verb == "status") return status(c, *store, out, err);
  if (c.verb == "retry") return retry(c, *store, out, err);
  if (c.verb == "forget") return forget(c, *store, out, err);
  return verify(c, *store, out, err);
}

}  // namespace transfer::sender
