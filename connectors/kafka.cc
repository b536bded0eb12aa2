#include "connectors/kafka.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "engine/thread_priority.h"

namespace qudao {
namespace {

constexpr std::size_t kErrorBytesMax = 512;

// Builds a configuration: qudao's explicit defaults first, then the user's settings, which win.
Result<rd_kafka_conf_t*> make_conf(const KafkaSettings& settings,
                                   std::initializer_list<std::pair<const char*, const char*>> defaults) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[kErrorBytesMax];
  auto set = [&](const std::string& k, const std::string& v) -> Status {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      return Status::error(fmt::format("kafka setting {}={}: {}", k, v, err));
    }
    return Status::ok();
  };
  std::vector<std::pair<std::string, std::string>> all;
  if (!settings.brokers.empty()) all.emplace_back("bootstrap.servers", settings.brokers);
  for (const auto& [k, v] : defaults) all.emplace_back(k, v);
  all.insert(all.end(), settings.overrides.begin(), settings.overrides.end());
  for (const auto& [k, v] : all) {
    if (Status s = set(k, v); !s.is_ok()) {
      rd_kafka_conf_destroy(conf);
      return s;
    }
  }
  return conf;
}

void log_cb(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  const auto lvl = level <= 3 ? spdlog::level::err : level <= 5 ? spdlog::level::warn : spdlog::level::debug;
  spdlog::log(lvl, "kafka {} {}: {}", rd_kafka_name(rk), fac, buf);
}

}  // namespace

Status KafkaSettings::add_override(const std::string& key_value) {
  const auto eq = key_value.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::error(fmt::format("kafka setting \"{}\": expected key=value", key_value));
  }
  overrides.emplace_back(key_value.substr(0, eq), key_value.substr(eq + 1));
  return Status::ok();
}

Status KafkaSettings::add_properties_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(fmt::format("kafka properties file {}: cannot open", path));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#' || line[first] == '!') continue;
    const auto last = line.find_last_not_of(" \t\r");
    if (Status s = add_override(line.substr(first, last - first + 1)); !s.is_ok()) {
      return Status::error(fmt::format("{}:{}: {}", path, n, s.message()));
    }
  }
  return Status::ok();
}

void RecordDeleter::operator()(rd_kafka_message_s* m) const { rd_kafka_message_destroy(m); }

// ---- source ----

namespace {

// The consumer's threads fetch and parse records for the applying thread: bulk work, lowered with it
// when the operator asks for it (engine/thread_priority.h). Otherwise, within the process, they
// would take the cores from the lowered applying thread whenever both are runnable.
rd_kafka_resp_err_t lower_consumer_thread(rd_kafka_t*, rd_kafka_thread_type_t, const char*, void*) {
  lower_this_thread_priority();
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

rd_kafka_resp_err_t add_lower_consumer_threads(rd_kafka_t* rk, const rd_kafka_conf_t*, void*, char*, std::size_t) {
  return rd_kafka_interceptor_add_on_thread_start(rk, "qudao-bulk-priority", lower_consumer_thread, nullptr);
}

}  // namespace

Result<std::unique_ptr<KafkaSource>> KafkaSource::open(const KafkaSettings& settings, std::string topic,
                                                        std::string group_id) {
  auto conf = make_conf(settings, {
      {"group.id", group_id.c_str()},
      {"client.id", "qudao-source"},
      // RocksDB holds the truth about position; Kafka's committed offsets are advisory.
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "false"},
      // A stored offset the broker no longer has means records were deleted before qudao applied
      // them: stop and say so rather than silently skip to another offset.
      {"auto.offset.reset", "error"},
      // Bounded prefetch per partition: the engine applies faster than this fills, and when it
      // falls behind, fetching stops at this bound instead of growing memory.
      {"queued.max.messages.kbytes", "65536"},
      {"fetch.max.bytes", "52428800"},
      // Once the prefetch bound is reached, librdkafka waits this long before fetching again
      // (default 1000 ms): long enough for the engine to drain the queue and sit idle, which cut
      // ingest to a quarter of its rate. A short wait keeps the queue full and still bounded.
      {"fetch.queue.backoff.ms", "10"},
      {"reconnect.backoff.ms", "100"},
      {"reconnect.backoff.max.ms", "5000"},
      // qudao assigns partitions itself and never joins the group, so the session timeout bounds
      // only how long a close waits for a coordinator, which an advisory offset commit in flight
      // needs; while the broker is down, the default (45 s) held a stop for 45 s.
      {"session.timeout.ms", "2000"},
      {"heartbeat.interval.ms", "500"},
  });
  if (!conf.is_ok()) return conf.status();
  rd_kafka_conf_set_log_cb(conf.value(), log_cb);
  rd_kafka_conf_interceptor_add_on_new(conf.value(), "qudao-bulk-priority", add_lower_consumer_threads, nullptr);
  char err[kErrorBytesMax];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.value(), err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf.value());
    return Status::error(fmt::format("kafka consumer: {}", err));
  }
  rd_kafka_poll_set_consumer(rk);
  return std::unique_ptr<KafkaSource>(new KafkaSource(rk, std::move(topic)));
}

KafkaSource::~KafkaSource() {
  held_.clear();
  rd_kafka_consumer_close(rk_);  // bounded by session.timeout.ms while the broker is down (see open())
  rd_kafka_destroy(rk_);
}

Result<std::vector<PartitionId>> KafkaSource::partitions(std::chrono::milliseconds timeout) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, topic_.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, t, &md, static_cast<int>(timeout.count()));
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(fmt::format("kafka metadata for topic {}: {}", topic_, rd_kafka_err2str(err)));
  }
  std::vector<PartitionId> out;
  Status status = Status::ok();
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& mt = md->topics[i];
    if (topic_ != mt.topic) continue;
    if (mt.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = Status::error(fmt::format("kafka topic {}: {}", topic_, rd_kafka_err2str(mt.err)));
      break;
    }
    for (int p = 0; p < mt.partition_cnt; ++p) out.push_back(PartitionId{mt.partitions[p].id});
  }
  rd_kafka_metadata_destroy(md);
  if (!status.is_ok()) return status;
  if (out.empty()) return Status::error(fmt::format("kafka topic {} has no partitions", topic_));
  std::sort(out.begin(), out.end());
  return out;
}

Status KafkaSource::assign(const std::vector<PartitionId>& partitions, const std::map<std::int32_t, Offset>& start) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (PartitionId p : partitions) {
    auto* tp = rd_kafka_topic_partition_list_add(list, topic_.c_str(), p.value);
    auto it = start.find(p.value);
    tp->offset = it == start.end() ? RD_KAFKA_OFFSET_BEGINNING : it->second.value;
  }
  const rd_kafka_resp_err_t err = rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(fmt::format("kafka assign {}: {}", topic_, rd_kafka_err2str(err)));
  }
  return Status::ok();
}

Result<std::span<const Record>> KafkaSource::poll(std::size_t records_max, std::chrono::milliseconds timeout) {
  held_.clear();
  records_.clear();
  raw_.resize(records_max);
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk_);
  // librdkafka waits for a full batch until the timeout: take what is prefetched now, and when
  // nothing is, wait for one record only and then take what else has come. Waiting for a batch would
  // hold a record that arrives into an idle engine for the whole timeout (it added ~25 ms on average
  // to produce → visible under light load).
  ssize_t n = rd_kafka_consume_batch_queue(q, 0, raw_.data(), records_max);
  if (n == 0) {
    if (rd_kafka_message_t* first = rd_kafka_consume_queue(q, static_cast<int>(timeout.count())); first != nullptr) {
      raw_[0] = first;
      const ssize_t more = records_max > 1 ? rd_kafka_consume_batch_queue(q, 0, raw_.data() + 1, records_max - 1) : 0;
      n = 1 + std::max<ssize_t>(more, 0);
    }
  }
  rd_kafka_queue_destroy(q);
  // FlatBuffers needs each value to start 8-byte aligned; librdkafka's payloads point into fetch
  // buffers at any offset. Misaligned values are copied into one arena, sized first so that no
  // pointer into it moves.
  std::size_t words = 0;
  for (ssize_t i = 0; i < n; ++i) {
    if (raw_[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR && reinterpret_cast<std::uintptr_t>(raw_[i]->payload) % 8 != 0) {
      words += (raw_[i]->len + 7) / 8;
    }
  }
  aligned_.resize(words);
  std::uint64_t* next_copy = aligned_.data();
  for (ssize_t i = 0; i < n; ++i) {
    rd_kafka_message_t* m = raw_[i];
    held_.emplace_back(m);
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
      return Status::error(fmt::format("kafka topic {} partition {}: {}; the records at the requested offset are not "
                                       "on the broker (deleted by retention, or never written): refusing to skip them",
                                       topic_, m->partition, rd_kafka_message_errstr(m)));
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Other consumer errors are transient: librdkafka keeps retrying and never skips a record.
      spdlog::warn("kafka source {}: {}", topic_, rd_kafka_message_errstr(m));
      continue;
    }
    const auto* value = static_cast<const std::uint8_t*>(m->payload);
    if (reinterpret_cast<std::uintptr_t>(value) % 8 != 0) {
      std::memcpy(next_copy, value, m->len);
      value = reinterpret_cast<const std::uint8_t*>(next_copy);
      next_copy += (m->len + 7) / 8;
    }
    records_.push_back(Record{PartitionId{m->partition}, Offset{m->offset},
                              {static_cast<const std::uint8_t*>(m->key), m->key_len}, {value, m->len}});
  }
  return std::span<const Record>(records_);
}

Result<Offset> KafkaSource::high_watermark(PartitionId partition, std::chrono::milliseconds timeout) {
  int64_t low = 0, high = 0;
  const rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), partition.value, &low, &high, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(fmt::format("kafka watermarks of {} [{}]: {}", topic_, partition.value, rd_kafka_err2str(err)));
  }
  return Offset{high};
}

Offset KafkaSource::cached_high_watermark(PartitionId partition) const {
  int64_t low = -1, high = -1;
  // librdkafka keeps the high watermark of each fetch response; the low one only after a query.
  if (rd_kafka_get_watermark_offsets(rk_, topic_.c_str(), partition.value, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      high < 0) {
    return Offset{-1};
  }
  return Offset{high};
}

Offset KafkaSource::position(PartitionId partition) const {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic_.c_str(), partition.value);
  Offset out{-1};
  if (rd_kafka_position(rk_, list) == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].offset >= 0) {
    out = Offset{list->elems[0].offset};
  }
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

void KafkaSource::offset_commit(std::span<const std::pair<PartitionId, Offset>> next_offsets) {
  if (next_offsets.empty()) return;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size()));
  for (const auto& [p, o] : next_offsets) rd_kafka_topic_partition_list_add(list, topic_.c_str(), p.value)->offset = o.value;
  const rd_kafka_resp_err_t err = rd_kafka_commit(rk_, list, 1 /* async */);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) spdlog::debug("kafka offset commit (advisory): {}", rd_kafka_err2str(err));
}

// ---- producer ----

struct KafkaProducer::Counters {
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> failed{0};
  std::mutex mutex;
  std::string first_error;
};

namespace {
void delivery_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* c = static_cast<KafkaProducer::Counters*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    c->delivered.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  c->failed.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(c->mutex);
  if (c->first_error.empty()) c->first_error = rd_kafka_err2str(m->err);
}
}  // namespace

KafkaProducer::KafkaProducer(rd_kafka_s* rk, std::unique_ptr<Counters> c) : rk_(rk), counters_(std::move(c)) {}

PartitionId partition_for_key(std::span<const std::uint8_t> key, int partitions) {
  // librdkafka's murmur2 partitioner reads only the key and the count, not the topic handle.
  return PartitionId{rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partitions, nullptr, nullptr)};
}

Result<rd_kafka_s*> open_producer_handle(const KafkaSettings& settings, const char* client_id,
                                         DeliveryCallback on_delivery, void* opaque) {
  auto conf = make_conf(settings, {
      {"client.id", client_id},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      // Java's default (murmur2 of the key), so producers in any language put a region on the
      // same partition; librdkafka's own default (CRC-32) would not.
      {"partitioner", "murmur2_random"},
      {"linger.ms", "5"},
      {"batch.size", "1000000"},
      {"compression.type", "lz4"},
      {"queue.buffering.max.messages", "500000"},
      {"message.timeout.ms", "300000"},
  });
  if (!conf.is_ok()) return conf.status();
  rd_kafka_conf_set_dr_msg_cb(conf.value(), on_delivery);
  rd_kafka_conf_set_opaque(conf.value(), opaque);
  rd_kafka_conf_set_log_cb(conf.value(), log_cb);
  char err[kErrorBytesMax];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.value(), err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf.value());
    return Status::error(fmt::format("kafka producer: {}", err));
  }
  return rk;
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::open(const KafkaSettings& settings) {
  auto counters = std::make_unique<Counters>();
  auto rk = open_producer_handle(settings, "qudao-producer", delivery_cb, counters.get());
  if (!rk.is_ok()) return rk.status();
  return std::unique_ptr<KafkaProducer>(new KafkaProducer(rk.value(), std::move(counters)));
}

KafkaProducer::~KafkaProducer() {
  rd_kafka_flush(rk_, 10'000);
  rd_kafka_destroy(rk_);
}

Status KafkaProducer::produce(const std::string& topic, std::span<const std::uint8_t> key,
                              std::span<const std::uint8_t> value) {
  constexpr int kQueueFullWaitsMax = 6000;  // x 10 ms: a minute without room means the broker is gone
  for (int waits = 0;; ++waits) {
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_KEY(const_cast<std::uint8_t*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(const_cast<std::uint8_t*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || waits == kQueueFullWaitsMax) {
      return Status::error(fmt::format("kafka produce to {}: {}", topic, rd_kafka_err2str(err)));
    }
    rd_kafka_poll(rk_, 10);
  }
  rd_kafka_poll(rk_, 0);
  return Status::ok();
}

Status KafkaProducer::flush(std::chrono::milliseconds timeout) {
  const rd_kafka_resp_err_t err = rd_kafka_flush(rk_, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(fmt::format("kafka flush: {} ({} records still queued)", rd_kafka_err2str(err),
                                     rd_kafka_outq_len(rk_)));
  }
  if (counters_->failed.load() != 0) {
    std::lock_guard lock(counters_->mutex);
    return Status::error(fmt::format("kafka: {} records failed to deliver, first error: {}", counters_->failed.load(),
                                     counters_->first_error));
  }
  return Status::ok();
}

std::uint64_t KafkaProducer::delivered() const { return counters_->delivered.load(); }
std::uint64_t KafkaProducer::failed() const { return counters_->failed.load(); }

// ---- admin ----

Status ensure_topic(const KafkaSettings& settings, const std::string& topic, int partitions,
                    std::chrono::milliseconds timeout) {
  auto conf = make_conf(settings, {{"client.id", "qudao-admin"}});
  if (!conf.is_ok()) return conf.status();
  rd_kafka_conf_set_log_cb(conf.value(), log_cb);
  char err[kErrorBytesMax];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.value(), err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf.value());
    return Status::error(fmt::format("kafka admin: {}", err));
  }
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, err, sizeof err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, static_cast<int>(timeout.count()), err, sizeof err);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(timeout.count()) + 1000);
  Status status = Status::ok();
  if (ev == nullptr) {
    status = Status::error(fmt::format("kafka create topic {}: no answer from {} in time", topic, settings.brokers));
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = Status::error(fmt::format("kafka create topic {}: {}", topic, rd_kafka_event_error_string(ev)));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = Status::error(fmt::format("kafka create topic {}: {}", topic, rd_kafka_topic_result_error_string(results[i])));
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return status;
}

Result<std::pair<Offset, Offset>> watermarks(const KafkaSettings& settings, const std::string& topic,
                                             PartitionId partition, std::chrono::milliseconds timeout) {
  auto source = KafkaSource::open(settings, topic, "qudao-watermarks");
  if (!source.is_ok()) return source.status();
  int64_t low = 0, high = 0;
  const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(source.value()->handle(), topic.c_str(),
                                                                   partition.value, &low, &high,
                                                                   static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(fmt::format("kafka watermarks of {} [{}]: {}", topic, partition.value, rd_kafka_err2str(err)));
  }
  return std::pair{Offset{low}, Offset{high}};
}

Result<int> partition_count(const KafkaSettings& settings, const std::string& topic, std::chrono::milliseconds timeout) {
  auto source = KafkaSource::open(settings, topic, "qudao-metadata");
  if (!source.is_ok()) return source.status();
  auto partitions = source.value()->partitions(timeout);
  if (!partitions.is_ok()) return partitions.status();
  return static_cast<int>(partitions.value().size());
}

Result<std::vector<RecordMeta>> read_range(const KafkaSettings& settings, const std::string& topic,
                                           PartitionId partition, Offset from, Offset to,
                                           std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) {
  std::vector<RecordMeta> out;
  if (from >= to) return out;
  auto source = KafkaSource::open(settings, topic, "qudao-read-range");
  if (!source.is_ok()) return source.status();
  rd_kafka_t* rk = source.value()->handle();
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition.value)->offset = from.value;
  const rd_kafka_resp_err_t assigned = rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (assigned != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(fmt::format("kafka read {} [{}]: {}", topic, partition.value, rd_kafka_err2str(assigned)));
  }
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk);
  std::vector<rd_kafka_message_t*> batch(1000);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Status status = Status::ok();
  // Control records (transaction markers) take offsets but are never delivered: the position says
  // when the range is read.
  auto done = [&] { return source.value()->position(partition) >= to; };
  while (!done() && status.is_ok()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      status = Status::error(fmt::format("kafka read {} [{}] offsets {}..{}: not done within {} ms", topic,
                                         partition.value, from.value, to.value, timeout.count()));
      break;
    }
    if (cancel != nullptr && cancel->load()) {
      status = Status::error(fmt::format("kafka read {} [{}]: cancelled", topic, partition.value));
      break;
    }
    const ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch.data(), batch.size());
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = batch[i];
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET || m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
          status = Status::error(fmt::format("kafka read {} [{}]: {}", topic, partition.value, rd_kafka_message_errstr(m)));
        }
      } else if (m->offset < to.value) {
        RecordMeta meta{Offset{m->offset}, rd_kafka_message_timestamp(m, nullptr), {},
                        std::string(static_cast<const char*>(m->payload), m->len)};
        rd_kafka_headers_t* headers = nullptr;
        if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          const char* name = nullptr;
          const void* value = nullptr;
          size_t size = 0;
          for (size_t h = 0; rd_kafka_header_get_all(headers, h, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++h) {
            meta.headers.emplace_back(name, std::string(static_cast<const char*>(value), value == nullptr ? 0 : size));
          }
        }
        out.push_back(std::move(meta));
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_queue_destroy(q);
  if (!status.is_ok()) return status;
  return out;
}

Result<std::vector<TopicRecord>> read_topic(const KafkaSettings& settings, const std::string& topic,
                                            std::chrono::milliseconds timeout) {
  auto partitions = partition_count(settings, topic, timeout);
  if (!partitions.is_ok()) return partitions.status();
  std::vector<TopicRecord> out;
  for (int p = 0; p < partitions.value(); ++p) {
    auto marks = watermarks(settings, topic, PartitionId{p}, timeout);
    if (!marks.is_ok()) return marks.status();
    auto records = read_range(settings, topic, PartitionId{p}, marks.value().first, marks.value().second, timeout);
    if (!records.is_ok()) return records.status();
    for (RecordMeta& r : records.value()) out.push_back(TopicRecord{PartitionId{p}, std::move(r)});
  }
  return out;
}

Result<std::string> fetch_record(const KafkaSettings& settings, const std::string& topic, PartitionId partition,
                                 Offset offset, std::chrono::milliseconds timeout) {
  auto source = KafkaSource::open(settings, topic, "qudao-inspect");
  if (!source.is_ok()) return source.status();
  std::map<std::int32_t, Offset> start{{partition.value, offset}};
  if (Status s = source.value()->assign({partition}, start); !s.is_ok()) return s;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto polled = source.value()->poll(1, std::chrono::milliseconds(200));
    if (!polled.is_ok()) return polled.status();
    for (const Record& r : polled.value()) {
      if (r.offset != offset) {
        return Status::error(fmt::format("kafka {} [{}]: no record at offset {} (the next one is {})", topic,
                                         partition.value, offset.value, r.offset.value));
      }
      return std::string(reinterpret_cast<const char*>(r.value.data()), r.value.size());
    }
  }
  return Status::error(fmt::format("kafka {} [{}]: no record at offset {} within {} ms", topic, partition.value,
                                   offset.value, timeout.count()));
}

// ---- embedded broker ----

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::start() {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[kErrorBytesMax];
  rd_kafka_conf_set_log_cb(conf, log_cb);
  if (rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err, sizeof err) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return Status::error(fmt::format("embedded broker: {}", err));
  }
  rd_kafka_t* owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (owner == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::error(fmt::format("embedded broker: {}", err));
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_handle_mock_cluster(owner);
  if (cluster == nullptr) {
    rd_kafka_destroy(owner);
    return Status::error("embedded broker: librdkafka could not start its mock cluster");
  }
  return std::unique_ptr<EmbeddedBroker>(
      new EmbeddedBroker(owner, cluster, rd_kafka_mock_cluster_bootstraps(cluster)));
}

EmbeddedBroker::~EmbeddedBroker() { rd_kafka_destroy(owner_); }  // destroys the cluster it owns

Status EmbeddedBroker::create_topic(const std::string& topic, int partitions) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(fmt::format("embedded broker: create topic {}: {}", topic, rd_kafka_err2str(err)));
  }
  return Status::ok();
}

}  // namespace qudao
