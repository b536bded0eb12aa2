// Kafka connectors on librdkafka 2.8 (C API): settings pass-through, a source that reads all
// partitions of one topic by manual assignment, a producer, and the embedded broker (librdkafka's
// in-process mock cluster) that the demo uses when no brokers are given.
//
// Each class owns its librdkafka handle; none is shared between threads unless said so.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/status.h"
#include "events/types.h"

struct rd_kafka_s;
struct rd_kafka_message_s;
struct rd_kafka_mock_cluster_s;

namespace qudao {

// librdkafka configuration, as kcat takes it: a bootstrap list plus any `-X key=value` settings
// (security.protocol, sasl.*, ssl.* ...), applied in order after qudao's own defaults.
struct KafkaSettings {
  std::string brokers;
  std::vector<std::pair<std::string, std::string>> overrides;

  // Adds the `key=value` lines of a Java-style properties file (# comments, blank lines ignored).
  Status add_properties_file(const std::string& path);
  // Parses one `-X key=value` argument.
  Status add_override(const std::string& key_value);
};

// Creates `topic` with `partitions` partitions unless it exists (then leaves it as it is).
Status ensure_topic(const KafkaSettings& settings, const std::string& topic, int partitions,
                    std::chrono::milliseconds timeout);

// The partition Kafka's Java client (and qudao's producers, `murmur2_random`) picks for a non-empty
// key: murmur2 of the key, modulo the partition count.
PartitionId partition_for_key(std::span<const std::uint8_t> key, int partitions);

// Low and high watermarks of one partition: the first offset still on the broker and the next one.
Result<std::pair<Offset, Offset>> watermarks(const KafkaSettings& settings, const std::string& topic,
                                             PartitionId partition, std::chrono::milliseconds timeout);

// The number of partitions of an existing topic.
Result<int> partition_count(const KafkaSettings& settings, const std::string& topic, std::chrono::milliseconds timeout);

// A record's place, time, headers and value (what the outbox relay checks on restart).
struct RecordMeta {
  Offset offset;
  std::int64_t timestamp_ms = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string value;
  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) if (n == name) return v;
    return {};
  }
};

// The records of `partition` in offsets [from, to), in offset order. With `cancel`, gives up (an
// error) within about 100 ms of it being set.
Result<std::vector<RecordMeta>> read_range(const KafkaSettings& settings, const std::string& topic,
                                           PartitionId partition, Offset from, Offset to,
                                           std::chrono::milliseconds timeout,
                                           const std::atomic<bool>* cancel = nullptr);

// One record of read_topic(), with the partition it is on.
struct TopicRecord {
  PartitionId partition;
  RecordMeta record;
};

// Every record of every partition of `topic` up to each partition's end now, partition by partition
// in offset order (for the dlq command, audits and tests; it holds the whole topic in memory).
Result<std::vector<TopicRecord>> read_topic(const KafkaSettings& settings, const std::string& topic,
                                            std::chrono::milliseconds timeout);

// Reads the value of the one record at `offset` of `partition` (for inspection; commits nothing).
Result<std::string> fetch_record(const KafkaSettings& settings, const std::string& topic, PartitionId partition,
                                 Offset offset, std::chrono::milliseconds timeout);

// One consumed record; the bytes live until the next poll().
struct Record {
  PartitionId partition;
  Offset offset;
  std::span<const std::uint8_t> key;
  std::span<const std::uint8_t> value;
};

struct RecordDeleter {
  void operator()(rd_kafka_message_s* m) const;
};

class KafkaSource {
 public:
  static Result<std::unique_ptr<KafkaSource>> open(const KafkaSettings& settings, std::string topic,
                                                    std::string group_id);
  // Closes the consumer, waiting at most 2 s (with the broker down, advisory offset commits still
  // in flight are dropped rather than waited for).
  ~KafkaSource();

  // The topic's partitions, from broker metadata. An error if the topic does not exist (yet).
  Result<std::vector<PartitionId>> partitions(std::chrono::milliseconds timeout);

  // Assigns `partitions`, each starting at its offset in `start` or, if absent, at the beginning.
  Status assign(const std::vector<PartitionId>& partitions, const std::map<std::int32_t, Offset>& start);

  // Up to `records_max` records from any assigned partition, each partition in offset order.
  // Transport errors are logged and retried by librdkafka; they never lose position. An error
  // means the partition cannot go on without losing records (its stored offset is gone).
  Result<std::span<const Record>> poll(std::size_t records_max, std::chrono::milliseconds timeout);

  // The offset after the last record of `partition` on the broker now.
  Result<Offset> high_watermark(PartitionId partition, std::chrono::milliseconds timeout);
  // The high watermark of `partition` as last reported by the broker in a fetch response: no
  // broker round trip, so cheap enough for every scrape of /metrics. -1 until the first fetch
  // answer. Any thread.
  Offset cached_high_watermark(PartitionId partition) const;
  // The offset this consumer fetches next from `partition` (-1 if unknown yet).
  Offset position(PartitionId partition) const;

  // Advisory offset commit (for lag monitoring); asynchronous, failures only logged.
  void offset_commit(std::span<const std::pair<PartitionId, Offset>> next_offsets);

  const std::string& topic() const { return topic_; }
  // The librdkafka handle, for the functions in this file that need more than the above.
  rd_kafka_s* handle() const { return rk_; }

 private:
  KafkaSource(rd_kafka_s* rk, std::string topic) : rk_(rk), topic_(std::move(topic)) {}

  rd_kafka_s* rk_;
  std::string topic_;
  std::vector<rd_kafka_message_s*> raw_;
  std::vector<std::unique_ptr<rd_kafka_message_s, RecordDeleter>> held_;
  std::vector<Record> records_;
  std::vector<std::uint64_t> aligned_;  // copies of record values that librdkafka did not align
};

class KafkaProducer {
 public:
  // An idempotent producer (acks=all, enable.idempotence=true).
  static Result<std::unique_ptr<KafkaProducer>> open(const KafkaSettings& settings);
  ~KafkaProducer();

  // Queues one record (copied); waits for room when the local queue is full. The partition is
  // chosen by librdkafka's default partitioner from the key.
  Status produce(const std::string& topic, std::span<const std::uint8_t> key, std::span<const std::uint8_t> value);
  // Waits until every queued record is acknowledged; fails if any delivery failed.
  Status flush(std::chrono::milliseconds timeout);

  std::uint64_t delivered() const;
  std::uint64_t failed() const;

  struct Counters;

 private:
  KafkaProducer(rd_kafka_s* rk, std::unique_ptr<Counters> c);
  rd_kafka_s* rk_;
  std::unique_ptr<Counters> counters_;
};

// A producer handle with qudao's producer settings (idempotent, acks=all, murmur2_random, the
// user's -X settings last), for connectors that need librdkafka's per-message delivery callback
// (the outbox relay). The caller owns the handle (rd_kafka_destroy).
using DeliveryCallback = void (*)(rd_kafka_s* rk, const rd_kafka_message_s* message, void* opaque);
Result<rd_kafka_s*> open_producer_handle(const KafkaSettings& settings, const char* client_id,
                                         DeliveryCallback on_delivery, void* opaque);

// librdkafka's in-process mock cluster: speaks the Kafka protocol on a loopback port, keeps the
// log in memory, and keeps only the newest ~5 MB (100,000 record batches) per partition, so a
// consumer must not fall far behind. For the demo only; never the log of record.
class EmbeddedBroker {
 public:
  static Result<std::unique_ptr<EmbeddedBroker>> start();
  ~EmbeddedBroker();

  Status create_topic(const std::string& topic, int partitions);
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  EmbeddedBroker(rd_kafka_s* owner, rd_kafka_mock_cluster_s* cluster, std::string bootstrap)
      : owner_(owner), cluster_(cluster), bootstrap_(std::move(bootstrap)) {}
  rd_kafka_s* owner_;
  rd_kafka_mock_cluster_s* cluster_;
  std::string bootstrap_;
};

}  // namespace qudao
