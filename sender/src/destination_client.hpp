#pragma once
// A destination's client (issue 21): one attempt at one prepared payload, a cheap probe, and an
// abort from another thread. One port, one small interface and a registry
// (make_destination_client): the scheduler, retries, state and metrics never test a type; a new
// type is a new ObjectStore plus one line in the registry.
//   - receiver: our HTTP upload (Uploader + deliver()), as before;
//   - s3, sftp, ftps: an ObjectStore that stores bytes under a name; this adapter picks the bytes
//     (the Fernet token, in memory or spooled, or the XML itself), renders the destination's
//     name_template, and maps the store's SendOutcome onto a DeliveryResult.
// A destination-wide fault (a refused credential, a missing bucket or directory, an unknown host
// key) is reported as "no answer", so the destination yields as when it is unreachable and no
// file is given up for it; the message goes to /readyz. Thread-compatible: one client per worker.

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "delivery.hpp"
#include "destinations.hpp"
#include "payload.hpp"
#include "sender_config.hpp"
#include "stored_bytes.hpp"
#include "transfer/key_file.hpp"

namespace transfer::sender {

// How a probe went: answered (reachable and usable) or why not.
struct ProbeResult {
  bool answered = false;
  std::string error;
};

class DestinationClient {
 public:
  virtual ~DestinationClient() = default;
  // `payload` is prepared (kReady); `key` is the destination's current encryption key (unused
  // for payload "xml").
  virtual DeliveryResult send(FilePayload& payload, const FernetKey& key,
                              const std::string& transfer_id) = 0;
  virtual ProbeResult probe() = 0;
  virtual void abort() = 0;  // from another thread: end what is in progress now
  // Once per start, before the first send() of any of the destination's clients: what an earlier
  // run left (see ObjectStore::recover). Says what it did ("" nothing).
  virtual Result<std::string> recover() { return std::string(); }
};

// What S3, SFTP and FTPS clients implement: store bytes under a name, verified.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // `name` is the rendered name_template (an S3 store puts its prefix in front).
  virtual SendOutcome put(const std::string& name, StoredBytes& bytes,
                          const std::map<std::string, std::string>& metadata) = 0;
  virtual ProbeOutcome probe() = 0;
  virtual void abort() = 0;
  // Once per start, before the first put(): clears what an earlier run left on the store (S3:
  // incomplete multipart uploads under the prefix). Says what it did ("" nothing).
  virtual Result<std::string> recover() { return std::string(); }
};

// The bytes `destination` stores for a prepared payload.
Result<std::unique_ptr<StoredBytes>> stored_bytes_for(FilePayload& payload, const Destination& d,
                                                      const FernetKey& key);

// Maps a store's outcome onto what the scheduler reads.
DeliveryResult delivery_result_of(const SendOutcome& outcome, double seconds);

// The client for `destination` (credential files are read here: kInvalidArgument naming the file
// when one cannot be).
Result<std::unique_ptr<DestinationClient>> make_destination_client(const Destination& destination,
                                                                   const SenderConfig& config,
                                                                   const std::atomic<bool>& cancel);

// An ObjectStore behind the DestinationClient interface (exposed for tests).
std::unique_ptr<DestinationClient> store_client(Destination destination,
                                                std::unique_ptr<ObjectStore> store);

}  // namespace transfer::sender
