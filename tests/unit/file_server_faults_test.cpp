// How the SFTP and FTPS clients classify what their libraries and servers say (the pure parts of
// sftp_client and ftps_client); the clients themselves are tested against real servers in
// sftp_client_tests and ftps_client_tests.

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <string>
#include <vector>

#include "ftps_client.hpp"
#include "sftp_client.hpp"

namespace transfer::sender {
namespace {

constexpr auto kNone = SendFault::kNone;
constexpr auto kTransient = SendFault::kTransient;
constexpr auto kPermanent = SendFault::kPermanent;
constexpr auto kDestination = SendFault::kDestination;
constexpr auto kUnreachable = SendFault::kUnreachable;

TEST(SftpFaults, StatusAtEachStep) {
  struct Case {
    SftpStep step;
    int status;
    SendFault fault;
  };
  const std::vector<Case> cases = {
      // remote_dir missing or forbidden: the destination, until someone fixes it
      {SftpStep::kStatDir, SSH_FX_NO_SUCH_FILE, kDestination},
      {SftpStep::kStatDir, SSH_FX_PERMISSION_DENIED, kDestination},
      {SftpStep::kOpenTemp, SSH_FX_NO_SUCH_FILE, kDestination},
      {SftpStep::kOpenTemp, SSH_FX_PERMISSION_DENIED, kDestination},
      {SftpStep::kOpenTemp, SSH_FX_WRITE_PROTECT, kDestination},
      {SftpStep::kWrite, SSH_FX_PERMISSION_DENIED, kDestination},
      {SftpStep::kStatDir, SSH_FX_OP_UNSUPPORTED, kDestination},
      // OpenSSH answers "failure" for ENOSPC and most errors: later
      {SftpStep::kWrite, SSH_FX_FAILURE, kTransient},
      {SftpStep::kClose, SSH_FX_FAILURE, kTransient},
      {SftpStep::kOpenTemp, SSH_FX_FAILURE, kTransient},
      {SftpStep::kOpenTemp, SSH_FX_FILE_ALREADY_EXISTS, kTransient},  // a tag clash: a new tag
      {SftpStep::kWrite, SSH_FX_EOF, kTransient},
      {SftpStep::kWrite, SSH_FX_CONNECTION_LOST, kTransient},
      {SftpStep::kWrite, SSH_FX_NO_CONNECTION, kTransient},
      {SftpStep::kStatTemp, SSH_FX_NO_SUCH_FILE, kTransient},  // someone removed it
      {SftpStep::kRename, SSH_FX_NO_SUCH_FILE, kTransient},
      {SftpStep::kRename, SSH_FX_FAILURE, kTransient},
      {SftpStep::kWrite, 14, kTransient},  // no space (v5+)
      {SftpStep::kWrite, 15, kTransient},  // quota
      // about this file's name only: the destination gives up on the file
      {SftpStep::kRename, SSH_FX_PERMISSION_DENIED, kPermanent},
      {SftpStep::kRename, SSH_FX_FILE_ALREADY_EXISTS, kPermanent},
      {SftpStep::kRename, SSH_FX_BAD_MESSAGE, kPermanent},  // ENAMETOOLONG, EINVAL
      {SftpStep::kRemoveFinal, SSH_FX_PERMISSION_DENIED, kPermanent},
      {SftpStep::kStatFinal, SSH_FX_PERMISSION_DENIED, kPermanent},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(classify_sftp_status(c.step, c.status), c.fault)
        << sftp_step_name(c.step) << " " << sftp_status_name(c.status);
  }
  EXPECT_EQ(sftp_status_name(SSH_FX_NO_SUCH_FILE), "no such file");
  EXPECT_EQ(sftp_status_name(99), "status 99");
}

TEST(SftpFaults, Handshake) {
  EXPECT_EQ(classify_handshake_error("kex error : no match for method kex algos: server "
                                     "[curve25519-sha256], client [diffie-hellman-group1-sha1]"),
            kDestination);
  EXPECT_EQ(classify_handshake_error("Socket error: Connection reset by peer"), kTransient);
  EXPECT_EQ(classify_handshake_error("Timeout connecting to 127.0.0.1"), kTransient);
  EXPECT_EQ(classify_handshake_error("Socket error: disconnected"), kTransient);
}

TEST(SftpFaults, HostKeyRefusalsNameHostFileAndFingerprint) {
  struct Case {
    int state;
    std::string host;
    int port;
    std::string says;
    std::string spec;
  };
  const std::vector<Case> cases = {
      {SSH_KNOWN_HOSTS_UNKNOWN, "sftp.example", 22, "host key unknown, refused", "sftp.example"},
      {SSH_KNOWN_HOSTS_NOT_FOUND, "sftp.example", 2222, "host key unknown, refused",
       "[sftp.example]:2222"},
      {SSH_KNOWN_HOSTS_CHANGED, "10.0.0.5", 22, "host key CHANGED, refused", "10.0.0.5"},
      {SSH_KNOWN_HOSTS_OTHER, "sftp.example", 22, "a key of another type", "sftp.example"},
      {SSH_KNOWN_HOSTS_ERROR, "sftp.example", 22, "cannot be read or parsed", "sftp.example"},
  };
  const std::string fp = "SHA256:wPdxEsnN5QBDuTis/lQRAKShYf52CLWV8w6e/DQI0x0";
  for (const auto& c : cases) {
    const std::string m =
        host_key_refusal(c.state, c.host, c.port, "/run/secrets/known_hosts", "ssh-ed25519", fp);
    EXPECT_NE(m.find(c.says), std::string::npos) << m;
    EXPECT_NE(m.find(c.spec), std::string::npos) << m;
    EXPECT_NE(m.find(fp), std::string::npos) << m;
    EXPECT_NE(m.find("ssh-ed25519"), std::string::npos) << m;
    EXPECT_NE(m.find("/run/secrets/known_hosts"), std::string::npos) << m;
  }
}

TEST(FtpFaults, CurlResultsAtEachStep) {
  struct Case {
    FtpStep step;
    int curl_code;
    int reply;
    bool got_reply;
    SendFault fault;
  };
  const std::vector<Case> cases = {
      // nothing answered
      {FtpStep::kProbe, CURLE_COULDNT_CONNECT, 0, false, kUnreachable},
      {FtpStep::kUpload, CURLE_COULDNT_RESOLVE_HOST, 0, false, kUnreachable},
      {FtpStep::kProbe, CURLE_OPERATION_TIMEDOUT, 0, false, kUnreachable},
      {FtpStep::kProbe, CURLE_GOT_NOTHING, 0, false, kUnreachable},
      {FtpStep::kProbe, CURLE_RECV_ERROR, 0, false, kUnreachable},
      // an answer, then the connection failed
      {FtpStep::kUpload, CURLE_OPERATION_TIMEDOUT, 150, true, kTransient},
      {FtpStep::kUpload, CURLE_SEND_ERROR, 150, true, kTransient},
      {FtpStep::kUpload, CURLE_RECV_ERROR, 150, true, kTransient},
      {FtpStep::kUpload, CURLE_PARTIAL_FILE, 426, true, kTransient},
      {FtpStep::kUpload, CURLE_SSL_CONNECT_ERROR, 234, true, kTransient},
      {FtpStep::kUpload, CURLE_ABORTED_BY_CALLBACK, 150, true, kTransient},
      {FtpStep::kUpload, CURLE_READ_ERROR, 150, true, kTransient},
      {FtpStep::kUpload, CURLE_REMOTE_DISK_FULL, 452, true, kTransient},
      {FtpStep::kUpload, CURLE_FTP_WEIRD_PASV_REPLY, 227, true, kTransient},
      {FtpStep::kSizeTemp, CURLE_REMOTE_FILE_NOT_FOUND, 550, true, kTransient},
      // the destination refuses us: credentials, TLS, remote_dir, writing there
      {FtpStep::kProbe, CURLE_LOGIN_DENIED, 530, true, kDestination},
      {FtpStep::kProbe, CURLE_USE_SSL_FAILED, 530, true, kDestination},
      {FtpStep::kProbe, CURLE_PEER_FAILED_VERIFICATION, 234, true, kDestination},
      {FtpStep::kProbe, CURLE_SSL_CACERT_BADFILE, 234, true, kDestination},
      {FtpStep::kProbe, CURLE_REMOTE_ACCESS_DENIED, 550, true, kDestination},
      {FtpStep::kUpload, CURLE_UPLOAD_FAILED, 553, true, kDestination},
      {FtpStep::kUpload, CURLE_UPLOAD_FAILED, 550, true, kDestination},
      {FtpStep::kUpload, CURLE_UPLOAD_FAILED, 452, true, kTransient},
      {FtpStep::kUpload, CURLE_UPLOAD_FAILED, 552, true, kTransient},
      // this file's name
      {FtpStep::kRename, CURLE_QUOTE_ERROR, 550, true, kPermanent},
      {FtpStep::kRename, CURLE_QUOTE_ERROR, 553, true, kPermanent},
      {FtpStep::kRename, CURLE_QUOTE_ERROR, 450, true, kTransient},
      {FtpStep::kRemoveFinal, CURLE_QUOTE_ERROR, 550, true, kPermanent},
      {FtpStep::kUpload, CURLE_FILESIZE_EXCEEDED, 552, true, kPermanent},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(classify_ftp_failure(c.step, c.curl_code, c.reply, c.got_reply), c.fault)
        << curl_easy_strerror(static_cast<CURLcode>(c.curl_code)) << " reply " << c.reply;
  }
  EXPECT_NE(kNone, kTransient);
}

TEST(FtpFaults, UrlsChangeToTheDirectoryFromTheRightPlace) {
  struct Case {
    std::string host;
    std::string dir;
    std::string name;
    std::string url;
  };
  const std::vector<Case> cases = {
      {"ftp.example", "/upload", "a.xml", "ftp://ftp.example:21/%2Fupload/a.xml"},
      {"ftp.example", "/upload/", "a.xml", "ftp://ftp.example:21/%2Fupload/a.xml"},
      {"ftp.example", "/in/partner a", "a b.xml",
       "ftp://ftp.example:21/%2Fin/partner%20a/a%20b.xml"},
      {"ftp.example", "/", "a.xml", "ftp://ftp.example:21/%2F/a.xml"},
      {"ftp.example", "out", "a.xml", "ftp://ftp.example:21/out/a.xml"},
      {"ftp.example", "out//x/./", "a.xml", "ftp://ftp.example:21/out/x/a.xml"},
      {"ftp.example", "", "a.xml", "ftp://ftp.example:21/a.xml"},
      {"ftp.example", "/upload", "", "ftp://ftp.example:21/%2Fupload/"},
      {"ftp.example", "", "", "ftp://ftp.example:21/"},
      {"::1", "/upload", "a%?#;.xml", "ftp://[::1]:21/%2Fupload/a%25%3F%23%3B.xml"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ftp_url(c.host, 21, c.dir, c.name), c.url) << c.dir << " " << c.name;
  }
}

}  // namespace
}  // namespace transfer::sender
