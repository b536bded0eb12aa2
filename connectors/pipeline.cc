#include "connectors/pipeline.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <string_view>
#include <thread>

#include "engine/crash_point.h"
#include "engine/thread_priority.h"
#include "projections/stock_history.h"

namespace qudao {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kTopicMetadataWait{1'000};

Status Pipeline::run(const std::atomic<bool>& stop) {
  if (Status s = wait_and_assign(stop); !s.is_ok()) return s;
  return loop(stop);
}

Status Pipeline::run_until(const std::atomic<bool>& stop, std::map<std::int32_t, Offset> end) {
  if (Status s = wait_and_assign(stop); !s.is_ok()) return s;
  for (const auto& [p, shard] : shards_) {
    if (end.contains(p)) continue;
    auto high = source_.high_watermark(shard.partition(), std::chrono::seconds(10));
    if (!high.is_ok()) return high.status();
    end[p] = high.value();
  }
  end_ = std::move(end);
  return loop(stop);
}

bool Pipeline::reached_end() const {
  if (end_.empty()) return false;
  for (const auto& [p, shard] : shards_) {
    auto it = end_.find(p);
    if (it == end_.end() || shard.next_offset() >= it->second) continue;
    // Control records (transaction markers) take offsets but are never delivered: the consumer's
    // position tells whether the partition is read up to the end.
    if (source_.position(shard.partition()) < it->second) return false;
  }
  return true;
}

std::uint64_t Pipeline::digest() const {
  std::uint64_t sum = 0;
  for (const auto& [p, shard] : shards_) sum += shard.digest();
  return sum;
}

Status Pipeline::loop(const std::atomic<bool>& stop) {
  lower_this_thread_priority();  // if the operator asked for it: engine/thread_priority.h
  auto last_commit = Clock::now();
  while (!stop.load(std::memory_order_relaxed) && !reached_end()) {
    // Without a limit: the poll batch. With one: what it allows by now, or (none yet) an empty
    // turn, so that a due commit is still made.
    const std::size_t records_max = consume_limit_.wait_for_allowance(options_.poll_batch_events_max, options_.poll_timeout);
    auto polled = records_max > 0 ? source_.poll(records_max, options_.poll_timeout)
                                  : Result<std::span<const Record>>(std::span<const Record>());
    if (!polled.is_ok()) {
      // Keep what was applied; the source's error is what the operator must see first.
      Status s = commit();
      if (s.is_ok()) s = finish_commit();
      if (!s.is_ok()) spdlog::error("final commit: {}", s.message());
      return polled.status();
    }
    const std::span<const Record> records = polled.value();
    {
      StockProjection::Writer projection(stock_);
      const std::size_t half = records.size() / 2;
      ingest(records.first(half), projection);
      if (!records.empty()) crash_point("mid_batch");
      ingest(records.subspan(half), projection);
    }
    for (Shard* shard : shard_list_) performance_.publish(*shard);
    for (Shard* shard : shard_list_) orders_.publish(*shard);
    since_commit_ += records.size();
    consume_limit_.took(records.size());
    // A commit whose write is still in flight is waited for only once commit_events_max records
    // have piled up behind it: a slow fsync must not stop applying (and so the queries' view).
    const bool due = Clock::now() - last_commit >= options_.commit_interval || since_commit_ >= options_.commit_events_max;
    if (due && (!committer_.busy() || since_commit_ >= options_.commit_events_max)) {
      if (Status s = commit(); !s.is_ok()) return s;
      last_commit = Clock::now();
    }
  }
  if (Status s = commit(); !s.is_ok()) return s;
  return finish_commit();
}

void Pipeline::ingest(std::span<const Record> records, StockProjection::Writer& projection) {
  batch_.clear();
  for (const Record& record : records) {
    auto it = shards_.find(record.partition.value);
    assert(it != shards_.end() && "records arrive only from assigned partitions");
    if (!end_.empty()) {
      auto bound = end_.find(record.partition.value);
      if (bound == end_.end() || record.offset >= bound->second) continue;  // past run_until's bound
    }
    batch_.push_back(BatchRecord{&it->second, record.offset, record.value, record.key});
  }
  // A record the shard has already applied is skipped there: never applied twice.
  ingester_.ingest_and_project(applier_, batch_, projection);
}

Status Pipeline::commit() {
  if (Status s = finish_commit(); !s.is_ok()) return s;
  if (relay_ != nullptr) {
    for (const auto& [p, through] : relay_->delivered_through()) {
      if (auto it = shards_.find(p); it != shards_.end()) it->second.mark_relayed(through);
    }
  }
  committer_.submit(store_.prepare(shard_list_));
  // Status shows what is durable: these counts once this commit is written, not before.
  in_flight_stats_ = partition_stats();
  since_commit_ = 0;
  return Status::ok();
}

Status Pipeline::finish_commit() {
  auto written = committer_.wait();
  if (!written.is_ok()) return written.status();
  if (!written.value()) return Status::ok();
  crash_point("after_commit_before_offset_commit");
  source_.offset_commit(written.value()->next_offsets);
  if (relay_ != nullptr) relay_->send(std::move(written.value()->outbox));
  {
    std::lock_guard lock(stats_mutex_);
    ++stats_.commits;
    stats_.last_commit_latency = written.value()->latency;
  }
  commit_latency_.Observe(std::chrono::duration<double>(written.value()->latency).count());
  publish_stats(std::move(in_flight_stats_));
  return Status::ok();
}

Status Pipeline::wait_and_assign(const std::atomic<bool>& stop) {
  auto backoff = std::chrono::milliseconds(100);
  for (int attempt = 1; !stop.load(); ++attempt) {
    // A short wait per attempt: a stop is noticed between attempts, also while the broker is down.
    auto partitions = source_.partitions(kTopicMetadataWait);
    if (partitions.is_ok()) {
      for (PartitionId p : partitions.value()) {
        auto [it, added] = shards_.try_emplace(p.value, p, options_.dedup_window_events);
        if (added) it->second.set_eviction(options_.eviction, &store_);
      }
      shard_list_.clear();
      std::map<std::int32_t, Offset> start;
      for (auto& [p, s] : shards_) {
        shard_list_.push_back(&s);
        if (s.next_offset().value > 0) start[p] = s.next_offset();
      }
      if (Status s = source_.assign(partitions.value(), start); !s.is_ok()) return s;
      spdlog::info("consuming topic {}: {} partitions, resuming at stored offsets", source_.topic(),
                   partitions.value().size());
      {
        std::lock_guard lock(stats_mutex_);
        stats_.assigned = true;
      }
      publish_stats();
      return Status::ok();
    }
    if (attempt == 1 || attempt % 10 == 0) {
      spdlog::warn("waiting for topic {} (attempt {}): {}", source_.topic(), attempt, partitions.status().message());
    }
    for (auto slept = std::chrono::milliseconds(0); slept < backoff && !stop.load(); slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(backoff * 2, options_.topic_wait_backoff_max);
  }
  return Status::ok();
}

namespace {

// The stock projection from the shards' locations, reorder points and balances, and the sold window
// from the store's history; `balances`: how many were projected.
Status rebuild_stock(Store& store, const std::map<std::int32_t, Shard>& shards, StockProjection& stock,
                     std::size_t& balances) {
  StockProjection::Writer projection(stock);
  std::vector<Posting> rebuilt;
  for (const auto& [p, shard] : shards) {
    shard.for_each_location([&](LocationId id, const LocationInfo& info) { projection.define_location(id, info, PartitionId{p}); });
    shard.channel().for_each_reorder_point([&](SkuId sku, std::int32_t days) {
      projection.define_reorder_point(PartitionId{p}, sku, days);
    });
    rebuilt.clear();
    shard.for_each_balance([&](const Account& a, Quantity q) { rebuilt.push_back({a, q}); });
    // By location, then sku: the projection's entries are per location with their skus in order,
    // so this order touches each location once and appends to its sku map; the shard's order
    // (sku-major, in hash order) cost a cache miss or more per balance (13 s of a 39 s start with
    // 6M balances, on a loaded machine).
    std::sort(rebuilt.begin(), rebuilt.end(), [](const Posting& a, const Posting& b) {
      return std::tie(a.account.location, a.account.sku) < std::tie(b.account.location, b.account.sku);
    });
    projection.project(rebuilt);
    balances += rebuilt.size();
    HistoryReader history = store.history_reader();
    if (Status s = rebuild_sold_window(history, shard, projection); !s.is_ok()) return s;
  }
  return Status::ok();
}

}  // namespace

Pipeline::Pipeline(Store& store, KafkaSource& source, StockProjection& stock, PipelineOptions options,
                   std::map<std::int32_t, Shard> shards, Relay* relay)
    : store_(store), source_(source), stock_(stock), options_(options), shards_(std::move(shards)), committer_(store),
      relay_(relay), consume_limit_(options.consume_events_per_s_max) {
  stats_.topic = source_.topic();
  for (auto& [p, s] : shards_) {
    shard_list_.push_back(&s);
    s.set_eviction(options_.eviction, &store_);  // evicts from the first commit on, after the projections' rebuild
  }
}

Result<std::unique_ptr<Pipeline>> Pipeline::open(Store& store, KafkaSource& source, StockProjection& stock,
                                                 PipelineOptions options, Relay* relay) {
  // Each start-up phase is logged with its wall time: on a large store the start is the rebuild
  // of memory from RocksDB, and an operator waiting for the API should see where it is.
  auto phase_start = std::chrono::steady_clock::now();
  auto phase_done = [&](std::string_view what) {
    const auto now = std::chrono::steady_clock::now();
    spdlog::info("start: {} in {:.2f} s", what, std::chrono::duration<double>(now - phase_start).count());
    phase_start = now;
  };
  auto shards = store.load(options.dedup_window_events);
  if (!shards.is_ok()) return shards.status();
  phase_done(fmt::format("{} shards loaded from the store", shards.value().size()));
  std::unique_ptr<Pipeline> pipeline(new Pipeline(store, source, stock, options, shards.take(), relay));
  // The three projections share no state and only read the shards (each drains its own change
  // list), so the stock projection, the largest, is rebuilt on a second thread while this one
  // rebuilds the performance and order projections: a start has the machine's 2 cores to itself.
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  std::size_t balances = 0;
  double stock_s = 0;
  Status stock_status = Status::ok();
  std::thread stock_rebuild([&, begin = std::chrono::steady_clock::now()] {
    stock_status = rebuild_stock(store, pipeline->shards_, stock, balances);
    stock_s = seconds_since(begin);
  });
  const auto begin = std::chrono::steady_clock::now();
  for (auto& [p, shard] : pipeline->shards_) pipeline->performance_.rebuild(shard);
  const double performance_s = seconds_since(begin);
  for (auto& [p, shard] : pipeline->shards_) pipeline->orders_.rebuild(shard);
  const double orders_s = seconds_since(begin) - performance_s;
  stock_rebuild.join();
  if (!stock_status.is_ok()) return stock_status;
  phase_done(fmt::format("projections rebuilt side by side (stock from {} balances and the sold window {:.2f} s; "
                         "performance {:.2f} s, then orders {:.2f} s)",
                         balances, stock_s, performance_s, orders_s));
  pipeline->publish_stats();
  return pipeline;
}

std::vector<PartitionStats> Pipeline::partition_stats() const {
  std::vector<PartitionStats> out;
  for (const auto& [p, s] : shards_) {
    out.push_back({s.partition(), s.next_offset(), s.counts(), s.digest(), Offset{-1}, s.eviction_counts()});
  }
  return out;
}

void Pipeline::publish_stats() { publish_stats(partition_stats()); }

void Pipeline::publish_stats(std::vector<PartitionStats> partitions) {
  std::lock_guard lock(stats_mutex_);
  stats_.partitions = std::move(partitions);
  stats_.totals = {};
  for (const PartitionStats& p : stats_.partitions) stats_.totals += p.counts;
}

PipelineStats Pipeline::stats() const {
  PipelineStats s;
  {
    std::lock_guard lock(stats_mutex_);
    s = stats_;
  }
  if (relay_ != nullptr) s.relay = relay_->stats();
  for (PartitionStats& p : s.partitions) p.high_watermark = source_.cached_high_watermark(p.partition);
  s.commit_latency = commit_latency_.Collect().histogram;
  return s;
}

}  // namespace qudao
