#include "file_server_stores.hpp"

#include "credential_file.hpp"
#include "ftps_client.hpp"
#include "sftp_client.hpp"

namespace transfer::sender {
namespace {

// Any client with put(name, bytes), probe() and abort().
template <typename Client>
class FileServerStore : public ObjectStore {
 public:
  template <typename Settings>
  FileServerStore(Settings settings, const std::atomic<bool>& cancel)
      : client_(std::move(settings), cancel) {}
  SendOutcome put(const std::string& name, StoredBytes& bytes,
                  const std::map<std::string, std::string>& /*metadata: a file has none*/) override {
    return client_.put(name, bytes);
  }
  ProbeOutcome probe() override { return client_.probe(); }
  void abort() override { client_.abort(); }
  // What a killed sender left: its temporary names in remote_dir.
  Result<std::string> recover() override {
    auto removed = client_.remove_temporaries();
    if (!removed) return removed.error();
    if (*removed == 0) return std::string();
    return "removed " + std::to_string(*removed) + " temporary file(s) left by an earlier run in " +
           client_.location_for("");
  }

 private:
  Client client_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> make_sftp_store(const Destination& destination,
                                                     const SenderConfig& config,
                                                     const std::atomic<bool>& cancel) {
  const SftpFields& f = destination.sftp;
  SftpSettings s;
  s.host = f.host;
  s.port = f.port;
  s.user = f.user;
  s.private_key_file = f.private_key_file;
  s.known_hosts_file = f.known_hosts_file;
  s.remote_dir = f.remote_dir;
  s.on_conflict = f.on_conflict;
  s.connect_timeout_s = config.connect_timeout_s;
  s.io_timeout_s = config.io_timeout_s;
  return std::unique_ptr<ObjectStore>(
      std::make_unique<FileServerStore<SftpClient>>(std::move(s), cancel));
}

Result<std::unique_ptr<ObjectStore>> make_ftps_store(const Destination& destination,
                                                     const SenderConfig& config,
                                                     const std::atomic<bool>& cancel) {
  const FtpsFields& f = destination.ftps;
  FtpsSettings s;
  s.host = f.host;
  s.port = f.port;
  s.user = f.user;
  s.remote_dir = f.remote_dir;
  s.tls = f.tls;
  s.ca_file = f.ca_file;
  s.on_conflict = f.on_conflict;
  s.connect_timeout_s = config.connect_timeout_s;
  s.io_timeout_s = config.io_timeout_s;
  auto password = read_credential_file("password_file", f.password_file);
  if (!password) {
    return make_error(ErrorCode::kInvalidArgument,
                      "destination " + destination.name + ": " + password.error().message);
  }
  s.password = std::move(*password);
  return std::unique_ptr<ObjectStore>(
      std::make_unique<FileServerStore<FtpsClient>>(std::move(s), cancel));
}

}  // namespace transfer::sender
