// Two `qudao bench` rows about writing, both against a real broker and an engine (tools/service.h)
// run in the bench's own process on a fresh topic and data directory:
//
//   visible   produce → visible in a query: scan-outs (qty 1, one store, one sku) produced with the
//             idempotent producer at a fixed rate; a poller queries that store's stock over HTTP
//             every millisecond, and on_hand = −(scan-outs applied so far) says how many are
//             visible. An event's latency runs from when it was due to be produced (its slot in the
//             fixed schedule, not when the producer got to it: no coordinated omission) to the first
//             answer that shows it. Resolution: the 1 ms poll period plus one query. Each poll also
//             splits the events not yet visible into those the broker has not acknowledged yet and
//             those it has (so a stall is placed before or after the broker).
//   post      POST /v1/events throughput: clients post batches of kPostBatchEvents scan-outs on
//             keep-alive connections for a fixed time; events per second answered 202 (each 202
//             means the broker acknowledged the batch with acks=all).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

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

// p50, p99, p99.9 and max of `ms` (sorted in place): exact, from every sample.
Latencies percentiles(std::vector<double>& ms);

// A fixed schedule: record i is due at start + i / rate.
struct PacedSchedule {
  std::chrono::steady_clock::time_point start;
  double rate_per_s = 1;
  std::chrono::steady_clock::time_point due(std::uint64_t i) const {
    return start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(static_cast<double>(i) / rate_per_s));
  }
};

// The longest the paced producer sleeps before it looks at the clock again.
inline constexpr std::chrono::microseconds kPacedSleepMax{200};

// Calls produce_one(i) for i = 0 .. count-1, each once its slot has come; a producer that fell
// behind produces every overdue record at once (their latencies still count from their slots).
// Returns at the first error, or early (ok) when `stop` is set. The caller flushes.
Status produce_paced(const PacedSchedule& schedule, std::uint64_t count, const std::atomic<bool>& stop,
                     const std::function<Status(std::uint64_t)>& produce_one);

struct VisibleResult {
  std::uint64_t events = 0;  // produced and seen
  double seconds = 0;        // producing them
  double cpu_seconds = 0;    // of the whole process over the produce phase
  Latencies latency;
  double worst_commit_ms = 0;  // the slowest RocksDB commit (fsync'ed) the polls saw
  // Where the delay was, at worst, in ms of the schedule (events at the rate): events due but not
  // yet acknowledged by the broker to the producer, and events acknowledged but not yet visible
  // (the consumer's fetch and the engine's apply).
  double unacked_max_ms = 0;
  double unseen_max_ms = 0;
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
