#pragma once
// Delivery (issue 14's "delivery" part of the sender): one prepared payload to one destination:
// upload it (the XML in memory encrypted with the destination's key as it is sent, or that
// destination's spooled token), then classify the answer. A 201 counts only when the digest the
// receiver reports (ours does; the Python one does not) is the XML's. Recording the outcome is the
// caller's (the scheduler decides retries, the state database keeps them).

#include <string>

#include "payload.hpp"
#include "retry_policy.hpp"
#include "uploader.hpp"

namespace transfer::sender {

struct DeliveryResult {
  AttemptVerdict verdict = AttemptVerdict::kTransient;
  bool cancelled = false;   // stopped by shutdown: no verdict
  bool answered = false;    // an HTTP answer came (the destination is reachable)
  int status = 0;           // the HTTP status (0: none)
  std::string error;        // why it failed, in an operator's words
  std::string body;         // the receiver's answer
  std::string retry_after;  // its Retry-After header
  bool duplicate = false;   // the receiver already had it (its ledger said so)
  uint64_t bytes_sent = 0;  // bytes stored (on delivery)
  int parts = 0;            // S3 multipart parts (0: one request)
  double upload_seconds = 0;
};

// `payload` must be prepared (kReady); `key` encrypts an in-memory payload (a spooled token was
// encrypted with the key it was made with).
DeliveryResult deliver(FilePayload& payload, const std::string& destination, const FernetKey& key,
                       const std::string& transfer_id, Uploader& uploader);

// "receiver answered 409: <its msg>" from an answer's status and JSON body.
std::string answer_message(int status, const std::string& body);

}  // namespace transfer::sender
