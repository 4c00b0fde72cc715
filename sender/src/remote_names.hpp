#pragma once
// What the clients of file-server destinations (SFTP, FTPS) share about names in remote_dir: the
// names they accept, the hidden temporary name a file is written under before it is renamed to
// its final name, and what happens when the final name exists. Pure functions.

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "transfer/result.hpp"

namespace transfer::sender {

// An existing final name in remote_dir:
//   - kFail: the destination gives up on this file (kPermanent), the existing file is untouched;
//   - kOverwrite: the new file replaces it (atomically where the server's rename replaces; where it
//     cannot, the old file is removed first: see each client's header).
enum class OnConflict { kFail, kOverwrite };
Result<OnConflict> parse_on_conflict(std::string_view text);  // "fail" or "overwrite"
std::string_view on_conflict_name(OnConflict on_conflict);

// Longest file name a server is expected to take (NAME_MAX on Linux and most others).
inline constexpr size_t kMaxRemoteNameBytes = 255;

// A final name the clients store: 1..255 bytes, not "." or "..", no '/' and no control
// character (a CR or LF would end an FTP command early). kInvalidArgument naming it otherwise.
Status check_remote_file_name(std::string_view name);

// The hidden name a file is written under in remote_dir: ".<final>.<tag>.part", the final name
// cut (at a UTF-8 character boundary) so that the whole fits in kMaxRemoteNameBytes.
std::string temporary_name_for(std::string_view final_name, std::string_view tag);

// True for a name temporary_name_for() makes (whatever the tag).
bool is_temporary_name(std::string_view name);

// 8 random hex digits (RAND_bytes): one temporary name's tag.
std::string random_tag();

// "<dir>/<name>"; `dir` "" or "." is the login directory (the name alone); one '/' between.
std::string remote_path(std::string_view dir, std::string_view name);

// Temporary files whose upload lost its connection (they could not be removed then), shared by
// every client of this process with the same `login` (user@host:port and remote_dir): a retry
// may run on another worker's client, and the next session of any of them removes them. A name
// stays listed until a client has removed it (or found it gone): a client whose removal fails
// (the server still away) never hides it from another that is removing at the same moment.
// At most kMaxLeftovers are kept. Thread-safe.
class LeftoverNames {
 public:
  static constexpr size_t kMaxLeftovers = 100;
  // The one list of `login` for as long as a client holds it.
  static std::shared_ptr<LeftoverNames> shared_for(const std::string& login);
  void add(std::vector<std::string> names);  // names already listed are not listed twice
  std::vector<std::string> names();          // a copy, to remove them one by one
  void forget(const std::string& name);      // removed from the server (or gone already)

 private:
  std::mutex mu_;
  std::vector<std::string> names_;
};

}  // namespace transfer::sender
