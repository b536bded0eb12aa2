#include "connectors/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include <algorithm>

namespace qudao {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

QueryLatency::QueryLatency(const std::vector<std::string_view>& paths) {
  auto& family = BuildHistogram()
                     .Name("qudao_query_duration_seconds")
                     .Help("Time to answer a request to the query API, per endpoint path.")
                     .Register(registry_);
  const prometheus::Histogram::BucketBoundaries bounds(kQueryLatencyBoundsSeconds.begin(),
                                                       kQueryLatencyBoundsSeconds.end());
  for (std::string_view path : paths) {
    by_path_.emplace_back(std::string(path), &family.Add({{"path", std::string(path)}}, bounds));
  }
}

void QueryLatency::observe(std::string_view path, std::chrono::steady_clock::duration elapsed) {
  const auto it = std::find_if(by_path_.begin(), by_path_.end(), [&](const auto& e) { return e.first == path; });
  if (it != by_path_.end()) it->second->Observe(std::chrono::duration<double>(elapsed).count());
}

namespace {

// A Counter can only go up from zero: one made for this scrape is brought to the pipeline's total.
void set_counter(prometheus::Family<prometheus::Counter>& family, const prometheus::Labels& labels, double total) {
  family.Add(labels).Increment(total);
}

// The pipeline's histogram snapshot (cumulative bucket counts) into a histogram made for this scrape.
void set_histogram(prometheus::Family<prometheus::Histogram>& family, const prometheus::ClientMetric::Histogram& from,
                   const prometheus::Histogram::BucketBoundaries& bounds) {
  std::vector<double> increments;
  std::uint64_t below = 0;
  for (const auto& bucket : from.bucket) {  // the last bucket is +Inf
    increments.push_back(static_cast<double>(bucket.cumulative_count - below));
    below = bucket.cumulative_count;
  }
  increments.resize(bounds.size() + 1);  // before the first commit the snapshot has no buckets
  family.Add({}, bounds).ObserveMultiple(increments, from.sample_sum);
}

}  // namespace

std::string metrics_text(const PipelineStats& s, const QueryLatency& queries,
                         const std::optional<EventIngest::Counters>& ingest) {
  prometheus::Registry r;
  auto& events = BuildCounter().Name("qudao_events_total").Help("Records consumed from the events topic, by outcome.").Register(r);
  auto& anomalies = BuildCounter().Name("qudao_anomalies_total").Help("Applied events flagged as anomalies.").Register(r);
  auto& next_offset =
      BuildGauge().Name("qudao_next_offset").Help("Next input offset committed to RocksDB, per partition.").Register(r);
  auto& high = BuildGauge()
                   .Name("qudao_high_watermark")
                   .Help("The broker's high watermark per partition, as of its last fetch response.")
                   .Register(r);
  auto& lag = BuildGauge()
                  .Name("qudao_lag")
                  .Help("Records on the broker not yet committed to RocksDB: high watermark - next offset.")
                  .Register(r);
  auto& evicted = BuildCounter()
                      .Name("qudao_evicted_total")
                      .Help("Ended orders and shipments evicted from memory once durable, per partition and kind.")
                      .Register(r);
  auto& read_back = BuildCounter()
                        .Name("qudao_evicted_read_back_total")
                        .Help("Evicted orders and shipments read back from RocksDB for an event naming them.")
                        .Register(r);
  for (const PartitionStats& p : s.partitions) {
    const std::string partition = std::to_string(p.partition.value);
    set_counter(evicted, {{"partition", partition}, {"kind", "order"}}, static_cast<double>(p.eviction.orders_evicted));
    set_counter(evicted, {{"partition", partition}, {"kind", "shipment"}},
                static_cast<double>(p.eviction.shipments_evicted));
    set_counter(read_back, {{"partition", partition}, {"kind", "order"}}, static_cast<double>(p.eviction.orders_reloaded));
    set_counter(read_back, {{"partition", partition}, {"kind", "shipment"}},
                static_cast<double>(p.eviction.shipments_reloaded));
    for (auto [outcome, v] : {std::pair{"applied", p.counts.applied}, {"duplicate", p.counts.duplicates},
                              {"rejected", p.counts.rejected}}) {
      set_counter(events, {{"partition", partition}, {"outcome", outcome}}, static_cast<double>(v));
    }
    set_counter(anomalies, {{"partition", partition}}, static_cast<double>(p.counts.anomalies));
    next_offset.Add({{"partition", partition}}).Set(static_cast<double>(p.next_offset.value));
    if (p.high_watermark.value >= 0) {
      high.Add({{"partition", partition}}).Set(static_cast<double>(p.high_watermark.value));
      // A watermark older than the records applied since cannot mean a negative lag.
      lag.Add({{"partition", partition}}).Set(static_cast<double>(std::max<std::int64_t>(0, p.high_watermark.value - p.next_offset.value)));
    }
  }
  set_counter(BuildCounter().Name("qudao_commits_total").Help("RocksDB commits.").Register(r), {},
              static_cast<double>(s.commits));
  BuildGauge()
      .Name("qudao_last_commit_seconds")
      .Help("Latency of the last commit.")
      .Register(r)
      .Add({})
      .Set(std::chrono::duration<double>(s.last_commit_latency).count());
  set_histogram(BuildHistogram()
                    .Name("qudao_commit_duration_seconds")
                    .Help("Latency of each RocksDB commit, from submit to durable (fsync included).")
                    .Register(r),
                s.commit_latency, {kCommitLatencyBoundsSeconds.begin(), kCommitLatencyBoundsSeconds.end()});
  if (s.relay) {
    auto& records = BuildCounter()
                        .Name("qudao_outbox_records_total")
                        .Help("Outbox records (dispatch requests, dead letters): sent, delivered, or found already on "
                              "the broker when checking.")
                        .Register(r);
    for (auto [state, v] : {std::pair{"sent", s.relay->sent}, {"delivered", s.relay->delivered},
                            {"found_sent", s.relay->found_sent}}) {
      set_counter(records, {{"state", state}}, static_cast<double>(v));
    }
    auto& delivered = BuildCounter()
                          .Name("qudao_outbox_delivered_total")
                          .Help("Outbox records acknowledged by the broker, per output topic.")
                          .Register(r);
    set_counter(delivered, {{"topic", "dispatch"}}, static_cast<double>(s.relay->delivered_dispatch));
    set_counter(delivered, {{"topic", "dead_letters"}}, static_cast<double>(s.relay->delivered_dead_letters));
    set_counter(delivered, {{"topic", "events"}}, static_cast<double>(s.relay->delivered_events));
    BuildGauge()
        .Name("qudao_outbox_undelivered")
        .Help("Outbox records handed to the relay (or left from before a restart) and not yet acknowledged.")
        .Register(r)
        .Add({})
        .Set(static_cast<double>(s.relay->undelivered));
    set_counter(BuildCounter()
                    .Name("qudao_outbox_checks_total")
                    .Help("Tail checks of the output topics (after a restart or a failed send).")
                    .Register(r),
                {}, static_cast<double>(s.relay->checks));
  }
  if (ingest) {
    auto& requests = BuildCounter()
                         .Name("qudao_ingest_requests_total")
                         .Help("POST /v1/events requests answered by the ingest: accepted (202), rejected (4xx, nothing "
                               "produced), timed_out (503, not acknowledged in time) or failed (503 otherwise).")
                         .Register(r);
    for (auto [outcome, v] : {std::pair{"accepted", ingest->requests_accepted}, {"rejected", ingest->requests_refused},
                              {"timed_out", ingest->requests_timed_out}, {"failed", ingest->requests_failed}}) {
      set_counter(requests, {{"outcome", outcome}}, static_cast<double>(v));
    }
    set_counter(BuildCounter()
                    .Name("qudao_ingest_events_total")
                    .Help("Events of POST /v1/events acknowledged by the broker.")
                    .Register(r),
                {}, static_cast<double>(ingest->events_delivered));
  }
  std::vector<prometheus::MetricFamily> families = r.Collect();
  for (prometheus::MetricFamily& f : queries.collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace qudao
