// POST /v1/events: events in the contract's JSON form (events/json.h) over HTTP, for writers without
// a Kafka client (a store's scan-out mini-program, a distributor's ordering tool). The query API
// (connectors/query_api.h) authenticates the request and routes it here for the `ingest` role.
//
// The request:
//   POST /v1/events[?region=REGION]
//   Content-Type: application/json                 (else 415; NDJSON is not accepted: one JSON value)
//   body: one event object, or an array of 1..kIngestBatchEventsMax of them (more: 413; a body over
//         the server's --http-body-bytes-max is refused with 413 before it is read)
//
// Every event is validated before any is produced: JSON syntax and schema (FlatBuffers' parser),
// decode()'s validation, and its shard key (events/shard_key.h). The key is `region` if given (for
// every event of the request), else a LocationDefined's own region, else the region this server
// knows for the location the event is about (it must have applied that location's LocationDefined);
// an event with no key that way fails (give ?region=). An event about a location the server knows in
// another region than its key fails too: it would land on a shard that does not hold the location.
//
// An ingest token with `regions` (connectors/access.h) writes only within them: every key must be one
// of its regions, and every location an event names (also a dispatch's to_location and an order's
// fulfilment_location) must be one the server knows in those regions; a location elsewhere and an
// unknown one get the same answer, so that ids of other regions cannot be probed. LocationDefined may
// define new locations in its regions. Events that name no location (payments, cancellations,
// catalogue, targets, rebates, training) are checked by key only: an OrderPaid for an order of
// another region on the same partition is not caught here.
//
// The answers:
//   202 {"event_ids": [...]}      every event acknowledged by the broker (acks=all, idempotent
//                                 producer); ids as 32 hex digits (events/shard_key.h), in body order
//   400 / 403 {"error", "rejected": [{"index", "field", "reason", "message"}]}
//                                 nothing produced; every failing event listed (403 if any is outside
//                                 the token's regions), index counted from 0 in the body's array
//   503 {"error", "event_ids"}    Kafka did not acknowledge every event within delivery_timeout (or
//                                 the producer's queue is full, or the server is stopping): some may
//                                 have been produced. Posting the same events again is safe: the
//                                 engine applies an event id once and counts re-sent ones as duplicates.
// Each answer is counted (counters(); /metrics: qudao_ingest_requests_total{outcome}, where a 503 is
// timed_out or failed, and qudao_ingest_events_total).
//
// Records are produced like `qudao produce` produces them (KafkaProducer's settings: idempotent,
// acks=all, murmur2_random on the key), with the headers events/PRODUCERS.md asks for:
// `qudao-schema-version` and `content-type: application/x-qudao-flatbuffer`.
//
// Threading: post() runs on the HTTP I/O thread and never waits for Kafka; a thread of the ingest
// polls librdkafka for delivery reports and deadlines and answers through the responder. The
// producer is shared by every request. Destruction flushes (at most delivery_timeout), answers what
// is still waiting with 503, and then purges.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "connectors/access.h"
#include "connectors/http_server.h"
#include "connectors/kafka.h"
#include "projections/stock.h"

namespace qudao {

inline constexpr std::size_t kIngestBatchEventsMax = 1'000;
// JSON nesting deeper than this fails before anything else looks at the body (no event is deeper
// than 5).
inline constexpr std::size_t kIngestJsonDepthMax = 32;

struct IngestOptions {
  std::string topic;
  std::chrono::milliseconds delivery_timeout{10'000};
};

// One validated event of a request, ready to produce.
struct IngestRecord {
  std::string key;
  std::vector<std::uint8_t> value;
  std::string event_id;  // event_id_text()
  std::uint32_t schema_version = 0;
};

// The request's events, validated and keyed, or the 4xx answer. Reads `stock` for the regions of
// locations; no Kafka. Exposed for tests.
std::variant<std::vector<IngestRecord>, HttpResponse> validate_ingest(const HttpRequest& req, const Principal& principal,
                                                                      const StockProjection& stock);

class EventIngest {
 public:
  // The producer connects lazily: opening fails only on bad settings. `stock` must outlive this.
  static Result<std::unique_ptr<EventIngest>> open(const KafkaSettings& settings, IngestOptions options,
                                                   const StockProjection& stock);
  ~EventIngest();
  EventIngest(const EventIngest&) = delete;
  EventIngest& operator=(const EventIngest&) = delete;

  // Answers one authenticated POST /v1/events through `respond`, exactly once; any thread.
  void post(const HttpRequest& req, const Principal& principal, HttpResponder respond);

  // Since open(), for /metrics (connectors/metrics.h); every request it answered counts once.
  struct Counters {
    std::uint64_t requests_accepted = 0;   // answered 202
    std::uint64_t requests_refused = 0;    // answered 4xx: nothing produced
    std::uint64_t requests_timed_out = 0;  // answered 503: not acknowledged within delivery_timeout
    std::uint64_t requests_failed = 0;     // answered 503 otherwise: could not queue, a delivery error, stopping
    std::uint64_t events_delivered = 0;    // events acknowledged by the broker, whatever their request's answer
  };
  Counters counters() const;

  struct Impl;

 private:
  explicit EventIngest(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qudao
