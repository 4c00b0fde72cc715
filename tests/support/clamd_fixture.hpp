#pragma once
// A real clamd for GoogleTest tests: a temp dir with a database holding one custom body signature
// (the EICAR test string), a clamd.conf, and `clamd --foreground` as a child process that start()
// waits for (zPING answered PONG, polled with a deadline) and stop() ends by its PID.
//
// No official databases: they take tens of seconds and hundreds of MiB to load. With one
// signature clamd answers in well under a second. The EICAR string is joined at run time from two
// halves so that no file in the repository holds it whole (a scanner would quarantine the file).
// The fixture talks to clamd with its own few lines of socket code, not with the client under test.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "transfer/file_util.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn's environment

#ifndef TRANSFER_CLAMD
#define TRANSFER_CLAMD "/usr/sbin/clamd"
#endif

namespace transfer::test {

// The 68-byte EICAR test string.
inline std::string eicar() {
  return std::string("X5O!P%@AP[4\\PZX54(P^)7CC)7}$") + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
}

// The name clamd gives the signature below: it appends ".UNOFFICIAL" to names from unsigned
// databases.
inline constexpr std::string_view kEicarSignatureName = "Eicar-Test-Signature.UNOFFICIAL";

// Polls `done` until it returns true or `timeout_s` passes, backing off from 5 ms to 100 ms.
template <typename Pred>
bool wait_until(Pred done, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  auto delay = std::chrono::milliseconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(100));
  }
  return done();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "transfer-clamd-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (std::getenv("TRANSFER_KEEP_WORKDIR") != nullptr) return;  // for a post-mortem
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string path(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (clamd takes a port from its config file,
// it cannot report one it chose itself).
inline int free_tcp_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    ADD_FAILURE() << "cannot find a free port: " << std::strerror(errno);
    return 0;
  }
  return ntohs(sin.sin_port);
}

// One blocking round trip on clamd's unix socket, bounded by SO_RCVTIMEO/SO_SNDTIMEO.
inline std::string raw_unix_command(const std::string& socket_path, std::string_view command) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (!fd || socket_path.size() >= sizeof sun.sun_path) return {};
  std::memcpy(sun.sun_path, socket_path.data(), socket_path.size());
  const timeval tv{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) return {};
  if (::send(fd.get(), command.data(), command.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(command.size())) {
    return {};
  }
  std::string reply;
  char buf[256];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.find('\0') != std::string::npos) break;
  }
  return reply.substr(0, reply.find('\0'));
}

struct ClamdOptions {
  std::string stream_max_length = "25M";  // clamd's StreamMaxLength (its default is 25M too)
  bool tcp = true;                        // also listen on 127.0.0.1:<free port>
  double start_timeout_s = 60;            // measured: ~0.03 s with the one signature
};

class ClamdProcess {
 public:
  explicit ClamdProcess(ClamdOptions options = {})
      : options_(std::move(options)), tcp_port_(options_.tcp ? free_tcp_port() : 0) {
    std::filesystem::create_directory(dir_.path("db"));
    std::ofstream(dir_.path("db/eicar.ndb")) << "Eicar-Test-Signature:0:*:" << hex(eicar()) << "\n";
    std::ofstream conf(dir_.path("clamd.conf"));
    conf << "Foreground yes\n"
         << "LocalSocket " << socket_path() << "\n"
         << "DatabaseDirectory " << dir_.path("db") << "\n"
         << "PidFile " << dir_.path("clamd.pid") << "\n"
         << "LogFile " << dir_.path("clamd.log") << "\n"
         << "TemporaryDirectory " << dir_.path() << "\n"
         << "StreamMaxLength " << options_.stream_max_length << "\n";
    // No User directive: clamd keeps the uid it was started with.
    if (tcp_port_ != 0) conf << "TCPSocket " << tcp_port_ << "\nTCPAddr 127.0.0.1\n";
  }
  ClamdProcess(const ClamdProcess&) = delete;
  ClamdProcess& operator=(const ClamdProcess&) = delete;
  ~ClamdProcess() { stop(); }

  // Starts clamd and waits until it answers zPING. Use as ASSERT_TRUE(clamd.start()).
  ::testing::AssertionResult start() {
    if (pid_ > 0) return ::testing::AssertionFailure() << "clamd is already running";
    if (::access(TRANSFER_CLAMD, X_OK) != 0) {
      return ::testing::AssertionFailure()
             << TRANSFER_CLAMD << " is missing (install clamav-daemon): " << std::strerror(errno);
    }
    const auto began = std::chrono::steady_clock::now();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string out = dir_.path("clamd.out");
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const std::string conf = dir_.path("clamd.conf");
    std::vector<std::string> args = {TRANSFER_CLAMD, "--foreground", "-c", conf};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, TRANSFER_CLAMD, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure()
             << "posix_spawn " << TRANSFER_CLAMD << ": " << std::strerror(rc);
    }
    bool exited = false;
    const bool up = wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited = true;
            return true;
          }
          return raw_unix_command(socket_path(), std::string_view("zPING\0", 6)) == "PONG";
        },
        options_.start_timeout_s);
    if (exited) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "clamd exited at start:\n" << read("clamd.out");
    }
    if (!up) {
      stop();
      return ::testing::AssertionFailure()
             << "clamd did not answer PONG within " << options_.start_timeout_s << "s:\n"
             << read("clamd.out");
    }
    start_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    return ::testing::AssertionSuccess();
  }

  // Ends clamd by its PID: `sig` (SIGTERM: clamd removes its socket file; SIGKILL leaves it
  // behind, refusing connections), then SIGKILL if it is still there after 10 s.
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    const bool gone = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10);
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }

  std::string socket_path() const { return dir_.path("clamd.sock"); }
  std::string address() const { return "unix:" + socket_path(); }
  std::string tcp_address() const { return "127.0.0.1:" + std::to_string(tcp_port_); }
  int tcp_port() const { return tcp_port_; }
  double start_seconds() const { return start_seconds_; }
  const TempDir& dir() const { return dir_; }
  std::string log() const { return read("clamd.log"); }

 private:
  static std::string hex(std::string_view bytes) {
    std::string out;
    char buf[3];
    for (const unsigned char c : bytes) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      out += buf;
    }
    return out;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(dir_.path(name));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  TempDir dir_;
  ClamdOptions options_;
  int tcp_port_ = 0;
  pid_t pid_ = -1;
  double start_seconds_ = 0;
};

}  // namespace transfer::test
