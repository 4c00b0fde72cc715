#include "destination_client.hpp"

#include <chrono>
#include <nlohmann/json.hpp>

#include "file_server_stores.hpp"
#include "outbox_store.hpp"
#include "s3_store.hpp"
#include "transfer/fernet.hpp"
#include "uploader.hpp"

namespace transfer::sender {
namespace {

UploadTarget upload_target(const Destination& d, const SenderConfig& c) {
  return UploadTarget{d.scheme,
                      d.host,
                      d.port,
                      d.uri,
                      c.connect_timeout_s,
                      c.io_timeout_s,
                      d.ca_file,
                      d.client_cert_file,
                      d.client_key_file};
}

// Our receiver: the HTTP upload of issue 14, unchanged.
class ReceiverClient : public DestinationClient {
 public:
  ReceiverClient(Destination destination, const SenderConfig& config,
                 const std::atomic<bool>& cancel)
      : destination_(std::move(destination)),
        uploader_(upload_target(destination_, config), cancel) {}
  DeliveryResult send(FilePayload& payload, const FernetKey& key,
                      const std::string& transfer_id) override {
    return deliver(payload, destination_.name, key, transfer_id, uploader_);
  }
  ProbeResult probe() override {
    const auto answer = uploader_.probe();
    return ProbeResult{answer.status != 0, answer.error};
  }
  void abort() override { uploader_.abort(); }

 private:
  Destination destination_;
  Uploader uploader_;
};

class StoreClient : public DestinationClient {
 public:
  StoreClient(Destination destination, std::unique_ptr<ObjectStore> store)
      : destination_(std::move(destination)), store_(std::move(store)) {}

  DeliveryResult send(FilePayload& payload, const FernetKey& key,
                      const std::string& transfer_id) override {
    const auto started = std::chrono::steady_clock::now();
    auto bytes = stored_bytes_for(payload, destination_, key);
    if (!bytes) {
      DeliveryResult r;
      r.error = bytes.error().message;
      return r;
    }
    const auto& source = payload.source();
    const std::string name = destination_.name_template.render(
        payload.upload_name(), utc_date_of(static_cast<double>(source.mtime_ns) / 1e9));
    const std::map<std::string, std::string> metadata = {
        {"sha256", payload.xml_sha256()},  // of the plaintext XML, whatever is stored
        {"transfer-id", transfer_id},
        {"idempotency-key", idempotency_key(source.name, source.sha256)},
        {"payload", destination_.payload == PayloadKind::kFernet ? "fernet" : "xml"}};
    const SendOutcome outcome = store_->put(name, **bytes, metadata);
    return delivery_result_of(
        outcome, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  ProbeResult probe() override {
    const ProbeOutcome p = store_->probe();
    return ProbeResult{p.fault == SendFault::kNone, p.error};
  }
  void abort() override { store_->abort(); }
  Result<std::string> recover() override { return store_->recover(); }

 private:
  Destination destination_;
  std::unique_ptr<ObjectStore> store_;
};

}  // namespace

Result<std::unique_ptr<StoredBytes>> stored_bytes_for(FilePayload& payload, const Destination& d,
                                                      const FernetKey& key) {
  const bool fernet = d.payload == PayloadKind::kFernet;
  if (payload.in_memory()) {
    if (!fernet) return std::unique_ptr<StoredBytes>(std::make_unique<MemoryBytes>(payload.xml()));
    auto token = fernet_encrypt(key, payload.xml());
    if (!token) return token.error();
    return std::unique_ptr<StoredBytes>(std::make_unique<MemoryBytes>(std::move(*token)));
  }
  TokenSpoolSink* spool = payload.spool(d.name);
  if (spool == nullptr)
    return make_error(ErrorCode::kIo, "nothing was spooled for this destination");
  if (spool->plain() == fernet) {
    return make_error(ErrorCode::kIo, "the spool for this destination is not its payload kind");
  }
  auto file = FileBytes::open(spool->path(), spool->token_bytes());
  if (!file) return file.error();
  return std::unique_ptr<StoredBytes>(std::make_unique<FileBytes>(std::move(*file)));
}

DeliveryResult delivery_result_of(const SendOutcome& o, double seconds) {
  DeliveryResult r;
  r.upload_seconds = seconds;
  r.error = o.error;
  switch (o.fault) {
    case SendFault::kNone: {
      r.verdict = AttemptVerdict::kDelivered;
      r.answered = true;
      r.status = 200;
      r.bytes_sent = o.bytes_sent;
      r.parts = o.parts;
      nlohmann::json j = {{"location", o.location}, {"bytes", o.bytes_sent}};
      if (o.parts > 0) j["parts"] = o.parts;
      r.body = j.dump();
      break;
    }
    case SendFault::kTransient:
      r.verdict = AttemptVerdict::kTransient;
      r.answered = true;
      break;
    case SendFault::kPermanent:
      r.verdict = AttemptVerdict::kPermanent;
      r.answered = true;
      break;
    case SendFault::kDestination:  // the destination as a whole: yield, give no file up
    case SendFault::kUnreachable:
      r.verdict = AttemptVerdict::kTransient;
      r.answered = false;
      break;
  }
  if (o.retry_after_s > 0) r.retry_after = std::to_string(static_cast<int64_t>(o.retry_after_s));
  return r;
}

std::unique_ptr<DestinationClient> store_client(Destination destination,
                                                std::unique_ptr<ObjectStore> store) {
  return std::make_unique<StoreClient>(std::move(destination), std::move(store));
}

Result<std::unique_ptr<DestinationClient>> make_destination_client(
    const Destination& destination, const SenderConfig& config, const std::atomic<bool>& cancel) {
  switch (destination.type) {
    case DestinationType::kReceiver:
      return std::unique_ptr<DestinationClient>(
          std::make_unique<ReceiverClient>(destination, config, cancel));
    case DestinationType::kS3: {
      auto store = make_s3_store(destination, config, cancel);
      if (!store) return store.error();
      return store_client(destination, std::move(*store));
    }
    case DestinationType::kSftp: {
      auto store = make_sftp_store(destination, config, cancel);
      if (!store) return store.error();
      return store_client(destination, std::move(*store));
    }
    case DestinationType::kFtps: {
      auto store = make_ftps_store(destination, config, cancel);
      if (!store) return store.error();
      return store_client(destination, std::move(*store));
    }
  }
  return make_error(ErrorCode::kInvalidArgument, "destination " + destination.name + ": unknown type");
}

}  // namespace transfer::sender
