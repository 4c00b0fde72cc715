#pragma once
// Stores files on an FTP server over explicit TLS (libcurl 7.88), for the `ftps` destination type.
//
// Explicit TLS (RFC 4217): AUTH TLS on the control connection before USER/PASS, PROT P for every
// data connection (CURLUSESSL_ALL: a server without TLS is refused, never used in the clear);
// the server's certificate is verified against ca_file (the system's CAs when empty) and must
// name the host. Plain FTP only with tls=false (the caller warns at start); the password then
// crosses the network in the clear.
//
// One put(): uploaded (STOR, passive mode) under a hidden temporary name in remote_dir
// (".<final>.<8 hex>.part"), its size checked with SIZE, then renamed to the final name with
// RNFR/RNTO. So the final name never holds a partial file. An existing final name follows
// on_conflict:
//   - kFail: checked with SIZE before anything is sent and again just before the rename, then
//     kPermanent (the existing file untouched, the temporary one removed). FTP has no rename that
//     refuses an existing target, and most servers' RNTO replaces (vsftpd: rename(2)): a file
//     that appears between the last check and RNTO (a few milliseconds) is replaced.
//   - kOverwrite: RNTO replaces the existing file where the server's RNTO does (vsftpd, ProFTPD,
//     Pure-FTPd: rename(2), atomic). Where RNTO refuses an existing target (some Windows servers)
//     the old file is deleted (DELE) and the rename repeated: briefly no file by that name, never
//     a partial one.
// The server must answer SIZE (RFC 3659; vsftpd, ProFTPD, Pure-FTPd, IIS and FileZilla do):
// without it nothing is stored (kDestination). A failed attempt's temporary file is deleted at
// once, or (the connection was gone) at the start of the next put or probe.
//
// TLS 1.2 only by default: curl 7.88 over TLS 1.3 loses the end of uploads to vsftpd 3.0.3 (426
// "Failure reading network stream"; measured 7 of 15 uploads of 300 KB); allow_tls13 lifts it.
//
// Timeouts: connect_timeout_s for the TCP connection; io_timeout_s for each FTP reply and for a
// transfer with no progress. `cancel` and abort() are seen within a second (curl's progress
// callback). The control connection is kept between requests and puts (curl's cache).
//
// Thread-safety: put() and probe() serialize on an internal mutex; abort() from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "remote_names.hpp"
#include "stored_bytes.hpp"

namespace transfer::sender {

struct FtpExchange;  // one curl request's callback state (ftps_client.cpp)

struct FtpsSettings {
  std::string host;
  int port = 21;
  std::string user;
  std::string password;    // read from password_file by the caller; never logged
  std::string remote_dir;  // absolute ("/upload"), or relative to the login directory ("" = it)
  bool tls = true;         // false: plain FTP, everything in the clear
  std::string ca_file;     // CAs for the server's certificate; empty: the system's
  bool allow_tls13 = false;
  OnConflict on_conflict = OnConflict::kFail;
  double connect_timeout_s = 10;
  double io_timeout_s = 60;
};

struct FtpsStats {
  uint64_t connects = 0;  // control connections opened (and logged in)
  uint64_t puts = 0;      // files stored
  uint64_t replaced = 0;  // overwrite: RNTO refused an existing name, which was deleted first
  uint64_t temporaries_removed = 0;  // earlier attempts' temporary files deleted later
};

class FtpsClient {
 public:
  FtpsClient(FtpsSettings settings, const std::atomic<bool>& cancel);
  FtpsClient(const FtpsClient&) = delete;
  FtpsClient& operator=(const FtpsClient&) = delete;
  ~FtpsClient();

  // Stores `bytes` (read from its start) as `name` in remote_dir. `name` is a final name
  // (check_remote_file_name: an unusable one is kPermanent). location: ftps://host:port/dir/name.
  SendOutcome put(const std::string& name, StoredBytes& bytes);
  // Logs in (TLS first) and changes to remote_dir.
  ProbeOutcome probe();
  // From another thread: ends a put or probe in progress within a second (kTransient, "aborted").
  void abort();
  // Deletes every temporary name (is_temporary_name) in remote_dir: what an earlier run of the
  // sender, killed in the middle of a transfer, left there. Only when no upload of this process
  // to remote_dir is in progress (the sender calls it before a destination's first upload).
  Result<size_t> remove_temporaries();


  FtpsStats stats() const;
  std::string location_for(const std::string& name) const;
  const FtpsSettings& settings() const { return settings_; }

 private:
  struct Step;
  enum class Request { kExists, kUpload, kRename, kDelete, kProbe, kList };
  Step perform(FtpExchange& ex, Request request, const std::string& name,
               StoredBytes* bytes = nullptr, const std::string& other = {});
  Step exists(const std::string& name, bool& found);
  Step store(const std::string& name, StoredBytes& bytes, uint64_t& sent);
  void remove_leftovers();
  std::string where() const;

  FtpsSettings settings_;
  const std::atomic<bool>& cancel_;
  std::atomic<bool> aborted_{false};
  std::mutex mu_;
  struct CurlHandle;
  std::unique_ptr<CurlHandle> curl_;
  // Temporary names in remote_dir to delete, shared by every client of this process with the
  // same login, server and remote_dir (a retry may run on another worker's client).
  std::shared_ptr<LeftoverNames> leftovers_;
  mutable std::mutex stats_mu_;
  FtpsStats stats_;
};

// The pure parts, for tests.

// What the client was doing when curl returned.
enum class FtpStep {
  kCheckFinal,   // SIZE of the final name (does it exist?)
  kUpload,       // STOR of the temporary name
  kSizeTemp,     // SIZE of the temporary name
  kRename,       // RNFR temporary / RNTO final
  kRemoveFinal,  // DELE of the final name (overwrite where RNTO does not replace)
  kProbe,        // log in, CWD remote_dir
};

// The fault a failed curl request means: `curl_code` a CURLcode, `reply_code` the last FTP reply
// (0: none), `got_reply` whether the server said anything at all on this request.
SendFault classify_ftp_failure(FtpStep step, int curl_code, int reply_code, bool got_reply);

// ftp://host:port/<remote_dir>/<name>, each segment percent-encoded; an absolute remote_dir
// starts with %2F (curl then changes to it from the root, not from the login directory). `name`
// empty: the directory itself, with a trailing '/'.
std::string ftp_url(const std::string& host, int port, const std::string& remote_dir,
                    const std::string& name);

}  // namespace transfer::sender
