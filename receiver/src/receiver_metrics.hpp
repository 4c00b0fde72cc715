#pragma once
// The receiver's Prometheus metrics (GET /metrics), all named transfer_receiver_*:
//   uploads_total{outcome,code}      every upload answered: accepted, duplicate or rejected
//   written_bytes_total              plaintext bytes written to new output files
//   upload_duration_seconds          histogram, from the request head to the answer
//   duplicates_total                 retries answered from the ledger
//   rejections_total{reason}         refusals by reason (bad_request, invalid_token, ...)
//   decrypts_total{key_index}        tokens decrypted, by the index of the key that opened them
//                                    (line of the key file: watch the old key's reach zero)
//   uploads_in_flight, free_bytes    gauges read when scraped
//   unsigned_bytes_in_flight         Content-Length of unsigned uploads being received (their budget)
//   connections_open, connections_with_workers            gauges of the connection front
//   connections_accepted_total, connections_over_client_limit_total,
//   connections_over_total_limit_total, connections_evicted_total, head_timeouts_total,
//   head_refusals_total, answer_timeouts_total, answers_over_budget_total,
//   answered_by_front_total                                 what the connection front did
//   bodies_refused_total, requests_not_routed_total       what the routes refused
//   check_refusals_total{check,reason}      uploads a plaintext check refused (422): xml, schema,
//                                    virus_scan; reasons not_wellformed, entity, too_deep, invalid, found...
//   checks_unavailable_total{check,reason}  uploads a check could not decide (503): clamd unreachable...
//   virus_scans_total{result}        clean, found, error; virus_scan_seconds histogram
//   virus_detections_total{signature}  by the signature clamd named (its database's fixed set)
//   build_info{version}              always 1

#include <functional>

#include "receiver_routes.hpp"
#include "transfer/http/connection_front.hpp"
#include "transfer/metrics.hpp"
#include "upload_session.hpp"

namespace transfer::receiver {

class ReceiverMetrics {
 public:
  ReceiverMetrics(std::function<double()> in_flight, std::function<double()> free_bytes);
  void record(const UploadOutcome& outcome, double seconds);
  // One virus scan's verdict and duration (every scan, clean ones included).
  void record_scan(const CheckVerdict& verdict, double seconds);
  // Adds the connection front's counters (once it exists) and the unsigned uploads' budget use.
  void watch(const http::FrontStats& front, const RouteStats& routes,
             std::function<double()> unsigned_bytes_in_flight);
  std::string render() const { return registry_.render(); }

 private:
  MetricsRegistry registry_;
  Family<Counter>& uploads_;
  Counter& written_bytes_;
  Histogram& duration_;
  Counter& duplicates_;
  Family<Counter>& rejections_;
  Family<Counter>& decrypts_;
  Family<Counter>& check_refusals_;
  Family<Counter>& checks_unavailable_;
  Family<Counter>& scans_;
  Family<Counter>& detections_;
  Histogram& scan_seconds_;
};

// The reason label of a refusal: a small fixed set.
const char* rejection_reason(const UploadOutcome& outcome);

}  // namespace transfer::receiver
