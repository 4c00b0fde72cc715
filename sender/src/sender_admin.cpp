#include "sender_admin.hpp"

#include "destinations.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <set>

#include "file_identity.hpp"
#include "outbox_store.hpp"
#include "sender_config.hpp"
#include "sender_service.hpp"
#include "transfer/file_util.hpp"
#include "transfer/terminal_text.hpp"

namespace transfer::sender {
namespace {

constexpr const char* kUsage =
    "usage: sender status [--json] [--destination NAME] [options]\n"
    "       sender retry <NAME|--all-failed> [--destination NAME] [options]\n"
    "       sender forget <NAME> [--destination NAME] [options]\n"
    "       sender verify [--json] [options]\n"
    "--destination limits the command to one destination's records (default: every destination)\n"
    "options are the daemon's (see sender --help), e.g. --status-db-path or STATUS_DB_PATH\n";

struct Command {
  std::string verb;
  std::string name;  // retry/forget target
  bool json = false;
  bool all_failed = false;
  std::optional<std::string> destination;  // --destination: only this destination's records
  SenderConfig config;
  const std::string* only() const { return destination ? &*destination : nullptr; }
};

nlohmann::json entry_json(const OutboxEntry& e) {
  return {{"name", e.name},
          {"sha256", e.sha256},
          {"destination", e.destination},
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

// The oldest pending or failed row per destination (and overall, under "").
std::map<std::string, OutboxEntry> oldest_pending(const std::vector<OutboxEntry>& pending,
                                                  const std::vector<OutboxEntry>& failed) {
  std::map<std::string, OutboxEntry> oldest;
  for (const auto* list : {&pending, &failed}) {
    for (const auto& e : *list) {
      for (const std::string& key : {std::string(), e.destination}) {
        auto it = oldest.find(key);
        if (it == oldest.end() || e.first_seen_at < it->second.first_seen_at) oldest[key] = e;
      }
    }
  }
  return oldest;
}

int status(Command& c, OutboxStore& store, std::ostream& out, std::ostream& err) {
  auto counts = store.counts(c.only());
  auto pending = store.in_state(OutboxState::kPending, c.only());
  auto failed = store.in_state(OutboxState::kFailed, c.only());
  auto errors = store.recent_errors(5, c.only());
  auto by_destination = store.counts_by_destination();
  if (!counts || !pending || !failed || !errors || !by_destination) {
    err << "sender status: "
        << (!counts ? counts.error() : !pending ? pending.error() : !failed ? failed.error() : !errors ? errors.error() : by_destination.error()).message
        << "\n";
    return 1;
  }
  const auto oldest = oldest_pending(*pending, *failed);
  auto oldest_of = [&](const std::string& key) -> const OutboxEntry* {
    auto it = oldest.find(key);
    return it == oldest.end() ? nullptr : &it->second;
  };
  // Each destination's type, as the configuration says (a name no longer configured: "-").
  std::map<std::string, std::string> types;
  if (c.config.destinations_file.empty()) {
    types[std::string(kDefaultDestination)] = "receiver";
  } else if (auto list = load_destinations_file(c.config.destinations_file, c.config)) {
    for (const auto& d : *list) types[d.name] = std::string(destination_type_name(d.type));
  }
  auto type_of = [&](const std::string& name) {
    auto it = types.find(name);
    return it == types.end() ? std::string("-") : it->second;
  };
  // Per destination: its counts (every state) and its oldest pending file.
  std::map<std::string, std::map<std::string, int64_t>> per_destination;
  for (const auto& row : *by_destination) {
    if (c.destination && row.destination != *c.destination) continue;
    per_destination[row.destination][std::string(to_string(row.state))] = row.count;
  }
  if (c.json) {
    nlohmann::json j;
    j["database"] = c.config.state_db_file();
    if (c.destination) j["destination"] = *c.destination;
    j["counts"] = nlohmann::json::object();
    for (const auto& [state, n] : *counts) j["counts"][std::string(to_string(state))] = n;
    const OutboxEntry* all = oldest_of("");
    j["oldest_pending"] = all ? nlohmann::json{{"name", all->name}, {"destination", all->destination}, {"since", all->first_seen_at}}
                              : nlohmann::json(nullptr);
    j["destinations"] = nlohmann::json::object();
    for (const auto& [name, states] : per_destination) {
      const OutboxEntry* o = oldest_of(name);
      j["destinations"][name] = {{"type", type_of(name)},
                                 {"counts", states},
                                 {"oldest_pending", o ? nlohmann::json{{"name", o->name}, {"since", o->first_seen_at}}
                                                      : nlohmann::json(nullptr)}};
    }
    j["last_errors"] = nlohmann::json::array();
    for (const auto& e : *errors) j["last_errors"].push_back(entry_json(e));
    out << dump(j);
    return 0;
  }
  out << "state database " << c.config.state_db_file()
      << (c.destination ? " (destination " + *c.destination + ")" : std::string()) << "\n\n";
  out << fmt::format("{:<12} {:>8}\n", "STATE", "FILES");
  for (const auto& [state, n] : *counts) out << fmt::format("{:<12} {:>8}\n", to_string(state), n);
  // File names and errors are someone else's text: escaped (terminal_text.hpp), so none can
  // clear the screen or forge a line. The JSON form carries them as they are (JSON escapes).
  const OutboxEntry* all = oldest_of("");
  out << "\noldest pending: " << (all ? terminal_name(all->name) + " (seen " + all->first_seen_at + ")" : "none")
      << "\n";
  out << "\ndestinations:" << (per_destination.empty() ? " none yet\n" : "\n");
  if (!per_destination.empty()) {
    out << fmt::format("{:<16} {:<8} {:>9} {:>9} {:>9} {:>11}  {}\n", "DESTINATION", "TYPE", "PENDING", "FAILED",
                       "DELIVERED", "QUARANTINED", "OLDEST PENDING");
    for (const auto& [name, states] : per_destination) {
      auto n = [&](const char* state) {
        auto it = states.find(state);
        return it == states.end() ? int64_t{0} : it->second;
      };
      const OutboxEntry* o = oldest_of(name);
      out << fmt::format("{:<16} {:<8} {:>9} {:>9} {:>9} {:>11}  {}\n", name, type_of(name), n("pending"),
                         n("failed"), n("delivered"), n("quarantined"),
                         o ? terminal_name(o->name) + " (seen " + o->first_seen_at + ")" : "none");
    }
  }
  out << "\nlast errors:" << (errors->empty() ? " none\n" : "\n");
  if (!errors->empty()) {
    out << fmt::format("{:<24} {:<12} {:<11} {:>8}  {:<28} {}\n", "UPDATED", "DESTINATION", "STATE", "ATTEMPTS", "FILE",
                       "ERROR");
    for (const auto& e : *errors) {
      out << fmt::format("{:<24} {:<12} {:<11} {:>8}  {:<28} {}\n", e.updated_at, e.destination, to_string(e.state),
                         e.attempts, terminal_name(e.name), terminal_text(e.last_error.substr(0, 200)));
    }
  }
  return 0;
}

// Back to pending (a moved-away quarantined file is moved back first, once for all the rows that
// name that copy: `moved_back` holds the copies already moved).
Status retry_one(const Command& c, OutboxStore& store, const OutboxEntry& e, std::ostream& out,
                 std::set<std::string>& moved_back) {
  if (e.state == OutboxState::kQuarantined && !e.quarantine_path.empty() &&
      !moved_back.count(e.quarantine_path)) {
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
    moved_back.insert(e.quarantine_path);
    out << terminal_name(e.name) << ": moved back from " << terminal_text(e.quarantine_path) << "\n";
    if (c.destination) {
      // Other destinations that gave up on this copy stay given up: with the input back in place
      // their rows no longer point into the quarantine (else the sender would start them again).
      auto rows = store.by_name(e.name);
      if (!rows) return rows.error();
      for (const auto& other : *rows) {
        if (other.destination == e.destination || other.sha256 != e.sha256 ||
            other.state != OutboxState::kQuarantined || other.quarantine_path != e.quarantine_path)
          continue;
        const FailureRecord kept{other.last_error, static_cast<int>(other.receiver_status), other.receiver_answer,
                                 other.first_failure_unix, 0};
        if (auto marked = store.mark_quarantined(other.name, other.sha256, kept, "", other.destination); !marked)
          return marked;
      }
    }
  }
  if (e.sha256 == kUnhashed) {
    // Refused before it was hashed (input_screen.hpp): its row names no content and would stay
    // pending once the file passes under another SHA-256. Dropped: the file is new to the sender
    // and screened again (a raised MAX_INPUT_BYTES lets it through).
    if (auto st = store.forget_version(e.name, e.sha256, e.destination); !st) return st;
    out << terminal_name(e.name) << ": refused before hashing; its record for destination " << e.destination
        << " is dropped and the file is screened again at the next pass\n";
    return ok_status();
  }
  if (auto st = store.reset(e.name, e.sha256, e.destination); !st) return st;
  out << terminal_name(e.name) << ": " << to_string(e.state) << " -> pending for destination " << e.destination
      << " (sent again at the next pass)\n";
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
    if (!add(store.in_state(OutboxState::kFailed, c.only())) ||
        !add(store.in_state(OutboxState::kQuarantined, c.only())))
      return 1;
    if (targets.empty()) {
      out << "nothing to retry: no failed or quarantined file\n";
      return 0;
    }
  } else {
    if (!add(store.by_name(c.name, c.only()))) return 1;
    if (targets.empty()) {
      err << "sender retry: no failed or quarantined file named '" << c.name << "' (see `sender status`)\n";
      return 1;
    }
  }
  int code = 0;
  std::set<std::string> moved_back;
  for (const auto& e : targets) {
    if (auto st = retry_one(c, store, e, out, moved_back); !st) {
      err << "sender retry: " << terminal_text(st.error().message) << "\n";
      code = 1;
    }
  }
  return code;
}

int forget(Command& c, OutboxStore& store, std::ostream& out, std::ostream& err) {
  auto n = store.forget(c.name, c.only());
  if (!n) {
    err << "sender forget: " << n.error().message << "\n";
    return 1;
  }
  if (*n == 0) {
    err << "sender forget: no record of '" << c.name << "'"
        << (c.destination ? " for destination " + *c.destination : std::string()) << "\n";
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
    for (const auto& p : problems) out << "problem: " << terminal_text(p) << "\n";  // names: escaped
    for (const auto& n : notes) out << "note: " << terminal_text(n) << "\n";
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
    } else if ((a == "--destination" || a.rfind("--destination=", 0) == 0) && c.verb != "verify") {
      if (a == "--destination") {
        if (i + 1 >= args.size()) {
          err << "sender " << c.verb << ": --destination needs a NAME\n" << kUsage;
          return 2;
        }
        c.destination = args[++i];
      } else {
        c.destination = a.substr(std::string("--destination=").size());
      }
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
