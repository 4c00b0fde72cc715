#include "sftp_client.hpp"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>

#include "transfer/file_util.hpp"

namespace transfer::sender {

namespace {

constexpr size_t kPieceBytes = 64 * 1024;  // one read from StoredBytes

struct SshSessionFree {
  void operator()(ssh_session s) const { ssh_free(s); }
};
struct SftpSessionFree {
  void operator()(sftp_session s) const { sftp_free(s); }
};
struct SftpFileClose {
  void operator()(sftp_file f) const { sftp_close(f); }
};
struct SftpAttributesFree {
  void operator()(sftp_attributes a) const { sftp_attributes_free(a); }
};
struct SshKeyFree {
  void operator()(ssh_key k) const { ssh_key_free(k); }
};
struct SshCharFree {
  void operator()(char* s) const { ssh_string_free_char(s); }
};
using SshSessionPtr = std::unique_ptr<ssh_session_struct, SshSessionFree>;
using SftpSessionPtr = std::unique_ptr<sftp_session_struct, SftpSessionFree>;
using SftpFilePtr = std::unique_ptr<sftp_file_struct, SftpFileClose>;
using SftpAttributesPtr = std::unique_ptr<sftp_attributes_struct, SftpAttributesFree>;
using SshKeyPtr = std::unique_ptr<ssh_key_struct, SshKeyFree>;
using SshCharPtr = std::unique_ptr<char, SshCharFree>;

std::string host_spec(const std::string& host, int port) {
  return port == 22 ? host : "[" + host + "]:" + std::to_string(port);
}

// libssh expands '%' escapes and a leading '~' in file options: pass a path through as it is.
std::string literal_path_option(const std::string& path) {
  std::string out;
  for (const char c : path) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

struct TcpConnection {
  UniqueFd fd;
  std::string error;
};

// Connects to each address of host:port in turn, `timeout_s` each, checking `cancel` every 100
// ms. The socket is left non-blocking (as libssh leaves its own) with TCP_NODELAY and keepalive.
TcpConnection connect_tcp(const std::string& host, int port, double timeout_s,
                          const std::atomic<bool>& cancel) {
  TcpConnection out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (gai != 0) {
    out.error = "cannot resolve " + host + ": " + ::gai_strerror(gai);
    return out;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    UniqueFd fd(
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      out.error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::duration<double>(std::max(timeout_s, 0.001));
        err = ETIMEDOUT;
        while (!cancel.load() && std::chrono::steady_clock::now() < deadline) {
          pollfd p{fd.get(), POLLOUT, 0};
          const int ready = ::poll(&p, 1, 100);
          if (ready > 0) {
            socklen_t len = sizeof err;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
            break;
          }
          if (ready < 0 && errno != EINTR) {
            err = errno;
            break;
          }
        }
        if (cancel.load()) {
          out.error = "cancelled (shutting down)";
          return out;
        }
      }
    }
    if (err != 0) {
      out.error =
          "cannot connect to " + host + " port " + std::to_string(port) + ": " + std::strerror(err);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    out.fd = std::move(fd);
    out.error.clear();
    return out;
  }
  return out;
}

std::string trip_reason(SocketWatchdog::Trip trip, double io_timeout_s) {
  switch (trip) {
    case SocketWatchdog::Trip::kIdle: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "no progress for %g s (io_timeout)", io_timeout_s);
      return buf;
    }
    case SocketWatchdog::Trip::kCancelled:
      return "cancelled (shutting down)";
    case SocketWatchdog::Trip::kAborted:
      return "aborted";
    case SocketWatchdog::Trip::kNone:
      break;
  }
  return "";
}

}  // namespace

// --- pure parts ---------------------------------------------------------------------------------

std::string_view sftp_step_name(SftpStep step) {
  switch (step) {
    case SftpStep::kStatDir:
      return "stat remote_dir";
    case SftpStep::kStatFinal:
      return "stat";
    case SftpStep::kOpenTemp:
      return "create";
    case SftpStep::kWrite:
      return "write";
    case SftpStep::kFsync:
      return "fsync";
    case SftpStep::kClose:
      return "close";
    case SftpStep::kStatTemp:
      return "stat";
    case SftpStep::kRename:
      return "rename to";
    case SftpStep::kRemoveFinal:
      return "remove (to overwrite it)";
  }
  return "?";
}

std::string sftp_status_name(int status) {
  switch (status) {
    case SSH_FX_OK:
      return "ok";
    case SSH_FX_EOF:
      return "end of file";
    case SSH_FX_NO_SUCH_FILE:
      return "no such file";
    case SSH_FX_PERMISSION_DENIED:
      return "permission denied";
    case SSH_FX_FAILURE:
      return "failure";
    case SSH_FX_BAD_MESSAGE:
      return "bad message";
    case SSH_FX_NO_CONNECTION:
      return "no connection";
    case SSH_FX_CONNECTION_LOST:
      return "connection lost";
    case SSH_FX_OP_UNSUPPORTED:
      return "operation unsupported";
    case SSH_FX_INVALID_HANDLE:
      return "invalid handle";
    case SSH_FX_NO_SUCH_PATH:
      return "no such path";
    case SSH_FX_FILE_ALREADY_EXISTS:
      return "file already exists";
    case SSH_FX_WRITE_PROTECT:
      return "write protected";
    case SSH_FX_NO_MEDIA:
      return "no media";
    case 14:
      return "no space on file system";  // SFTP v5+
    case 15:
      return "quota exceeded";
  }
  return "status " + std::to_string(status);
}

SendFault classify_sftp_status(SftpStep step, int status) {
  // Steps about this one file's name, where a refusal concerns the name, not the destination.
  const bool names_final =
      step == SftpStep::kStatFinal || step == SftpStep::kRename || step == SftpStep::kRemoveFinal;
  switch (status) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
      // remote_dir is missing (or went away); the temporary file vanishing is someone else's doing.
      return step == SftpStep::kStatDir || step == SftpStep::kOpenTemp ? SendFault::kDestination
                                                                       : SendFault::kTransient;
    case SSH_FX_PERMISSION_DENIED:
    case SSH_FX_WRITE_PROTECT:
      return names_final ? SendFault::kPermanent : SendFault::kDestination;
    case SSH_FX_BAD_MESSAGE:  // OpenSSH: EINVAL, ENAMETOOLONG
      return names_final ? SendFault::kPermanent : SendFault::kTransient;
    case SSH_FX_FILE_ALREADY_EXISTS:
      return names_final ? SendFault::kPermanent : SendFault::kTransient;
    case SSH_FX_OP_UNSUPPORTED:
    case SSH_FX_NO_MEDIA:
      return SendFault::kDestination;
    default:  // failure (OpenSSH: any other errno, ENOSPC among them), EOF, lost connection
      return SendFault::kTransient;
  }
}

SendFault classify_handshake_error(std::string_view libssh_message) {
  if (libssh_message.find("no match for method") != std::string_view::npos ||
      libssh_message.find("no matching algorithm") != std::string_view::npos) {
    return SendFault::kDestination;
  }
  return SendFault::kTransient;
}

std::string host_key_refusal(int known_hosts_state, const std::string& host, int port,
                             const std::string& known_hosts_file, const std::string& key_type,
                             const std::string& fingerprint) {
  const std::string spec = host_spec(host, port);
  const std::string offered =
      "the server at " + spec + " offered the " + key_type + " key " + fingerprint;
  switch (known_hosts_state) {
    case SSH_KNOWN_HOSTS_CHANGED:
      return "host key CHANGED, refused: " + offered + ", not the key known_hosts_file " +
             known_hosts_file + " lists for " + spec +
             ": someone may be intercepting the connection, or the server's key was replaced "
             "(correct the file once its administrator confirms the fingerprint)";
    case SSH_KNOWN_HOSTS_OTHER:
      return "host key refused: " + offered + ", but known_hosts_file " + known_hosts_file +
             " lists a key of another type for " + spec +
             ": possibly an attack (add this key only once its administrator confirms the "
             "fingerprint)";
    case SSH_KNOWN_HOSTS_ERROR:
      return "host key refused: known_hosts_file " + known_hosts_file +
             " cannot be read or parsed; " + offered;
    default:  // SSH_KNOWN_HOSTS_UNKNOWN, SSH_KNOWN_HOSTS_NOT_FOUND
      return "host key unknown, refused: " + offered + ", and known_hosts_file " +
             known_hosts_file + " has no key for " + spec + " (add it, e.g. from ssh-keyscan -p " +
             std::to_string(port) + " " + host +
             ", once the server's administrator confirms the fingerprint)";
  }
}

// --- the client ---------------------------------------------------------------------------------

struct SftpClient::Session {
  SshSessionPtr ssh;  // destroyed last
  SftpSessionPtr sftp;
  bool fsync_offered = false;
};

// How one step went; `connection_lost`: the session cannot be used again.
struct SftpClient::Step {
  SendFault fault = SendFault::kNone;
  std::string error;
  bool connection_lost = false;
  bool ok() const { return fault == SendFault::kNone; }
};

SftpClient::SftpClient(SftpSettings settings, const std::atomic<bool>& cancel)
    : settings_(std::move(settings)), cancel_(cancel), watchdog_(cancel), piece_(kPieceBytes) {
  settings_.write_size = std::clamp<size_t>(settings_.write_size, 512, kPieceBytes);
  leftovers_ = LeftoverNames::shared_for(settings_.user + "@" + settings_.host + ":" +
                                         std::to_string(settings_.port));
}

SftpClient::~SftpClient() {
  std::lock_guard lock(mu_);
  close_session(/*polite=*/true);
}

std::string SftpClient::where() const {
  return "sftp " + settings_.host + ":" + std::to_string(settings_.port);
}

std::string SftpClient::location_for(const std::string& name) const {
  const std::string path = remote_path(settings_.remote_dir, name);
  return "sftp://" + settings_.user + "@" + settings_.host + ":" + std::to_string(settings_.port) +
         (path.starts_with('/') ? "" : "/") + path;
}

SftpStats SftpClient::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

void SftpClient::abort() { watchdog_.abort(); }

void SftpClient::close_session(bool polite) {
  if (!session_) return;
  if (!polite) watchdog_.abort();  // nothing below may wait on a dead or stalled peer
  session_->sftp.reset();
  if (polite && ssh_is_connected(session_->ssh.get())) ssh_disconnect(session_->ssh.get());
  session_.reset();
  watchdog_.detach();
}

SftpClient::Step SftpClient::open_session() {
  auto fail = [&](SendFault fault, const std::string& why) {
    close_session(/*polite=*/false);
    return Step{fault, where() + ": " + why, true};
  };
  if (cancel_.load()) return Step{SendFault::kTransient, where() + ": cancelled (shutting down)"};
  if (::access(settings_.known_hosts_file.c_str(), R_OK) != 0) {
    return Step{SendFault::kDestination, where() + ": known_hosts_file " +
                                             settings_.known_hosts_file +
                                             " cannot be read: " + std::strerror(errno)};
  }
  ssh_key raw_key = nullptr;
  const int imported = ssh_pki_import_privkey_file(settings_.private_key_file.c_str(), nullptr,
                                                   nullptr, nullptr, &raw_key);
  SshKeyPtr key(raw_key);
  if (imported != SSH_OK) {
    const bool readable = ::access(settings_.private_key_file.c_str(), R_OK) == 0;
    return Step{SendFault::kDestination,
                where() + ": private_key_file " + settings_.private_key_file +
                    (readable ? " is not a private key libssh can read without a passphrase"
                              : std::string(" cannot be read: ") + std::strerror(errno))};
  }

  TcpConnection tcp =
      connect_tcp(settings_.host, settings_.port, settings_.connect_timeout_s, cancel_);
  if (!tcp.fd) {
    return Step{cancel_.load() ? SendFault::kTransient : SendFault::kUnreachable,
                where() + ": " + tcp.error, true};
  }
  if (auto attached = watchdog_.attach(tcp.fd.get()); !attached.ok()) {
    return Step{SendFault::kTransient, where() + ": " + attached.error().message, true};
  }

  auto session = std::make_unique<Session>();
  session->ssh.reset(ssh_new());
  ssh_session ssh = session->ssh.get();
  if (ssh == nullptr) {
    watchdog_.detach();
    return Step{SendFault::kTransient, where() + ": ssh_new failed", true};
  }
  session_ = std::move(session);
  const int verbosity = SSH_LOG_NOLOG;
  const int strict = 1;
  const bool no = false;
  const long timeout_s = std::max(1L, std::lround(settings_.io_timeout_s));
  const std::string known_hosts = literal_path_option(settings_.known_hosts_file);
  socket_t fd = tcp.fd.release();  // libssh owns it from here (ssh_free closes it)
  if (ssh_options_set(ssh, SSH_OPTIONS_FD, &fd) != SSH_OK) {
    ::close(fd);
    return fail(SendFault::kTransient,
                std::string("cannot hand the socket to libssh: ") + ssh_get_error(ssh));
  }
  if (ssh_options_set(ssh, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) != SSH_OK ||
      // Only what this client is told: no ~/.ssh/config or /etc/ssh/ssh_config (they could
      // turn StrictHostKeyChecking off), no global or user known_hosts files.
      ssh_options_set(ssh, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_HOST, settings_.host.c_str()) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_PORT, &settings_.port) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_USER, settings_.user.c_str()) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_KNOWNHOSTS, known_hosts.c_str()) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_STRICTHOSTKEYCHECK, &strict) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_TIMEOUT, &timeout_s) != SSH_OK) {
    return fail(SendFault::kDestination,
                std::string("cannot set the SSH options: ") + ssh_get_error(ssh));
  }

  watchdog_.activate(settings_.io_timeout_s);
  struct Deactivate {
    SocketWatchdog& w;
    ~Deactivate() { w.deactivate(); }
  } deactivate{watchdog_};
  auto lost = [&](const std::string& what) {
    const std::string reason = trip_reason(watchdog_.trip(), settings_.io_timeout_s);
    return fail(SendFault::kTransient,
                what + ": " + (reason.empty() ? ssh_get_error(ssh) : reason));
  };

  if (ssh_connect(ssh) != SSH_OK) {
    if (watchdog_.trip() != SocketWatchdog::Trip::kNone) return lost("SSH handshake");
    const std::string message = ssh_get_error(ssh);
    return fail(classify_handshake_error(message), "SSH handshake failed: " + message);
  }
  watchdog_.touch();

  // The host key: before anything is sent that a false server could use.
  ssh_key raw_server_key = nullptr;
  if (ssh_get_server_publickey(ssh, &raw_server_key) != SSH_OK) {
    return fail(SendFault::kTransient, std::string("no host key: ") + ssh_get_error(ssh));
  }
  SshKeyPtr server_key(raw_server_key);
  unsigned char* hash = nullptr;
  size_t hash_len = 0;
  std::string fingerprint = "(no fingerprint)";
  if (ssh_get_publickey_hash(server_key.get(), SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) == 0) {
    SshCharPtr text(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_len));
    if (text) fingerprint = text.get();
    ssh_clean_pubkey_hash(&hash);
  }
  const char* key_type = ssh_key_type_to_char(ssh_key_type(server_key.get()));
  const ssh_known_hosts_e known = ssh_session_is_known_server(ssh);
  if (known != SSH_KNOWN_HOSTS_OK) {
    std::string message =
        host_key_refusal(known, settings_.host, settings_.port, settings_.known_hosts_file,
                         key_type != nullptr ? key_type : "unknown", fingerprint);
    if (known == SSH_KNOWN_HOSTS_ERROR) message += std::string(" (") + ssh_get_error(ssh) + ")";
    return fail(SendFault::kDestination, message);
  }

  const int auth = ssh_userauth_publickey(ssh, nullptr, key.get());
  if (auth != SSH_AUTH_SUCCESS) {
    if (auth == SSH_AUTH_ERROR && !ssh_is_connected(ssh)) return lost("login");
    if (auth == SSH_AUTH_ERROR && watchdog_.trip() != SocketWatchdog::Trip::kNone) {
      return lost("login");
    }
    return fail(SendFault::kDestination, "login as " + settings_.user + " with private_key_file " +
                                             settings_.private_key_file +
                                             " refused: " + ssh_get_error(ssh));
  }
  watchdog_.touch();

  session_->sftp.reset(sftp_new(ssh));
  if (!session_->sftp || sftp_init(session_->sftp.get()) != SSH_OK) {
    if (!ssh_is_connected(ssh) || watchdog_.trip() != SocketWatchdog::Trip::kNone) {
      return lost("starting SFTP");
    }
    return fail(SendFault::kDestination,
                std::string("the server refused the SFTP subsystem: ") + ssh_get_error(ssh));
  }
  session_->fsync_offered =
      sftp_extension_supported(session_->sftp.get(), "fsync@openssh.com", "1");
  {
    std::lock_guard lock(stats_mu_);
    ++stats_.connects;
  }
  return Step{};
}

namespace {

// Whether a failed request left the session usable, and the step's outcome either way.
struct RequestFailure {
  SendFault fault;
  std::string error;
  bool connection_lost;
};

RequestFailure describe_failure(ssh_session ssh, sftp_session sftp, SocketWatchdog::Trip trip,
                                double io_timeout_s, SftpStep step, const std::string& path) {
  const std::string reason = trip_reason(trip, io_timeout_s);
  const int status = sftp_get_error(sftp);
  const bool lost = !reason.empty() || !ssh_is_connected(ssh) ||
                    (ssh_get_status(ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0 ||
                    ssh_channel_is_open(sftp->channel) == 0 || status == SSH_FX_EOF ||
                    status == SSH_FX_CONNECTION_LOST || status == SSH_FX_NO_CONNECTION;
  std::string what = std::string(sftp_step_name(step)) + " " + path + ": ";
  if (lost) {
    return {SendFault::kTransient,
            what + "connection lost: " + (reason.empty() ? ssh_get_error(ssh) : reason), true};
  }
  return {classify_sftp_status(step, status),
          what + sftp_status_name(status) + " (" + ssh_get_error(ssh) + ")", false};
}

}  // namespace

SftpClient::Step SftpClient::stat_remote_dir() {
  const std::string& dir = settings_.remote_dir.empty() ? std::string(".") : settings_.remote_dir;
  SftpAttributesPtr attrs(sftp_stat(session_->sftp.get(), dir.c_str()));
  watchdog_.touch();
  if (!attrs) {
    auto f = describe_failure(session_->ssh.get(), session_->sftp.get(), watchdog_.trip(),
                              settings_.io_timeout_s, SftpStep::kStatDir, dir);
    return Step{f.fault, where() + ": " + f.error, f.connection_lost};
  }
  if (attrs->type != SSH_FILEXFER_TYPE_DIRECTORY) {
    return Step{SendFault::kDestination, where() + ": remote_dir " + dir + " is not a directory"};
  }
  return Step{};
}

void SftpClient::remove_leftovers() {
  for (const std::string& path : leftovers_->names()) {
    if (!session_) return;  // the rest stay listed for the next session
    if (sftp_unlink(session_->sftp.get(), path.c_str()) == 0) {
      std::lock_guard lock(stats_mu_);
      ++stats_.temporaries_removed;
    } else {
      auto f = describe_failure(session_->ssh.get(), session_->sftp.get(), watchdog_.trip(),
                                settings_.io_timeout_s, SftpStep::kRemoveFinal, path);
      if (f.connection_lost) return;  // try again on the next session
    }
    watchdog_.touch();
    leftovers_->forget(path);  // removed, or refused (gone already)
  }
}

Result<size_t> SftpClient::remove_temporaries() {
  std::lock_guard lock(mu_);
  if (!session_) {
    Step opened = open_session();
    if (!opened.ok()) return make_error(ErrorCode::kIo, opened.error);
  }
  watchdog_.activate(settings_.io_timeout_s);
  const std::string dir = settings_.remote_dir.empty() ? "." : settings_.remote_dir;
  std::vector<std::string> found;
  sftp_dir listing = sftp_opendir(session_->sftp.get(), dir.c_str());
  if (listing == nullptr) {
    auto f = describe_failure(session_->ssh.get(), session_->sftp.get(), watchdog_.trip(),
                              settings_.io_timeout_s, SftpStep::kStatDir, dir);
    watchdog_.deactivate();
    if (f.connection_lost) close_session(/*polite=*/false);
    return make_error(ErrorCode::kIo, where() + ": " + f.error);
  }
  while (sftp_attributes a = sftp_readdir(session_->sftp.get(), listing)) {
    SftpAttributesPtr attrs(a);
    watchdog_.touch();
    if (attrs->name != nullptr && attrs->type == SSH_FILEXFER_TYPE_REGULAR &&
        is_temporary_name(attrs->name)) {
      found.push_back(remote_path(settings_.remote_dir, attrs->name));
    }
  }
  const bool complete = sftp_dir_eof(listing) != 0;
  sftp_closedir(listing);
  size_t removed = 0;
  for (const auto& path : found) {
    if (sftp_unlink(session_->sftp.get(), path.c_str()) == 0) ++removed;
    watchdog_.touch();
  }
  watchdog_.deactivate();
  {
    std::lock_guard stats_lock(stats_mu_);
    stats_.temporaries_removed += removed;
  }
  if (!complete) return make_error(ErrorCode::kIo, where() + ": listing " + dir + " ended early");
  if (removed < found.size()) {
    return make_error(ErrorCode::kIo, where() + ": " + std::to_string(found.size() - removed) +
                                          " temporary file(s) in " + dir + " could not be removed");
  }
  return removed;
}

SendOutcome SftpClient::put(const std::string& name, StoredBytes& bytes) {
  std::lock_guard lock(mu_);
  return put_locked(name, bytes);
}

SendOutcome SftpClient::put_locked(const std::string& name, StoredBytes& bytes) {
  SendOutcome out;
  out.location = location_for(name);
  if (auto checked = check_remote_file_name(name); !checked.ok()) {
    out.fault = SendFault::kPermanent;
    out.error = where() + ": " + checked.error().message;
    return out;
  }
  for (int attempt = 0;; ++attempt) {
    const bool kept = session_ != nullptr;
    if (!kept) {
      Step opened = open_session();
      if (!opened.ok()) {
        out.fault = opened.fault;
        out.error = opened.error;
        return out;
      }
    }
    watchdog_.activate(settings_.io_timeout_s);
    remove_leftovers();
    Step first = stat_remote_dir();
    Step stored = first.ok() ? store(name, bytes, out.bytes_sent) : first;
    if (stored.ok()) remove_leftovers();  // any listed while this file was sent (another client's)
    watchdog_.deactivate();
    const SocketWatchdog::Trip trip = watchdog_.trip();
    if (stored.connection_lost) close_session(/*polite=*/false);
    if (stored.ok()) {
      std::lock_guard stats_lock(stats_mu_);
      ++stats_.puts;
      return out;
    }
    // A kept session the server closed while it was idle fails at its first request: once more
    // on a new session at once.
    if (kept && attempt == 0 && !first.ok() && first.connection_lost && !cancel_.load() &&
        trip == SocketWatchdog::Trip::kNone) {
      continue;
    }
    out.fault = stored.fault;
    out.error = stored.error;
    return out;
  }
}

SftpClient::Step SftpClient::store(const std::string& name, StoredBytes& bytes, uint64_t& sent) {
  sftp_session sftp = session_->sftp.get();
  ssh_session ssh = session_->ssh.get();
  const std::string final_path = remote_path(settings_.remote_dir, name);
  auto failed = [&](SftpStep step, const std::string& path) {
    auto f = describe_failure(ssh, sftp, watchdog_.trip(), settings_.io_timeout_s, step, path);
    return Step{f.fault, where() + ": " + f.error, f.connection_lost};
  };
  // Does `path` exist (lstat: a link by that name counts)? nullopt-like: a failed Step.
  struct Existence {
    Step step;
    bool exists = false;
    bool directory = false;
  };
  auto existence = [&](const std::string& path) {
    Existence e;
    SftpAttributesPtr attrs(sftp_lstat(sftp, path.c_str()));
    watchdog_.touch();
    if (attrs) {
      e.exists = true;
      e.directory = attrs->type == SSH_FILEXFER_TYPE_DIRECTORY;
    } else if (sftp_get_error(sftp) != SSH_FX_NO_SUCH_FILE) {
      e.step = failed(SftpStep::kStatFinal, path);
    }
    return e;
  };
  auto exists_refusal = [&](const std::string& when) {
    return Step{SendFault::kPermanent, where() + ": " + final_path + " exists" + when +
                                           " and on_conflict is fail: not replaced"};
  };

  if (settings_.on_conflict == OnConflict::kFail) {
    Existence e = existence(final_path);
    if (!e.step.ok()) return e.step;
    if (e.exists) return exists_refusal("");
  }

  const std::string temp_path =
      remote_path(settings_.remote_dir, temporary_name_for(name, random_tag()));
  SftpFilePtr file(sftp_open(sftp, temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644));
  watchdog_.touch();
  if (!file) return failed(SftpStep::kOpenTemp, temp_path);

  // From here on a failure removes the temporary file, or leaves it to the next session.
  auto abandon = [&](Step why) {
    file.reset();
    if (!why.connection_lost && sftp_unlink(sftp, temp_path.c_str()) == 0) return why;
    if (why.connection_lost || describe_failure(ssh, sftp, watchdog_.trip(), settings_.io_timeout_s,
                                                SftpStep::kRemoveFinal, temp_path)
                                   .connection_lost) {
      why.connection_lost = true;
      leftovers_->add({temp_path});
    }
    return why;
  };
  auto cancelled = [&] {
    return Step{SendFault::kTransient, where() + ": cancelled (shutting down)", true};
  };

  if (auto rewound = bytes.rewind(); !rewound.ok()) {
    return abandon(Step{SendFault::kTransient, where() + ": " + rewound.error().message});
  }
  uint64_t total = 0;
  for (;;) {
    if (cancel_.load()) return abandon(cancelled());
    auto n = bytes.read(piece_.data(), piece_.size());
    if (!n.ok()) {
      return abandon(Step{SendFault::kTransient, where() + ": " + n.error().message});
    }
    if (*n == 0) break;
    for (size_t off = 0; off < *n;) {
      const size_t len = std::min(settings_.write_size, *n - off);
      const ssize_t written = sftp_write(file.get(), piece_.data() + off, len);
      if (written < 0 || static_cast<size_t>(written) != len) {
        return abandon(failed(SftpStep::kWrite, temp_path));
      }
      watchdog_.touch();
      off += len;
      total += len;
      sent = total;
    }
  }
  if (total != bytes.size()) {
    return abandon(Step{SendFault::kTransient, where() + ": the stored bytes ended at " +
                                                   std::to_string(total) + " of " +
                                                   std::to_string(bytes.size())});
  }

  bool flushed = false;
  if (session_->fsync_offered) {
    if (sftp_fsync(file.get()) == 0) {
      flushed = true;
    } else {
      auto f = describe_failure(ssh, sftp, watchdog_.trip(), settings_.io_timeout_s,
                                SftpStep::kFsync, temp_path);
      // A server that offers fsync and then refuses it is one without: the file is still whole.
      const int status = sftp_get_error(sftp);
      if (f.connection_lost ||
          (status != SSH_FX_OP_UNSUPPORTED && status != SSH_FX_PERMISSION_DENIED)) {
        return abandon(Step{f.fault, where() + ": " + f.error, f.connection_lost});
      }
    }
    watchdog_.touch();
  }
  const int closed = sftp_close(file.release());
  watchdog_.touch();
  if (closed != SSH_NO_ERROR) return abandon(failed(SftpStep::kClose, temp_path));

  {
    SftpAttributesPtr attrs(sftp_stat(sftp, temp_path.c_str()));
    watchdog_.touch();
    if (!attrs) return abandon(failed(SftpStep::kStatTemp, temp_path));
    if ((attrs->flags & SSH_FILEXFER_ATTR_SIZE) == 0 || attrs->size != total) {
      return abandon(Step{SendFault::kTransient,
                          where() + ": size check of " + temp_path + " failed: the server has " +
                              ((attrs->flags & SSH_FILEXFER_ATTR_SIZE) == 0
                                   ? std::string("no size")
                                   : std::to_string(attrs->size) + " bytes") +
                              ", " + std::to_string(total) + " were sent"});
    }
  }

  if (cancel_.load()) return abandon(cancelled());
  bool replaced = false;
  if (sftp_rename(sftp, temp_path.c_str(), final_path.c_str()) != 0) {
    const Step refused = failed(SftpStep::kRename, final_path);
    if (refused.connection_lost) return abandon(refused);
    Existence e = existence(final_path);
    if (!e.step.ok()) return abandon(e.step);
    if (!e.exists) return abandon(refused);
    if (settings_.on_conflict == OnConflict::kFail) {
      return abandon(exists_refusal(" (it appeared while the file was being sent)"));
    }
    if (e.directory) {
      return abandon(Step{SendFault::kPermanent,
                          where() + ": " + final_path + " is a directory: not replaced"});
    }
    // Plain SFTP rename does not replace: remove, then rename (see the header).
    if (sftp_unlink(sftp, final_path.c_str()) != 0 && sftp_get_error(sftp) != SSH_FX_NO_SUCH_FILE) {
      return abandon(failed(SftpStep::kRemoveFinal, final_path));
    }
    watchdog_.touch();
    if (sftp_rename(sftp, temp_path.c_str(), final_path.c_str()) != 0) {
      return abandon(failed(SftpStep::kRename, final_path));
    }
    replaced = true;
  }
  watchdog_.touch();
  std::lock_guard lock(stats_mu_);
  if (flushed) {
    ++stats_.fsyncs;
  } else {
    ++stats_.fsync_unavailable;
  }
  if (replaced) ++stats_.replaced;
  return Step{};
}

ProbeOutcome SftpClient::probe() {
  std::lock_guard lock(mu_);
  for (int attempt = 0;; ++attempt) {
    const bool kept = session_ != nullptr;
    if (!kept) {
      Step opened = open_session();
      if (!opened.ok()) return ProbeOutcome{opened.fault, opened.error};
    }
    watchdog_.activate(settings_.io_timeout_s);
    remove_leftovers();
    Step checked = stat_remote_dir();
    watchdog_.deactivate();
    const SocketWatchdog::Trip trip = watchdog_.trip();
    if (checked.connection_lost) close_session(/*polite=*/false);
    if (checked.ok()) return ProbeOutcome{};
    if (kept && attempt == 0 && checked.connection_lost && !cancel_.load() &&
        trip == SocketWatchdog::Trip::kNone) {
      continue;
    }
    return ProbeOutcome{checked.fault, checked.error};
  }
}

}  // namespace transfer::sender
