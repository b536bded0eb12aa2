#include "connectors/relay.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>

#include "engine/crash_point.h"

namespace qudao {

struct Relay::Pending {
  Relay* relay;
  std::int32_t partition;
  std::uint64_t seq;
  OutboxTopic topic;
};

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::int64_t kTailChunkRecords = 1000;
constexpr milliseconds kKafkaSliceFirst{250};
constexpr milliseconds kFlushSlice{100};
constexpr milliseconds kPurgeReportWait{1'000};

// `call(timeout)` (a Kafka call answering a Status or Result) in slices of growing timeout, until it
// succeeds, Relay::kKafkaTimeout has passed or `stop` is set: a stop waits for one slice at most.
// Only a call that used up most of its slice is tried again: one that failed sooner had an answer
// (no such topic, say), which the caller handles.
template <class Call>
auto sliced(const std::atomic<bool>& stop, Call call) -> decltype(call(milliseconds())) {
  const auto deadline = Clock::now() + Relay::kKafkaTimeout;
  for (milliseconds slice = kKafkaSliceFirst;; slice = std::min(slice * 2, Relay::kKafkaSliceMax)) {
    const auto began = Clock::now();
    auto r = call(std::min(slice, std::chrono::duration_cast<milliseconds>(deadline - began)));
    const auto now = Clock::now();
    if (r.is_ok() || stop.load() || now - began < slice / 2 || now + kKafkaSliceFirst >= deadline) return r;
  }
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* p = static_cast<Relay::Pending*>(m->_private);
  p->relay->delivered(p->partition, p->seq, p->topic, m->err == RD_KAFKA_RESP_ERR_NO_ERROR,
                      m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(m->err));
  delete p;
}

std::int64_t parse_i64(const std::string& s) {
  try {
    return s.empty() ? -1 : std::stoll(s);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

Relay::Relay(KafkaSettings settings, RelayTopics topics) : settings_(std::move(settings)), topics_(std::move(topics)) {}

Result<std::unique_ptr<Relay>> Relay::start(const KafkaSettings& settings, RelayTopics topics, int partitions,
                                            std::map<std::int32_t, std::vector<OutboxRow>> unsent) {
  std::unique_ptr<Relay> relay(new Relay(settings, std::move(topics)));
  relay->output_partitions_ = partitions;
  std::size_t rows = 0;
  for (auto& [p, list] : unsent) {
    for (OutboxRow& row : list) {
      relay->highest_[p] = std::max(relay->highest_[p], row.seq);
      relay->undelivered_[p].emplace(row.seq, std::move(row));
      ++rows;
    }
  }
  if (rows > 0) {
    spdlog::info("relay: {} outbox rows left from before the restart; checking the output topics for them", rows);
    relay->check_needed_ = true;
  }
  relay->thread_ = std::thread([r = relay.get()] {
    pthread_setname_np(pthread_self(), "qudao-relay");
    r->run();
  });
  return relay;
}

Relay::~Relay() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    stop_requested_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (producer_ != nullptr) {
    flush(kStopFlushWait, FlushUntil::stalled);  // what is still in flight gets its delivery report
    destroy_producer();
  }
}

void Relay::flush(milliseconds wait, FlushUntil until) {
  const auto deadline = Clock::now() + wait;
  auto last_report = Clock::now();
  for (int in_flight = rd_kafka_outq_len(producer_); in_flight > 0 && Clock::now() < deadline;) {
    if (until == FlushUntil::stopping && stopping()) return;
    if (until == FlushUntil::stalled && Clock::now() - last_report >= kStopFlushStall) {
      spdlog::warn("relay: stopping with {} sends unacknowledged (the broker does not answer); the next start "
                   "checks for them", in_flight);
      return;
    }
    rd_kafka_flush(producer_, static_cast<int>(kFlushSlice.count()));
    const int now_in_flight = rd_kafka_outq_len(producer_);
    if (now_in_flight < in_flight) last_report = Clock::now();
    in_flight = now_in_flight;
  }
}

void Relay::destroy_producer() {
  rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  // Serves the purged records' reports, which free their Pending (a purge reports at once).
  rd_kafka_flush(producer_, static_cast<int>(kPurgeReportWait.count()));
  rd_kafka_destroy(producer_);
  producer_ = nullptr;
}

Status Relay::new_producer() {
  if (producer_ != nullptr) {
    // A send still in flight could land after the check has read the tail, and be sent twice: the
    // check starts only once every send has its report. A stop leaves the rest to the destructor.
    flush(kKafkaTimeout, FlushUntil::stopping);
    if (stopping()) return Status::error("relay: stopping");
    destroy_producer();
  }
  auto rk = open_producer_handle(settings_, "qudao-relay", on_delivery, nullptr);
  if (!rk.is_ok()) return rk.status();
  producer_ = rk.value();
  std::lock_guard lock(mutex_);
  ++stats_.producers;
  return Status::ok();
}

void Relay::send(std::vector<std::pair<PartitionId, OutboxRow>> rows) {
  if (rows.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (auto& r : rows) inbox_.push_back(std::move(r));
  }
  cv_.notify_all();
}

void Relay::delivered(std::int32_t partition, std::uint64_t seq, OutboxTopic topic, bool ok, const char* error) {
  std::lock_guard lock(mutex_);
  if (ok) {
    undelivered_[partition].erase(seq);
    ++stats_.delivered;
    switch (topic) {
      case OutboxTopic::dispatch: ++stats_.delivered_dispatch; break;
      case OutboxTopic::dead_letters: ++stats_.delivered_dead_letters; break;
      case OutboxTopic::events: ++stats_.delivered_events; break;
    }
    return;
  }
  // Not known to be lost: a timed-out send may have reached the broker. The check decides.
  if (!check_needed_) spdlog::warn("relay: a send failed ({}); checking the output topics before sending more", error);
  check_needed_ = true;
}

std::map<std::int32_t, std::uint64_t> Relay::delivered_through() const {
  std::lock_guard lock(mutex_);
  std::map<std::int32_t, std::uint64_t> out;
  for (const auto& [p, highest] : highest_) {
    auto it = undelivered_.find(p);
    if (it == undelivered_.end() || it->second.empty()) {
      out[p] = highest;
    } else if (it->second.begin()->first > 0) {
      out[p] = it->second.begin()->first - 1;
    }
  }
  return out;
}

RelayStats Relay::stats() const {
  std::lock_guard lock(mutex_);
  RelayStats s = stats_;
  s.undelivered = inbox_.size();
  for (const auto& [p, rows] : undelivered_) s.undelivered += rows.size();
  return s;
}

const std::string& Relay::topic_of(const OutboxRow& row) const {
  switch (row.topic) {
    case OutboxTopic::dispatch: return topics_.dispatch;
    case OutboxTopic::dead_letters: return topics_.dead_letters;
    case OutboxTopic::events: return topics_.source;
  }
  return topics_.dead_letters;  // the store accepts no other topic (engine/store.cc): unreachable
}

void Relay::produce(std::int32_t partition, const OutboxRow& row) {
  rd_kafka_headers_t* headers = rd_kafka_headers_new(row.headers.size() + 3);
  const std::string p = std::to_string(partition), seq = std::to_string(row.seq);
  rd_kafka_header_add(headers, "qudao-source-topic", -1, topics_.source.data(), static_cast<ssize_t>(topics_.source.size()));
  rd_kafka_header_add(headers, "qudao-source-partition", -1, p.data(), static_cast<ssize_t>(p.size()));
  rd_kafka_header_add(headers, "qudao-outbox-seq", -1, seq.data(), static_cast<ssize_t>(seq.size()));
  for (const auto& [name, value] : row.headers) {
    rd_kafka_header_add(headers, name.c_str(), -1, value.data(), static_cast<ssize_t>(value.size()));
  }
  auto* pending = new Pending{this, partition, row.seq, row.topic};
  constexpr int kQueueFullWaitsMax = 6000;  // x 10 ms
  for (int waits = 0;; ++waits) {
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(topic_of(row).c_str()),
        RD_KAFKA_V_KEY(const_cast<char*>(row.key.data()), row.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(row.value.data()), row.value.size()),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(pending), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;  // the message owns the headers now
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || waits == kQueueFullWaitsMax || stopping()) {
      rd_kafka_headers_destroy(headers);
      delete pending;
      delivered(partition, row.seq, row.topic, false, rd_kafka_err2str(err));
      return;
    }
    rd_kafka_poll(producer_, 10);
  }
  {
    std::lock_guard lock(mutex_);
    ++stats_.sent;
  }
  crash_point("outbox_relay_mid_send");
}

Status Relay::check_and_resend() {
  // Every send so far has its delivery report before the check, and a new producer starts clean
  // (a fatal idempotence error leaves the old one unusable).
  if (Status s = new_producer(); !s.is_ok()) return s;
  std::map<std::int32_t, std::map<std::uint64_t, OutboxRow>> rows;
  {
    std::lock_guard lock(mutex_);
    rows = undelivered_;
    check_needed_ = false;
    ++stats_.checks;
  }
  // Group by output partition: (topic, partition) -> source partition -> seqs; oldest row time.
  struct Group {
    std::map<std::int32_t, std::set<std::uint64_t>> seqs;
    std::int64_t oldest_ms = INT64_MAX;
  };
  std::map<std::pair<std::string, std::int32_t>, Group> groups;
  for (const auto& [p, list] : rows) {
    for (const auto& [seq, row] : list) {
      const std::string& topic = topic_of(row);
      const auto* k = reinterpret_cast<const std::uint8_t*>(row.key.data());
      const PartitionId out = partition_for_key({k, row.key.size()}, partitions_.at(topic));
      Group& g = groups[{topic, out.value}];
      g.seqs[p].insert(seq);
      g.oldest_ms = std::min(g.oldest_ms, row.created_ms);
    }
  }
  std::uint64_t found = 0;
  for (auto& [where, g] : groups) {
    const auto& [topic, out] = where;
    auto marks = sliced(stop_requested_, [&](milliseconds t) { return watermarks(settings_, topic, PartitionId{out}, t); });
    if (!marks.is_ok()) return marks.status();
    auto remaining = g.seqs;
    Offset end = marks.value().second;
    const Offset low = marks.value().first;
    bool older_than_rows = false;
    for (std::int64_t chunk = kTailChunkRecords; end > low && !remaining.empty() && !older_than_rows; chunk *= 2) {
      const Offset from{std::max(low.value, end.value - chunk)};
      auto records = read_range(settings_, topic, PartitionId{out}, from, end, kKafkaTimeout, &stop_requested_);
      if (!records.is_ok()) return records.status();
      for (auto r = records.value().rbegin(); r != records.value().rend() && !remaining.empty(); ++r) {
        if (r->timestamp_ms >= 0 && r->timestamp_ms < g.oldest_ms - kClockSkewMs) {
          older_than_rows = true;
          break;
        }
        if (r->header("qudao-source-topic") != topics_.source) continue;
        const std::int64_t p = parse_i64(r->header("qudao-source-partition"));
        const std::int64_t seq = parse_i64(r->header("qudao-outbox-seq"));
        auto it = remaining.find(static_cast<std::int32_t>(p));
        if (p < 0 || seq < 0 || it == remaining.end()) continue;
        if (it->second.erase(static_cast<std::uint64_t>(seq)) > 0) {
          std::lock_guard lock(mutex_);
          undelivered_[it->first].erase(static_cast<std::uint64_t>(seq));
          ++stats_.found_sent;
          ++found;
        }
        // This source's rows reach this partition in seq order: nothing older is still missing.
        if (it->second.empty() || static_cast<std::uint64_t>(seq) < *it->second.begin()) remaining.erase(it);
      }
      end = from;
    }
  }
  std::size_t resent = 0;
  std::map<std::int32_t, std::map<std::uint64_t, OutboxRow>> missing;
  {
    std::lock_guard lock(mutex_);
    missing = undelivered_;
  }
  for (const auto& [p, list] : missing) {
    for (const auto& [seq, row] : list) {
      produce(p, row);
      ++resent;
    }
  }
  spdlog::info("relay: checked the output topics: {} rows were already there, {} sent (again)", found, resent);
  return Status::ok();
}

Status Relay::prepare_outputs() {
  for (const std::string* t : {&topics_.dispatch, &topics_.dead_letters, &topics_.source}) {
    auto count = [&](milliseconds timeout) { return partition_count(settings_, *t, timeout); };
    auto n = sliced(stop_requested_, count);
    if (!n.is_ok()) {
      if (stopping()) return n.status();
      auto create = [&](milliseconds timeout) { return ensure_topic(settings_, *t, output_partitions_, timeout); };
      if (Status s = sliced(stop_requested_, create); !s.is_ok()) return s;
      n = sliced(stop_requested_, count);
      if (!n.is_ok()) return n.status();
    }
    partitions_[*t] = n.value();
  }
  return new_producer();
}

void Relay::run() {
  auto backoff = std::chrono::milliseconds(100);
  // The broker may be down when qudao starts: rows wait in memory (and in the store) until it is up.
  for (int attempt = 1;; ++attempt) {
    Status s = prepare_outputs();
    if (s.is_ok()) break;
    if (attempt == 1 || attempt % 10 == 0) spdlog::warn("relay: {} (attempt {}); retrying", s.message(), attempt);
    std::unique_lock lock(mutex_);
    if (cv_.wait_for(lock, backoff, [&] { return stopping_; })) return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5'000));
  }
  backoff = std::chrono::milliseconds(100);
  for (;;) {
    std::vector<std::pair<PartitionId, OutboxRow>> rows;
    bool check = false;
    {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return !inbox_.empty() || stopping_; });
      if (stopping_ && inbox_.empty()) return;  // the destructor flushes what is in flight
      rows.swap(inbox_);
      for (auto& [p, row] : rows) {
        highest_[p.value] = std::max(highest_[p.value], row.seq);
        undelivered_[p.value].emplace(row.seq, row);
      }
      check = check_needed_;
    }
    if (check) {
      if (Status s = check_and_resend(); !s.is_ok()) {
        std::unique_lock lock(mutex_);
        check_needed_ = true;
        if (stopping_) return;  // the rows stay in the store: the next start checks them
        spdlog::warn("relay: {}; retrying in {} ms", s.message(), backoff.count());
        if (cv_.wait_for(lock, backoff, [&] { return stopping_; })) return;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5'000));
        continue;
      }
      backoff = std::chrono::milliseconds(100);
    } else {
      for (const auto& [p, row] : rows) produce(p.value, row);
    }
    rd_kafka_poll(producer_, 0);  // delivery reports
  }
}

}  // namespace qudao
