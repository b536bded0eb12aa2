// Two `qudao bench` rows about writing, both against a real broker and an engine (tools/service.h)
// run in the bench's own process on a fresh topic and data directory:
//
//   visible   produce → visible in a query: scan-outs (qty 1, one store, one sku) produced with the
//             idempotent producer at a fixed rate; a poller queries that store's stock over HTTP
//             every millisecond, and on_hand = −(scan-outs applied so far) says how many are
//             visible. An event's latency runs from when it was due to be produced (its slot in the
//             fixed schedule, not when the producer got to it: no coordinated omission) to the first
//             answer that shows it. Resolution: the 1 ms poll period plus one query.
//   post      POST /v1/events throughput: clients post batches of kPostBatchEvents scan-outs on
//             keep-alive connections for a fixed time; events per second answered 202 (each 202
//             means the broker acknowledged the batch with acks=all).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "connectors/kafka.h"

namespace qudao {

inline constexpr std::size_t kPostBatchEvents = 100;

struct VisibleOptions {
  double rate_events_per_s = 250'000;
  std::chrono::seconds duration{10};
  int post_clients = 2;
  std::chrono::seconds post_duration{10};
};

struct Latencies {
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};

struct VisibleResult {
  std::uint64_t events = 0;  // produced and seen
  double seconds = 0;        // producing them
  double cpu_seconds = 0;    // of the whole process over the produce phase
  Latencies latency;
  double worst_commit_ms = 0;  // the slowest RocksDB commit (fsync'ed) the polls saw: a commit that
                               // outlasts the commit interval holds up applying
};

struct PostResult {
  std::uint64_t events = 0;  // answered 202
  std::uint64_t requests = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  Latencies latency;  // per request
};

Result<VisibleResult> bench_visible(const KafkaSettings& kafka, const VisibleOptions& options,
                                    const std::atomic<bool>& stop);
Result<PostResult> bench_post(const KafkaSettings& kafka, const VisibleOptions& options, const std::atomic<bool>& stop);

}  // namespace qudao
