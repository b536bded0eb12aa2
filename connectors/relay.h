// Relay: sends the outbox's rows (engine/ledger.h OutboxRow: dispatch requests for the warehouses,
// dead letters, and the arrival legs of shipments between shards) to their Kafka topics, exactly
// once, after the commit that wrote them is durable. An arrival leg (ShipmentTransferred) goes to the
// events topic itself, keyed by the destination's region, so the destination's shard consumes it
// like any event; the rule below (the tail check) keeps it from being written twice, and should a
// copy still reach the topic, its id (derived from the dispatch) makes it a duplicate there.
//
// Each record carries headers naming where it came from: qudao-source-topic, qudao-source-partition
// and qudao-outbox-seq (the row's seq on that partition's shard). Rows go out through one idempotent
// producer, so the rows of one source partition that land on one output partition appear there in
// seq order, without gaps or repeats, as long as the producer lives.
//
// What survives a restart or a failed send is decided by reading, not by assuming: rows the store
// still holds (a crash came before the relay's delivered marks were committed) and rows whose
// delivery failed or timed out are checked against the tail of their output partition. Reading
// back from its end, a row is delivered if a record with its source partition and seq is there; the
// search stops at a record of the same source partition with a lower seq than every row in question
// (the order above), at a record older than the oldest row by more than kClockSkewMs, or at the
// partition's start. Only rows not found are sent (again).
//
// Stopping is prompt whatever the broker does: every wait of the relay on Kafka (setting up the
// output topics, the tail check's reads, a producer's flush before a check, a full local queue)
// is taken in slices of at most kKafkaSliceMax (read_range: ~100 ms) and given up once the relay
// stops. At destruction, sends in flight get up to kStopFlushWait for their reports, less once no
// report came for kStopFlushStall (a broker that is down); what is left is purged. Rows not known
// to be delivered stay in the store and are checked at the next start, so a stop loses nothing.
//
// Thread-safety: send() and delivered_through() may be called from any thread; the relay sends on
// its own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka.h"
#include "engine/ledger.h"

namespace qudao {

struct RelayTopics {
  std::string source;        // the events topic the rows come from (a header, to tell sources apart),
                             // and where arrival legs go

  std::string dispatch;      // DispatchRequested, keyed by warehouse id
  std::string dead_letters;  // rejected records' original bytes, reason in headers
};

struct RelayStats {
  std::uint64_t sent = 0;         // produce calls
  std::uint64_t delivered = 0;    // acknowledged by the broker
  std::uint64_t delivered_dispatch = 0;      // of which dispatch requests
  std::uint64_t delivered_dead_letters = 0;  // of which dead letters
  std::uint64_t delivered_events = 0;        // of which arrival legs, to the events topic
  std::uint64_t found_sent = 0;   // found on the broker when checking, not sent again
  std::uint64_t undelivered = 0;  // now: rows handed over (or left from before a restart), not yet acknowledged
  std::uint64_t checks = 0;       // tail checks (after a start with rows left, or a failed send)
  std::uint64_t producers = 0;    // producers created (one more after each failure)
};

class Relay {
 public:
  static constexpr std::int64_t kClockSkewMs = 5 * 60 * 1000;
  // One Kafka call of the relay: tried again in growing slices of up to kKafkaSliceMax until it
  // succeeds, kKafkaTimeout has passed, or the relay stops.
  static constexpr std::chrono::milliseconds kKafkaTimeout{30'000};
  static constexpr std::chrono::milliseconds kKafkaSliceMax{2'000};
  static constexpr std::chrono::milliseconds kStopFlushWait{10'000};
  static constexpr std::chrono::milliseconds kStopFlushStall{1'000};

  // Starts the relay; its thread creates the output topics if missing (with `partitions`
  // partitions), waiting for the broker if it is down.
  // `unsent`: the rows the store still holds, per source partition; checked before anything is sent.
  static Result<std::unique_ptr<Relay>> start(const KafkaSettings& settings, RelayTopics topics, int partitions,
                                              std::map<std::int32_t, std::vector<OutboxRow>> unsent);
  ~Relay();

  // Rows that a commit made durable, in seq order per source partition.
  void send(std::vector<std::pair<PartitionId, OutboxRow>> rows);

  // Per source partition: every row with seq <= the value is delivered (the store may delete them).
  std::map<std::int32_t, std::uint64_t> delivered_through() const;

  RelayStats stats() const;

  // For librdkafka's delivery callback: a row being sent, and what became of it.
  struct Pending;
  void delivered(std::int32_t partition, std::uint64_t seq, OutboxTopic topic, bool ok, const char* error);

 private:
  Relay(KafkaSettings settings, RelayTopics topics);
  void run();
  Status check_and_resend();  // the tail check for every undelivered row, then send the missing
  Status new_producer();
  // Serves delivery reports until nothing is in flight, `wait` has passed, or `until` says so.
  enum class FlushUntil { stopping, stalled };
  void flush(std::chrono::milliseconds wait, FlushUntil until);
  void destroy_producer();  // purges what is still queued or in flight (reported as failed)
  bool stopping() const { return stop_requested_.load(); }
  Status prepare_outputs();  // output topics created, their partition counts, a producer
  void produce(std::int32_t partition, const OutboxRow& row);
  const std::string& topic_of(const OutboxRow& row) const;

  KafkaSettings settings_;
  RelayTopics topics_;
  rd_kafka_s* producer_ = nullptr;
  std::map<std::string, int> partitions_;  // of each output topic
  int output_partitions_ = 8;              // for topics the relay creates

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<PartitionId, OutboxRow>> inbox_;
  bool stopping_ = false;
  std::atomic<bool> stop_requested_{false};  // stopping_, readable without the mutex by Kafka waits
  // Undelivered rows per source partition, by seq; the highest seq ever handed over.
  std::map<std::int32_t, std::map<std::uint64_t, OutboxRow>> undelivered_;
  std::map<std::int32_t, std::uint64_t> highest_;
  bool check_needed_ = false;  // a delivery failed (or a start left rows): check before sending more
  RelayStats stats_;
  std::thread thread_;
};

}  // namespace qudao
