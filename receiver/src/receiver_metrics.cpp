#include "receiver_metrics.hpp"

namespace transfer::receiver {

const char* rejection_reason(const UploadOutcome& outcome) {
  if (outcome.check) {
    return outcome.check->outcome == CheckOutcome::kRefused ? "content_refused" : "check_unavailable";
  }
  switch (outcome.status) {
    case 400: return "bad_request";
    case 401: return "unauthenticated";
    case 409: return "conflict";
    case 411: return "length_required";
    case 413: return "too_large";
    case 415: return "unsupported_media_type";
    case 422: return "invalid_token";
    case 503: return outcome.retry_after_s ? "busy" : "ledger_unavailable";
    case 507: return "no_space";
    default: return "internal_error";
  }
}

ReceiverMetrics::ReceiverMetrics(std::function<double()> in_flight, std::function<double()> free_bytes)
    : uploads_(registry_.counter("transfer_receiver_uploads_total",
                                 "Uploads answered, by outcome (accepted, duplicate, rejected) and HTTP status",
                                 {"outcome", "code"})),
      written_bytes_(registry_.counter("transfer_receiver_written_bytes_total",
                                       "Plaintext bytes written to new output files").get()),
      duration_(registry_.histogram("transfer_receiver_upload_duration_seconds",
                                    "Time from an upload's request head to its answer", latency_buckets())
                    .get()),
      duplicates_(registry_.counter("transfer_receiver_duplicates_total",
                                    "Retries of a delivered file answered from the ledger (nothing rewritten)")
                      .get()),
      rejections_(registry_.counter("transfer_receiver_rejections_total", "Uploads refused, by reason",
                                    {"reason"})),
      decrypts_(registry_.counter("transfer_receiver_decrypts_total",
                                  "Tokens decrypted, by the index of the key that opened them (line in the key file, from 0)",
                                  {"key_index"})),
      check_refusals_(registry_.counter("transfer_receiver_check_refusals_total",
                                        "Uploads a plaintext check refused (422), by check and reason", {"check", "reason"})),
      checks_unavailable_(registry_.counter("transfer_receiver_checks_unavailable_total",
                                            "Uploads answered 503 because a plaintext check could not be done",
                                            {"check", "reason"})),
      scans_(registry_.counter("transfer_receiver_virus_scans_total", "Virus scans by clamd, by result (clean, found, error)",
                               {"result"})),
      detections_(registry_.counter("transfer_receiver_virus_detections_total",
                                    "Uploads clamd found a virus in, by the signature it named", {"signature"})),
      scan_seconds_(registry_.histogram("transfer_receiver_virus_scan_seconds",
                                        "Time from connecting to clamd to its verdict", latency_buckets())
                        .get()) {
  registry_.gauge_callback("transfer_receiver_uploads_in_flight", "Uploads being received now", std::move(in_flight));
  registry_.gauge_callback("transfer_receiver_free_bytes", "Bytes free for the output directory", std::move(free_bytes));
  registry_.gauge("transfer_receiver_build_info", "Version of the running receiver (always 1)", {"version"})
      .with({TRANSFER_VERSION})
      .set(1);
}

void ReceiverMetrics::watch(const http::FrontStats& f, const RouteStats& routes,
                            std::function<double()> unsigned_bytes_in_flight) {
  auto read = [](const auto& atomic) { return [&atomic] { return static_cast<double>(atomic.load()); }; };
  registry_.gauge_callback("transfer_receiver_unsigned_bytes_in_flight",
                           "Content-Length of the unsigned uploads being received (UNSIGNED_UPLOAD_BUDGET)",
                           std::move(unsigned_bytes_in_flight));
  registry_.gauge_callback("transfer_receiver_connections_open", "Client connections open", read(f.open));
  registry_.gauge_callback("transfer_receiver_connections_with_workers",
                           "Connections whose request a worker is serving", read(f.with_workers));
  registry_.counter_callback("transfer_receiver_connections_accepted_total", "Connections accepted", read(f.accepted));
  registry_.counter_callback("transfer_receiver_connections_over_client_limit_total",
                             "Connections refused (429) over MAX_CONNECTIONS_PER_CLIENT", read(f.refused_per_client));
  registry_.counter_callback("transfer_receiver_connections_over_total_limit_total",
                             "Connections refused (503) with every connection busy at MAX_CONNECTIONS",
                             read(f.refused_full));
  registry_.counter_callback("transfer_receiver_connections_evicted_total",
                             "Idle connections (or heads still arriving) closed to make room at MAX_CONNECTIONS",
                             read(f.evicted));
  registry_.counter_callback("transfer_receiver_head_timeouts_total",
                             "Request heads not complete within HEADER_TIMEOUT", read(f.head_timeouts));
  registry_.counter_callback("transfer_receiver_head_refusals_total",
                             "Request heads refused by the framing rules and limits (400/414/417/431/501/505)",
                             read(f.head_refusals));
  registry_.counter_callback("transfer_receiver_answered_by_front_total",
                             "Requests the connection front answered itself (GET /, refusals), without a worker",
                             read(f.answered_here));
  registry_.counter_callback("transfer_receiver_answer_timeouts_total",
                             "Connections closed because the client did not take its answer within ANSWER_TIMEOUT",
                             read(f.answer_timeouts));
  registry_.counter_callback("transfer_receiver_answers_over_budget_total",
                             "Large answers replaced by 503 while unread answers held the whole answer budget",
                             read(f.answers_over_budget));
  registry_.counter_callback("transfer_receiver_bodies_refused_total",
                             "Requests refused (413) for a body on a route that takes none", read(routes.body_refused));
  registry_.counter_callback("transfer_receiver_requests_not_routed_total",
                             "Requests refused by the routes: unknown path (404), method (405), bad escape (400), "
                             "Content-Encoding on a body (415)",
                             read(routes.not_routed));
}

void ReceiverMetrics::record(const UploadOutcome& o, double seconds) {
  const std::string code = std::to_string(o.status);
  duration_.observe(seconds);
  if (o.status != 201) {
    uploads_.with({"rejected", code}).add();
    if (o.check) {
      auto& family = o.check->outcome == CheckOutcome::kRefused ? check_refusals_ : checks_unavailable_;
      family.with({o.check->check, o.check->reason}).add();
    }
    rejections_.with({rejection_reason(o)}).add();
    return;
  }
  decrypts_.with({std::to_string(o.key_index)}).add();
  if (o.duplicate) {
    uploads_.with({"duplicate", code}).add();
    duplicates_.add();
  } else {
    uploads_.with({"accepted", code}).add();
    written_bytes_.add(static_cast<double>(o.bytes));
  }
}

void ReceiverMetrics::record_scan(const CheckVerdict& v, double seconds) {
  scan_seconds_.observe(seconds);
  if (v.passed()) {
    scans_.with({"clean"}).add();
  } else if (v.outcome == CheckOutcome::kRefused) {
    scans_.with({"found"}).add();
    detections_.with({v.signature}).add();
  } else {
    scans_.with({"error"}).add();
  }
}

}  // namespace transfer::receiver
