// qudao bench's query70 row: query latency while `qudao serve` ingests at a fixed rate below its
// maximum (by default 70 % of the bench's own ingest row, as the issue asks).
//
//   - `qudao serve` in a process of its own on an empty data directory, listening and assigned
//     before the clock starts, reads the simulated channel's events at ingest_rate_events_per_s
//     from one of two sources:
//       pre-produced (the default): the topic the bench produced before its ingest row, read from
//         its first offset with serve's consumption limit at the rate (`serve --max-events-per-s`,
//         connectors/consume_rate.h). Like the ingest row that defines the maximum, nothing else
//         runs on the machine while serve reads: in a deployment the producers are other machines.
//       live: a fresh topic (8 partitions) that the paced producer (produce_paced,
//         tools/bench_visible.h) writes, in order, at the rate while serve reads it, on the same
//         cores as serve and the broker;
//     either way event i is due at the schedule's start + i / rate;
//   - the window starts after the warm-up, once serve has caught up with the schedule (serve's
//     first seconds on a new topic are slow), and lasts duration_max, less if the workload would
//     run out;
//   - one keep-alive client sends requests at a fixed rate through the window, in turn to each of
//     kQueryTargets. A latency counts from when the request
//     was due, not when it was sent (no coordinated omission); percentiles are exact, from every
//     sample;
//   - a status poller on a connection of its own samples serve's consumed count every
//     kStatusPollPeriod against the schedule: the lag, the events serve consumed in the window, and
//     (live) how long after the window serve had consumed every event produced (it must keep up).
//
// With QueryClient::off the same run has no query client: it is the baseline of serve's ingest at
// that rate, which the bench compares with a run with the client (the issue's "ingest slowed by ≤ 10
// %"). Runs compared with each other get the same window_at, so that each window starts at the
// same slot of the schedule (the same events) unless a run has not caught up by then.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tools/bench_visible.h"
#include "tools/commands.h"

namespace qudao {

struct QueryTarget {
  const char* name;
  const char* target;
};

// A point query (one location × sku), one location's stock (every sku), a region's leaderboard.
inline constexpr QueryTarget kQueryTargets[] = {
    {"point", "/v1/stock?location=2&sku=1"},
    {"location", "/v1/stock?location=2"},
    {"leaderboard", "/v1/leaderboard?region=East&period=2026-Q1"},
};

inline constexpr std::chrono::milliseconds kStatusPollPeriod{100};
// After the last slot, how long serve may take to consume every event before the row fails.
inline constexpr std::chrono::seconds kQueryCatchUpMax{120};

// Whether the run's client sends its queries.
enum class QueryClient : std::uint8_t { on, off };

struct QueryUnderIngestOptions {
  double ingest_rate_events_per_s = 100'000;
  // Set: serve reads this topic, which already holds the records, at the rate (pre-produced).
  // Empty: the bench produces the records live to a fresh topic at the rate.
  std::string pre_produced_topic;
  QueryClient client = QueryClient::on;
  // Produced at the rate before the window, which starts once serve has also caught up: serve's
  // first seconds on a new topic are slow (its first fetches, the workload's first events).
  std::chrono::seconds warmup{3};
  // Set: the window starts no sooner than this long after the schedule's start (and, as without
  // it, once serve has caught up): runs that are compared then cover the same slots of the workload
  // when each has caught up by then.
  std::optional<std::chrono::milliseconds> window_at;
  std::chrono::seconds duration_max{20};  // the window, shorter if the workload runs out
  std::chrono::microseconds request_interval{2'000};  // 500 requests/s over all targets
};

struct EndpointLatency {
  std::string name;
  std::string target;
  std::uint64_t requests = 0;
  std::uint64_t not_found = 0;  // 404: the location not defined yet, early in the window
  Latencies latency;
};

struct QueryUnderIngestResult {
  std::vector<EndpointLatency> endpoints;  // in kQueryTargets' order; none with QueryClient::off
  double warmup_seconds = 0;               // until serve had caught up (see QueryUnderIngestOptions)
  std::uint64_t lag_start_events = 0;     // due but not yet consumed when the window started
  std::uint64_t produced = 0;             // due in the window (pre-produced: what the limit allowed)
  double window_seconds = 0;
  double producer_done_seconds = 0;       // from the window's start until the producer stopped
  std::uint64_t consumed_in_window = 0;   // by serve, between the status polls that start and end the window
  std::uint64_t lag_end_events = 0;       // due but not yet consumed at the window's end
  std::uint64_t lag_max_events = 0;       // the most due but not yet consumed at any poll in the window
  double catch_up_ms = 0;                 // live: from the window's end until serve had consumed every event
  double serve_cpu_seconds = 0;           // the serve process, over the window
  double produced_rate() const { return window_seconds > 0 ? static_cast<double>(produced) / window_seconds : 0; }
  double consumed_rate() const {
    return window_seconds > 0 ? static_cast<double>(consumed_in_window) / window_seconds : 0;
  }
};

// One event to produce: its key and value, in memory the caller keeps alive.
struct RecordRef {
  std::span<const std::uint8_t> key;
  std::span<const std::uint8_t> value;
};

Result<QueryUnderIngestResult> bench_query_under_ingest(const std::string& qudao_binary, const KafkaArgs& kafka_args,
                                                        std::span<const RecordRef> records,
                                                        const QueryUnderIngestOptions& options,
                                                        const std::atomic<bool>& stop);

}  // namespace qudao
