#include "s3_store.hpp"

#include <cmath>

#include "credential_file.hpp"
#include "s3_client.hpp"

namespace transfer::sender {
namespace {

class S3Store : public ObjectStore {
 public:
  S3Store(S3Settings settings, const std::atomic<bool>& cancel)
      : client_(std::move(settings), cancel) {}

  SendOutcome put(const std::string& name, StoredBytes& bytes,
                  const std::map<std::string, std::string>& metadata) override {
    return client_.put(name, bytes, metadata);
  }
  ProbeOutcome probe() override { return client_.probe(); }
  void abort() override { client_.abort(); }

  // What a killed sender left: its incomplete multipart uploads under the prefix.
  Result<std::string> recover() override {
    const std::string prefix = client_.object_key("");
    auto aborted = client_.abort_incomplete_uploads(prefix);
    if (!aborted) return aborted.error();
    if (*aborted == 0) return std::string();
    return "aborted " + std::to_string(*aborted) + " incomplete multipart upload(s) under " +
           client_.location(prefix) + " (left by an earlier run)";
  }

 private:
  S3Client client_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> make_s3_store(const Destination& destination,
                                                   const SenderConfig& config,
                                                   const std::atomic<bool>& cancel) {
  const S3Fields& f = destination.s3;
  S3Settings s;
  s.endpoint = f.endpoint;
  s.region = f.region;
  s.bucket = f.bucket;
  s.prefix = f.prefix;
  s.path_style = f.path_style;
  s.ca_file = f.ca_file;
  s.multipart_threshold = f.multipart_threshold;
  s.part_size = f.part_size;
  s.connect_timeout_s = std::max(1L, std::lround(config.connect_timeout_s));
  s.io_timeout_s = std::max(1L, std::lround(config.io_timeout_s));
  const std::string where = "destination " + destination.name + ": ";
  auto access = read_credential_file("access_key_file", f.access_key_file);
  if (!access) return make_error(ErrorCode::kInvalidArgument, where + access.error().message);
  auto secret = read_credential_file("secret_key_file", f.secret_key_file);
  if (!secret) return make_error(ErrorCode::kInvalidArgument, where + secret.error().message);
  s.access_key = std::move(*access);
  s.secret_key = std::move(*secret);
  if (auto ok = validate_s3_settings(s); !ok) {
    return make_error(ErrorCode::kInvalidArgument, where + ok.error().message);
  }
  return std::unique_ptr<ObjectStore>(std::make_unique<S3Store>(std::move(s), cancel));
}

}  // namespace transfer::sender
