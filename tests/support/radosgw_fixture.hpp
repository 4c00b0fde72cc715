#pragma once
// A real S3 server for GoogleTest tests: Debian's radosgw over a one-node in-memory Ceph, started
// and stopped by tests/support/servers/radosgw.sh (it polls each daemon's readiness with a
// deadline and says which step failed; ~2.5 s, ~130 MB). Started by the test itself in a temp
// dir, or attached to one a developer started (`radosgw.sh start DIR`, then
// TRANSFER_S3_SERVER_DIR=DIR) to run the tests again and again.
//
// The fixture checks what landed with the curl program (curl --aws-sigv4), not with the client
// under test.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "clamd_fixture.hpp"  // TempDir, wait_until

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn's environment

#ifndef TRANSFER_RADOSGW_SCRIPT
#define TRANSFER_RADOSGW_SCRIPT "tests/support/servers/radosgw.sh"
#endif

namespace transfer::test {

// The SHA-256 of no bytes: the payload hash curl must send for a request without a body.
inline constexpr const char* kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string first_line(const std::string& path) {
  std::string text = read_text_file(path);
  return text.substr(0, text.find('\n'));
}

// Runs `argv` (argv[0] looked up in PATH), its stdout and stderr appended to `out_path`; returns
// its exit status (-1: could not start it or it died of a signal).
inline int run_program(const std::vector<std::string>& argv, const std::string& out_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, cargs[0], &actions, nullptr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// What curl said about one request: the HTTP status (0: none) and the body.
struct CurlAnswer {
  int status = 0;
  std::string body;
};

class RadosgwServer {
 public:
  RadosgwServer() = default;
  RadosgwServer(const RadosgwServer&) = delete;
  RadosgwServer& operator=(const RadosgwServer&) = delete;
  ~RadosgwServer() { stop(); }

  // Starts a server of its own in a temp dir. Use as ASSERT_TRUE(server.start()).
  ::testing::AssertionResult start() {
    own_dir_ = std::make_unique<TempDir>();
    dir_ = own_dir_->path("server");
    const std::string out = own_dir_->path("radosgw-sh.out");
    if (run_program({"bash", TRANSFER_RADOSGW_SCRIPT, "start", dir_}, out) != 0) {
      return ::testing::AssertionFailure() << "radosgw.sh start failed:\n" << read_text_file(out);
    }
    started_ = true;
    return load();
  }

  // Uses the server in TRANSFER_S3_SERVER_DIR when that is set, else starts one.
  ::testing::AssertionResult start_or_attach() {
    const char* shared = std::getenv("TRANSFER_S3_SERVER_DIR");
    if (shared == nullptr || *shared == '\0') return start();
    dir_ = shared;
    return load();
  }

  // Ends the server's daemons if this started them.
  void stop() {
    if (!started_) return;
    started_ = false;
    run_program({"bash", TRANSFER_RADOSGW_SCRIPT, "stop", dir_}, own_dir_->path("radosgw-sh.out"));
  }

  // Kills radosgw only (the objects stay in the OSD), and starts it again on the same port.
  ::testing::AssertionResult kill_rgw() { return script("stop-rgw"); }
  ::testing::AssertionResult restart_rgw() { return script("start-rgw"); }

  const std::string& endpoint() const { return endpoint_; }
  const std::string& region() const { return region_; }
  const std::string& bucket() const { return bucket_; }
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }
  const std::string& dir() const { return dir_; }
  double start_seconds() const { return start_seconds_; }

  // One request signed by the curl program with the server's keys: `path_and_query` after the
  // endpoint, already encoded ("/bucket/key", "/bucket?uploads="). The body goes to a file and
  // is read back.
  CurlAnswer curl(const std::string& method, const std::string& path_and_query) const {
    TempDir tmp;
    const std::string body = tmp.path("body");
    const std::string status = tmp.path("status");
    std::vector<std::string> argv = {"curl", "-s", "-o", body, "-w", "%{http_code}"};
    if (method == "HEAD") {
      argv.emplace_back("-I");
    } else {
      argv.insert(argv.end(), {"-X", method});
    }
    argv.insert(argv.end(), {"--aws-sigv4", "aws:amz:" + region_ + ":s3", "--user",
                             access_key_ + ":" + secret_key_, "-H",
                             std::string("x-amz-content-sha256: ") + kEmptyPayloadSha256,
                             endpoint_ + path_and_query});
    run_program(argv, status);
    CurlAnswer answer;
    answer.status = std::atoi(read_text_file(status).c_str());
    answer.body = read_text_file(body);
    return answer;
  }

 private:
  ::testing::AssertionResult script(const std::string& command) {
    const std::string out = dir_ + "/radosgw-sh-" + command + ".out";
    if (run_program({"bash", TRANSFER_RADOSGW_SCRIPT, command, dir_}, out) != 0) {
      return ::testing::AssertionFailure() << "radosgw.sh " << command << " failed:\n"
                                           << read_text_file(out);
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult load() {
    endpoint_ = first_line(dir_ + "/endpoint");
    region_ = first_line(dir_ + "/region");
    bucket_ = first_line(dir_ + "/bucket");
    access_key_ = first_line(dir_ + "/access_key");
    secret_key_ = first_line(dir_ + "/secret_key");
    start_seconds_ = std::atof(first_line(dir_ + "/start_seconds").c_str());
    if (endpoint_.empty() || bucket_.empty() || access_key_.empty() || secret_key_.empty()) {
      return ::testing::AssertionFailure()
             << dir_ << " does not describe a running radosgw (endpoint, bucket, keys)";
    }
    return ::testing::AssertionSuccess();
  }

  std::unique_ptr<TempDir> own_dir_;
  std::string dir_;
  bool started_ = false;
  std::string endpoint_, region_, bucket_, access_key_, secret_key_;
  double start_seconds_ = 0;
};

}  // namespace transfer::test
