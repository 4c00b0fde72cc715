#pragma once
// Real file servers for GoogleTest tests: tests/support/servers/sshd.sh (OpenSSH, SFTP) and
// vsftpd.sh (FTP with explicit TLS), each started in a temp dir of its own and stopped by its
// PID. start() returns once the server greets (the scripts poll with a deadline): ~0.3 s each.
// The scripts run as root (the tests do: sshd and vsftpd need it). Tests that leave the server
// running may instead attach to one the test command started for the whole run (its DIR in
// TRANSFER_SFTP_SERVER_DIR or TRANSFER_FTPS_SERVER_DIR), each in a TestArea of its own.
//
// Also: bytes made on the fly that pause at a given offset until released (a test acts on the
// server in the middle of a transfer), and polling with a deadline.

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "stored_bytes.hpp"
#include "transfer/file_util.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn's environment

#ifndef TRANSFER_SERVER_SCRIPTS
#define TRANSFER_SERVER_SCRIPTS "tests/support/servers"
#endif

namespace transfer::test {

// Polls `done` until it returns true or `timeout_s` passes, backing off from 5 ms to 100 ms.
template <typename Pred>
bool poll_until(Pred done, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  auto delay = std::chrono::milliseconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(100));
  }
  return done();
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

// The names in `dir`, sorted (dot files included, "." and ".." not).
inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Removes everything in `dir`, keeping `dir`.
inline void empty_dir(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::filesystem::remove_all(entry.path(), ec);
  }
}

// Bytes that hold a pattern of `size` bytes, made as they are read (never all in memory).
// With `pause_at` set, the first read that reaches that offset marks reached() and waits (up
// to 60 s) until release(): a test kills or aborts something meanwhile, in another thread.
class GeneratedBytes : public sender::StoredBytes {
 public:
  explicit GeneratedBytes(uint64_t size, uint64_t pause_at = UINT64_MAX)
      : size_(size), pause_at_(pause_at) {}
  uint64_t size() const override { return size_; }
  Result<size_t> read(char* buf, size_t cap) override {
    if (pos_ >= pause_at_ && !paused_) {
      paused_ = true;
      reached_.store(true);
      poll_until([&] { return released_.load(); }, 60);
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(cap, size_ - pos_));
    for (size_t i = 0; i < n; ++i) buf[i] = byte_at(pos_ + i);
    pos_ += n;
    return n;
  }
  Status rewind() override {
    pos_ = 0;
    return ok_status();
  }
  static char byte_at(uint64_t offset) {
    return static_cast<char>('a' + (offset * 7 + offset / 4099) % 26);
  }
  bool reached() const { return reached_.load(); }
  void release() { released_.store(true); }
  uint64_t position() const { return pos_; }

 private:
  uint64_t size_;
  uint64_t pause_at_;
  uint64_t pos_ = 0;
  bool paused_ = false;
  std::atomic<bool> reached_{false};
  std::atomic<bool> released_{false};
};

// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
inline int closed_tcp_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    ADD_FAILURE() << "cannot bind a port: " << std::strerror(errno);
    return 0;
  }
  return ntohs(sin.sin_port);
}

// A socket that listens on 127.0.0.1 and never accepts: connections complete (the kernel's
// backlog) and then hear nothing, like a server that hangs.
class SilentListener {
 public:
  SilentListener() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (!fd_ || ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        ::listen(fd_.get(), 16) != 0 ||
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      ADD_FAILURE() << "cannot listen: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(sin.sin_port);
  }
  int port() const { return port_; }

 private:
  UniqueFd fd_;
  int port_ = 0;
};

// One server run by a script of tests/support/servers in a temp dir of its own:
//   <script> start DIR [args] | stop DIR | kill DIR
// start prints "key=value ..." (port=, pid=, and more), read into fields().
// Or, made by attach(), a server someone else started in their DIR and stops: this object
// never starts, stops, kills or removes it (stop() and kill() fail the test).
class ScriptedServer {
 public:
  ScriptedServer(std::string script, const std::string& prefix)
      : script_(std::string(TRANSFER_SERVER_SCRIPTS) + "/" + std::move(script)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    }
    dir_ = tmpl;
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;
  ~ScriptedServer() {
    if (attached_) return;
    // Even after kill(): the script then removes what it made outside DIR (vsftpd's PAM file).
    if (started_once_) {
      std::string output;
      if (!run({"stop", dir_}, output)) ADD_FAILURE() << script_ << " stop:\n" << output;
    }
    if (std::getenv("TRANSFER_KEEP_WORKDIR") != nullptr) return;  // for a post-mortem
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // The server running in `dir` (its script's DIR: port and pid files): fails unless its pid
  // file names a live process.
  static std::unique_ptr<ScriptedServer> attach(std::string script, const std::string& dir,
                                                ::testing::AssertionResult& ok) {
    std::unique_ptr<ScriptedServer> server(new ScriptedServer(std::move(script)));
    server->dir_ = dir;
    server->attached_ = true;
    std::string pid = read_file(dir + "/pid");
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == '\r')) pid.pop_back();
    server->port_ = std::atoi(read_file(dir + "/port").c_str());
    if (pid.empty() || server->port_ <= 0 || ::access(("/proc/" + pid).c_str(), F_OK) != 0) {
      ok = ::testing::AssertionFailure() << "no server of " << server->script_ << " running in "
                                         << dir << " (its pid and port files)";
      return server;
    }
    server->fields_["pid"] = pid;
    server->fields_["port"] = std::to_string(server->port_);
    server->running_ = true;
    ok = ::testing::AssertionSuccess();
    return server;
  }

  // For tests that leave their server running: the one whose DIR the environment variable
  // `env_var` names (started once for the whole run by the test command), else one of their
  // own, started with no arguments.
  static std::unique_ptr<ScriptedServer> shared_or_own(std::string script,
                                                       const std::string& prefix,
                                                       const char* env_var,
                                                       ::testing::AssertionResult& ok) {
    const char* shared = std::getenv(env_var);
    if (shared != nullptr && *shared != '\0') return attach(std::move(script), shared, ok);
    auto server = std::make_unique<ScriptedServer>(std::move(script), prefix);
    ok = server->start();
    return server;
  }

  // Starts the server (again after stop() or kill(): same port, keys and certificates).
  ::testing::AssertionResult start(const std::vector<std::string>& args = {}) {
    if (attached_) {
      return ::testing::AssertionFailure()
             << "the shared server in " << dir_ << " is not this test's to start";
    }
    started_once_ = true;
    const auto began = std::chrono::steady_clock::now();
    std::vector<std::string> argv = {"start", dir_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string output;
    if (!run(argv, output)) {
      return ::testing::AssertionFailure() << script_ << " start " << dir_ << ":\n" << output;
    }
    fields_.clear();
    std::istringstream words(output.substr(output.rfind("port=")));
    std::string word;
    while (words >> word) {
      const size_t eq = word.find('=');
      if (eq != std::string::npos) fields_[word.substr(0, eq)] = word.substr(eq + 1);
    }
    port_ = std::atoi(fields_["port"].c_str());
    start_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    running_ = true;
    return ::testing::AssertionSuccess();
  }
  // SIGTERM (stop) or SIGKILL (kill) to the server and its sessions, by PID; waits for them.
  void stop() { end("stop"); }
  void kill() { end("kill"); }

  int port() const { return port_; }
  bool running() const { return running_; }
  bool attached() const { return attached_; }
  double start_seconds() const { return start_seconds_; }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string read(const std::string& name) const { return read_file(path(name)); }
  // A field of start's output ("pid", "remote_dir", "user").
  std::string field(const std::string& key) const {
    const auto it = fields_.find(key);
    return it == fields_.end() ? "" : it->second;
  }

 private:
  explicit ScriptedServer(std::string script)
      : script_(std::string(TRANSFER_SERVER_SCRIPTS) + "/" + std::move(script)) {}

  void end(const char* how) {
    if (attached_) {
      ADD_FAILURE() << how << ": the shared server in " << dir_ << " is not this test's to end";
      return;
    }
    if (!running_) return;
    std::string output;
    if (!run({how, dir_}, output)) ADD_FAILURE() << script_ << " " << how << ":\n" << output;
    running_ = false;
  }

  // Runs the script to its end (it bounds its own waits); its output (stdout and stderr).
  bool run(const std::vector<std::string>& args, std::string& output) const {
    const std::string out_path = dir_ + ".script.out";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> all = {"/bin/bash", script_};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/bin/bash", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      output = std::string("posix_spawn: ") + std::strerror(rc);
      return false;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    output = read_file(out_path);
    ::unlink(out_path.c_str());
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  std::string script_;
  std::string dir_;
  std::map<std::string, std::string> fields_;
  int port_ = 0;
  bool running_ = false;
  bool attached_ = false;
  bool started_once_ = false;
  double start_seconds_ = 0;
};

// A directory of this test's own in `parent` (a server's upload directory, possibly shared by
// concurrent tests of other processes): "<suite>.<test>-<pid>", made empty, owned by `owner`
// (the user the server writes as; "" keeps root). Removed by the destructor (unless
// TRANSFER_KEEP_WORKDIR is set).
class TestArea {
 public:
  TestArea(const std::string& parent, const std::string& owner) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    name_ = std::string(info->test_suite_name()) + "." + info->name() + "-" +
            std::to_string(::getpid());
    path_ = parent + "/" + name_;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (!std::filesystem::create_directory(path_, ec)) {
      ADD_FAILURE() << "cannot make " << path_ << ": " << ec.message();
    }
    if (!owner.empty()) {
      const passwd* user = ::getpwnam(owner.c_str());
      if (user == nullptr || ::chown(path_.c_str(), user->pw_uid, user->pw_gid) != 0) {
        ADD_FAILURE() << "cannot give " << path_ << " to " << owner << ": " << std::strerror(errno);
      }
    }
  }
  TestArea(const TestArea&) = delete;
  TestArea& operator=(const TestArea&) = delete;
  ~TestArea() {
    if (std::getenv("TRANSFER_KEEP_WORKDIR") != nullptr) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& name() const { return name_; }  // the directory's own name
  const std::string& path() const { return path_; }

 private:
  std::string name_;
  std::string path_;
};

}  // namespace transfer::test
