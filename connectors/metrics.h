// The Prometheus text of GET /metrics, made with prometheus-cpp (its core library only: our own HTTP
// server serves the text). The series, their types and meanings; these names are stable (dashboards
// and tests read them):
//
//   qudao_events_total{partition,outcome}  counter    records consumed, by outcome applied | duplicate | rejected
//   qudao_anomalies_total{partition}       counter    applied events flagged as anomalies
//   qudao_next_offset{partition}           gauge      next input offset committed to RocksDB
//   qudao_high_watermark{partition}        gauge      the broker's high watermark, as of its last fetch response
//   qudao_lag{partition}                   gauge      high watermark − next offset: records on the broker not yet
//                                                     committed (both gauges are absent until the first fetch)
//   qudao_commits_total                    counter    RocksDB commits
//   qudao_last_commit_seconds              gauge      latency of the last commit
//   qudao_commit_duration_seconds          histogram  latency of every commit, submit to durable (fsync included)
//   qudao_outbox_records_total{state}      counter    outbox records sent | delivered | found_sent (already on the
//                                                     broker when checking)
//   qudao_outbox_delivered_total{topic}    counter    outbox records acknowledged, per output topic dispatch |
//                                                     dead_letters
//   qudao_outbox_checks_total              counter    tail checks of the output topics
//   qudao_query_duration_seconds{path}     histogram  time to answer each endpoint path of the query API
//   qudao_ingest_requests_total{outcome}   counter    POST /v1/events requests the ingest answered (after the token
//                                                     and role checks), by outcome accepted (202) | rejected (4xx,
//                                                     nothing produced) | timed_out (503: not acknowledged within
//                                                     the delivery timeout) | failed (503: could not queue, a
//                                                     delivery error, or stopping)
//   qudao_ingest_events_total              counter    events of POST /v1/events acknowledged by the broker
//
// Events per second by outcome is rate(qudao_events_total[1m]) in Prometheus. The totals the
// pipeline keeps are copied into a Registry made for each scrape; the query latency histograms live
// as long as the API (QueryLatency). The outbox series are there only if the pipeline has a relay,
// the ingest series only if the server takes events (EventIngest::counters()).
#pragma once

#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/ingest_api.h"
#include "connectors/pipeline.h"

namespace qudao {

// Bucket bounds of the query latency histograms.
inline constexpr std::array<double, 12> kQueryLatencyBoundsSeconds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                                   0.01,   0.025,   0.05,   0.1,   0.25,   1.0};

// One latency histogram per endpoint path, all made up front, so the series are bounded by the
// endpoint table whatever paths clients ask for. Thread-safe.
class QueryLatency {
 public:
  explicit QueryLatency(const std::vector<std::string_view>& paths);
  QueryLatency(const QueryLatency&) = delete;
  QueryLatency& operator=(const QueryLatency&) = delete;

  // A path not given to the constructor is not recorded.
  void observe(std::string_view path, std::chrono::steady_clock::duration elapsed);
  std::vector<prometheus::MetricFamily> collect() const { return registry_.Collect(); }

 private:
  prometheus::Registry registry_;
  std::vector<std::pair<std::string, prometheus::Histogram*>> by_path_;
};

// The whole text of /metrics (Prometheus text format 0.0.4).
std::string metrics_text(const PipelineStats& stats, const QueryLatency& queries,
                         const std::optional<EventIngest::Counters>& ingest = std::nullopt);

}  // namespace qudao
