#pragma once
// Stores files on an SFTP server (libssh 0.10), for the `sftp` destination type.
//
// One put(): the bytes are written, in pieces, under a hidden temporary name in remote_dir
// (".<final>.<8 hex>.part", opened exclusively), flushed to the server's disk with
// fsync@openssh.com where the server offers it, their size checked with a stat, then renamed to
// the final name. So the final name never holds a partial file.
//
// An existing final name follows on_conflict:
//   - kFail: checked with a stat before anything is sent, and again if the rename fails (SFTP's
//     rename never replaces): the destination gives up on this file (kPermanent), the existing
//     file is untouched, the temporary one removed.
//   - kOverwrite: libssh 0.10's sftp_rename sends the plain SFTP rename, which refuses an existing
//     target (it does not use posix-rename@openssh.com, even where the server offers it). So when
//     the rename fails and the final name exists, that file is removed and the rename repeated:
//     between the two the final name is briefly absent (a reader may see no file; never a partial
//     one). A failure in between leaves the complete temporary file, removed at the next attempt.
//
// Host keys: the server's key must be listed for the host in known_hosts_file ("host" on port 22,
// "[host]:port" otherwise; hashed entries work). Nothing else is consulted: not ~/.ssh, not
// /etc/ssh (the global file is /dev/null), no ssh_config; an unknown or changed key is refused
// (kDestination) with a message naming the host and the key's SHA256 fingerprint. Never accepted.
// Login: public key only, from private_key_file (unencrypted: nothing can type a passphrase).
//
// The session is kept open between puts and reopened after a failure; a kept session that fails
// at its first request (the server closed it while idle) is reopened once at once. A failed
// attempt's temporary file that could not be removed (the connection was gone) is removed at the
// start of the next put or probe on a new session (of any client of this process with the same
// login); one left by a process that was killed is removed by remove_temporaries() at the next
// start.
//
// Timeouts: connect_timeout_s for the TCP connection (each address), io_timeout_s for any
// request without progress (the socket is shut down by a SocketWatchdog: libssh would wait
// forever). `cancel` (shutdown) is checked between pieces and within 100 ms by the watchdog.
//
// Thread-safety: put() and probe() serialize on an internal mutex (a probe waits for a put in
// progress: probe another client if that matters); abort() may be called from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "remote_names.hpp"
#include "socket_watchdog.hpp"
#include "stored_bytes.hpp"

namespace transfer::sender {

struct SftpSettings {
  std::string host;  // a name or an address, as known_hosts_file lists it
  int port = 22;
  std::string user;
  std::string private_key_file;  // OpenSSH or PEM, without a passphrase
  std::string known_hosts_file;  // required; the only source of trusted host keys
  std::string remote_dir;        // absolute, or relative to the login directory ("" or "." itself)
  OnConflict on_conflict = OnConflict::kFail;
  double connect_timeout_s = 10;
  double io_timeout_s = 60;  // a request with no progress for this long ends the attempt
  // Bytes per SFTP write request. Writes are one request and one reply at a time (libssh 0.10
  // has no pipelined writes), so a round trip per request bounds throughput; 32 KiB is what the
  // SFTP drafts promise every server takes (OpenSSH takes up to 255 KiB).
  size_t write_size = 32 * 1024;
};

// Counters since construction (logs, metrics, tests).
struct SftpStats {
  uint64_t connects = 0;             // SSH sessions opened (and logged in)
  uint64_t puts = 0;                 // files stored
  uint64_t fsyncs = 0;               // of them, flushed with fsync@openssh.com
  uint64_t fsync_unavailable = 0;    // of them, on a server that did not offer or refused it
  uint64_t replaced = 0;             // overwrite: an existing final name removed, then renamed over
  uint64_t temporaries_removed = 0;  // earlier attempts' temporary files removed later
};

class SftpClient {
 public:
  SftpClient(SftpSettings settings, const std::atomic<bool>& cancel);
  SftpClient(const SftpClient&) = delete;
  SftpClient& operator=(const SftpClient&) = delete;
  ~SftpClient();

  // Stores `bytes` (read from its start) as `name` in remote_dir. `name` is a final name
  // (check_remote_file_name: an unusable one is kPermanent). location: sftp://host:port/dir/name.
  SendOutcome put(const std::string& name, StoredBytes& bytes);
  // Logs in (if no session is open) and stats remote_dir, which must be a directory.
  ProbeOutcome probe();
  // From another thread: ends a put or probe in progress now (kTransient, "aborted").
  void abort();
  // Removes every temporary name (is_temporary_name) in remote_dir: what an earlier run of the
  // sender, killed in the middle of a transfer, left there. Only when no upload of this process
  // to remote_dir is in progress (the sender calls it before a destination's first upload).
  // Returns how many were removed.
  Result<size_t> remove_temporaries();


  SftpStats stats() const;
  std::string location_for(const std::string& name) const;
  const SftpSettings& settings() const { return settings_; }

 private:
  struct Session;
  struct Step;
  SendOutcome put_locked(const std::string& name, StoredBytes& bytes);
  Step store(const std::string& name, StoredBytes& bytes, uint64_t& sent);
  Step open_session();
  Step stat_remote_dir();
  void remove_leftovers();
  void close_session(bool polite);
  std::string where() const;  // "sftp 127.0.0.1:2222"

  SftpSettings settings_;
  const std::atomic<bool>& cancel_;
  SocketWatchdog watchdog_;
  std::mutex mu_;
  std::unique_ptr<Session> session_;
  // Temporary files whose upload lost its connection, shared by every client of this process
  // that logs in to the same server as the same user (a retry may run on another worker's
  // client): the next session of any of them removes them.
  std::shared_ptr<LeftoverNames> leftovers_;
  mutable std::mutex stats_mu_;
  SftpStats stats_;
  std::vector<char> piece_;  // one read from StoredBytes
};

// The pure parts, for tests.

// What the client was doing when the server answered with an SFTP status.
enum class SftpStep {
  kStatDir,      // stat remote_dir
  kStatFinal,    // does the final name exist?
  kOpenTemp,     // create the temporary file
  kWrite,        // write a piece
  kFsync,        // fsync@openssh.com
  kClose,        // close the temporary file
  kStatTemp,     // its size
  kRename,       // temporary -> final
  kRemoveFinal,  // overwrite: remove the existing final name
};
std::string_view sftp_step_name(SftpStep step);

// The fault an SFTP status code (SSH_FX_*, from sftp_get_error) means at `step` on a connection
// that is still up (a lost connection is kTransient whatever the status).
SendFault classify_sftp_status(SftpStep step, int status);
// SSH_FX_* by name ("no such file"), for messages.
std::string sftp_status_name(int status);

// kDestination unless the handshake failed on something a retry can cure: an algorithm that the
// two sides do not share ("no match for method") is a configuration fault; anything else
// (reset, closed, timed out) is kTransient.
SendFault classify_handshake_error(std::string_view libssh_message);

// The refusal message for a host key state (ssh_known_hosts_e) other than SSH_KNOWN_HOSTS_OK:
// names the host as known_hosts lists it, the file, the key type and its SHA256 fingerprint.
std::string host_key_refusal(int known_hosts_state, const std::string& host, int port,
                             const std::string& known_hosts_file, const std::string& key_type,
                             const std::string& fingerprint);

}  // namespace transfer::sender
