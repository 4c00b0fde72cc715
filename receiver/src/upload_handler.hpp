#pragma once
// One upload, POST /upload/<name>, served on an upload worker over the connection the front
// handed it: the gate (signature, disk) before a byte of body is read, "100 Continue" when the
// client waits for it, then the body streamed from the socket into an UploadSession. Knows
// nothing of routing or of how the answer is framed: it returns the outcome and whether the
// body was read to its end (if not, the connection cannot carry another request).

#include <cstdint>
#include <functional>
#include <string>

#include "output_committer.hpp"
#include "transfer/http/body_reader.hpp"
#include "transfer/http/connection.hpp"
#include "transfer/http/request_head.hpp"
#include "upload_gate.hpp"
#include "upload_session.hpp"

namespace transfer::receiver {

// The parts of an upload's head the upload rules look at, from the front's parse.
UploadRequestHead upload_request_head(const http::RequestHead& head, std::string name);

struct UploadResult {
  UploadOutcome outcome;
  bool body_complete = true;   // the whole body was read (or there was none)
  bool signed_upload = false;  // its head carried a valid signature
};

class UploadHandler {
 public:
  UploadHandler(const UploadSettings& settings, UploadGate& gate, OutputCommitter& committer,
                http::BodyTimeouts timeouts, double write_timeout_s,
                std::function<void()> before_upload)
      : settings_(settings),
        gate_(gate),
        committer_(committer),
        timeouts_(timeouts),
        write_timeout_s_(write_timeout_s),
        before_upload_(std::move(before_upload)) {}

  // `upload` passed precheck_upload(). The clock is read here (signature window, token TTL).
  UploadResult serve(http::Connection& connection, const http::RequestHead& head,
                     const UploadRequestHead& upload);

 private:
  const UploadSettings& settings_;
  UploadGate& gate_;
  OutputCommitter& committer_;
  http::BodyTimeouts timeouts_;
  double write_timeout_s_;
  std::function<void()> before_upload_;
};

}  // namespace transfer::receiver
