// The pipeline: the whole event path in one loop (Pipeline::run in pipeline.cc).
//
//   Kafka partition --poll--> decode (verify + validate) --> apply to the shard's ledger
//        --> project into the read models --> every commit interval: one RocksDB WriteBatch with
//        the dirty state, outbox rows and next offsets --> advisory Kafka offset commit --> the relay
//        sends the committed outbox rows (dispatch requests, dead letters).
//
// A poll batch goes through the ledger and the projection in one BatchIngester pass
// (connectors/ingest_batch.h): each record is decoded a few records ahead of its apply, so that what
// it will read is prefetched while the records before it are applied; outcomes and state are those
// of taking the records one at a time.
//
// One thread runs the pipeline and owns every Shard; stats() may be called from any thread, and
// shows the counts the last commit made durable (never events a kill -9 would lose). The
// commit's write (and fsync) runs on the Committer's thread while the next events are applied; one
// commit at most is in flight. When the next commit is due while the write is still in flight,
// applying goes on (queries keep seeing new events) and the commit is made once the write is done,
// or waits for it once commit_events_max records have arrived since the last one. With
// QUDAO_BULK_THREAD_NICE set, the applying thread and the committer run at a lower CPU priority
// than the HTTP thread (engine/thread_priority.h; off by default). With consume_events_per_s_max
// set, each poll takes only what a token bucket allows (connectors/consume_rate.h).
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/histogram.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "connectors/consume_rate.h"
#include "connectors/ingest_batch.h"
#include "connectors/kafka.h"
#include "connectors/relay.h"
#include "engine/apply.h"
#include "engine/committer.h"
#include "engine/store.h"
#include "projections/orders.h"
#include "projections/performance.h"
#include "projections/stock.h"

namespace qudao {

struct PipelineOptions {
  std::chrono::milliseconds commit_interval{100};
  std::size_t commit_events_max = 200'000;   // commit sooner if this many records arrived
  std::size_t poll_batch_events_max = 10'000;
  std::chrono::milliseconds poll_timeout{50};
  std::chrono::milliseconds topic_wait_backoff_max{5'000};
  std::size_t dedup_window_events = kDedupWindowEventsDefault;  // per shard
  EvictionPolicy eviction;  // of ended orders and shipments, per shard (engine/eviction.h)
  double consume_events_per_s_max = 0;  // records taken from the source per second, at most; 0: no limit
};

struct PartitionStats {
  PartitionId partition;
  Offset next_offset;
  OutcomeCounts counts;
  std::uint64_t digest = 0;
  Offset high_watermark{-1};  // the broker's, from its last fetch response (no round trip); -1: none yet
  EvictionCounts eviction;    // ended orders and shipments evicted and read back (engine/eviction.h)
};

// Bucket bounds of the commit latency histogram (submit to durable, fsync included).
inline constexpr std::array<double, 15> kCommitLatencyBoundsSeconds{0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                                    0.005,  0.01,    0.025,  0.05,  0.1,
                                                                    0.25,   0.5,     1.0,    2.5,   5.0};

struct PipelineStats {
  std::string topic;
  std::vector<PartitionStats> partitions;
  OutcomeCounts totals;
  std::uint64_t commits = 0;
  std::chrono::microseconds last_commit_latency{0};
  prometheus::ClientMetric::Histogram commit_latency;  // every commit so far, seconds (kCommitLatencyBoundsSeconds)
  bool assigned = false;  // false while waiting for the topic to exist
  std::optional<RelayStats> relay;  // the outbox relay's counters, if this pipeline has one
};

// One record through the ledger and into the projections. The pipeline's loop takes a poll batch
// through BatchIngester (connectors/ingest_batch.h), which does exactly this for each record, faster.
RecordOutcome ingest_and_project(Applier& applier, Shard& shard, Offset offset, std::span<const std::uint8_t> bytes,
                                 StockProjection::Writer& projection, std::span<const std::uint8_t> key = {});

class Pipeline {
 public:
  // Loads every shard from the store (on 2 threads: Store::load) and rebuilds the projections from
  // them (the stock projection on a second thread beside the performance and order projections).
  // `relay`: where committed outbox rows go (dispatch requests, dead letters); none for replays,
  // which must not send anything.
  static Result<std::unique_ptr<Pipeline>> open(Store& store, KafkaSource& source, StockProjection& stock,
                                                PipelineOptions options, Relay* relay = nullptr);

  // Runs until `stop` is set, then makes a final commit. Returns an error only for failures the
  // pipeline cannot ride out (RocksDB I/O); Kafka outages are waited out.
  Status run(const std::atomic<bool>& stop);

  // Runs until every partition has reached its offset in `end` (records at or past it are left
  // alone; a partition not in `end` is read to its end at the start), or `stop` is set; then
  // commits. Used to replay a log, or a prefix of it, from the start.
  Status run_until(const std::atomic<bool>& stop, std::map<std::int32_t, Offset> end);

  // The sum of the shards' digests: equal state, equal digest, however it was reached.
  std::uint64_t digest() const;

  PipelineStats stats() const;

  // Distributor performance and rebates, fed by the shards' channel ledgers after every poll batch.
  const PerformanceProjection& performance() const { return performance_; }
  // Order status (projections/orders.h), fed by the shards' order changes after every poll batch.
  const OrderProjection& orders() const { return orders_; }

 private:
  Pipeline(Store& store, KafkaSource& source, StockProjection& stock, PipelineOptions options,
           std::map<std::int32_t, Shard> shards, Relay* relay);

  Status wait_and_assign(const std::atomic<bool>& stop);
  Status loop(const std::atomic<bool>& stop);
  bool reached_end() const;
  // Records of a poll batch through the ledger and the projection (those past run_until's bound are left).
  void ingest(std::span<const Record> records, StockProjection::Writer& projection);
  Status commit();          // waits for the commit in flight, then submits the next
  Status finish_commit();   // waits for the commit in flight; the advisory offset commit after it
  // Publishes the shards' counts as they are now, or those a commit made durable.
  void publish_stats();
  void publish_stats(std::vector<PartitionStats> partitions);
  std::vector<PartitionStats> partition_stats() const;

  Store& store_;
  KafkaSource& source_;
  StockProjection& stock_;
  PipelineOptions options_;
  std::map<std::int32_t, Shard> shards_;
  std::vector<Shard*> shard_list_;
  Applier applier_;
  BatchIngester ingester_;
  std::vector<BatchRecord> batch_;  // ingest()'s, kept for its capacity
  PerformanceProjection performance_;
  OrderProjection orders_;
  Committer committer_;
  Relay* relay_;
  std::size_t since_commit_ = 0;
  ConsumeRateLimit consume_limit_;
  std::map<std::int32_t, Offset> end_;  // run_until's bound per partition; empty: unbounded

  std::vector<PartitionStats> in_flight_stats_;  // what the commit in flight makes durable
  mutable std::mutex stats_mutex_;
  PipelineStats stats_;
  prometheus::Histogram commit_latency_{{kCommitLatencyBoundsSeconds.begin(), kCommitLatencyBoundsSeconds.end()}};
};

}  // namespace qudao
