// qudao replay: rebuild all state from offset 0 of the events topic (or of an event file) into a
// fresh store, and report the rate and the digests. qudao audit: check a live store's invariants,
// and that a fresh replay of the same log prefix reaches exactly the same state.
#include "tools/replay.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "events/event_file.h"
#include "tools/commands.h"

namespace qudao {
namespace {

using Clock = std::chrono::steady_clock;

Status check_new_dir(const std::string& data_dir) {
  if (std::filesystem::exists(data_dir) && !std::filesystem::is_empty(data_dir)) {
    return Status::error(fmt::format("replay needs a new data directory; {} is not empty", data_dir));
  }
  return Status::ok();
}

// Replays `topic` from offset 0 into a new store at `data_dir`, up to `end` (or the log's end).
Result<Replayed> replay_into(const KafkaSettings& kafka, const std::string& topic, const std::string& data_dir,
                             std::map<std::int32_t, Offset> end, SyncMode sync, const std::atomic<bool>& stop) {
  if (Status s = check_new_dir(data_dir); !s.is_ok()) return s;
  auto store = Store::open(StoreOptions{data_dir, topic, sync});
  if (!store.is_ok()) return store.status();
  auto source = KafkaSource::open(kafka, topic, "qudao-replay");
  if (!source.is_ok()) return source.status();
  StockProjection stock;
  PipelineOptions options;
  options.commit_interval = std::chrono::seconds(1);
  auto pipeline = Pipeline::open(*store.value(), *source.value(), stock, options);
  if (!pipeline.is_ok()) return pipeline.status();

  const auto start = Clock::now();
  Status status = Status::ok();
  std::atomic<bool> done{false};
  std::thread worker([&] {
    status = pipeline.value()->run_until(stop, std::move(end));
    done.store(true);
  });
  auto last = start;
  while (!done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (Clock::now() - last >= std::chrono::seconds(2)) {
      last = Clock::now();
      const auto c = pipeline.value()->stats().totals.consumed;
      spdlog::info("replay: {} events, {:.0f} events/s", c, c / std::chrono::duration<double>(last - start).count());
    }
  }
  worker.join();
  if (!status.is_ok()) return status;
  if (stop.load()) return Status::error("replay interrupted");

  Replayed r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const PipelineStats stats = pipeline.value()->stats();
  r.events = stats.totals.consumed;
  for (const PartitionStats& p : stats.partitions) r.digests[p.partition.value] = p.digest;
  r.digest = pipeline.value()->digest();
  auto sha = store.value()->state_sha256();
  if (!sha.is_ok()) return sha.status();
  r.sha256 = sha.take();
  return r;
}

std::string temp_dir(const char* prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / fmt::format("{}-XXXXXX", prefix)).string();
  if (mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

}  // namespace

Result<Replayed> replay_file(const FileReplayOptions& o, const std::atomic<bool>& stop) {
  if (Status s = check_new_dir(o.data_dir); !s.is_ok()) return s;
  auto reader = EventFileReader::open(o.path);
  if (!reader.is_ok()) return reader.status();
  auto store = Store::open(StoreOptions{o.data_dir, o.topic, o.sync});
  if (!store.is_ok()) return store.status();
  // As the pipeline does once it knows the topic's partitions: one shard each, all in every commit.
  std::map<std::int32_t, Shard> shards;
  std::vector<Shard*> shard_list;
  for (int p = 0; p < o.partitions; ++p) shard_list.push_back(&shards.try_emplace(p, PartitionId{p}).first->second);
  StockProjection stock;
  Applier applier;
  Committer committer(*store.value());
  auto commit = [&]() -> Status {
    if (auto written = committer.wait(); !written.is_ok()) return written.status();
    committer.submit(store.value()->prepare(shard_list));
    return Status::ok();
  };

  // Records are applied in batches, as the pipeline applies a poll's records under one projection lock
  // and through the same BatchIngester. The reader's views last until its next record, so a batch's
  // values are copied into one arena, each 8-byte aligned as decode() requires.
  constexpr std::size_t kBatchRecords = 10'000;
  static_assert(kEventAlignment == sizeof(std::uint64_t));
  struct Pending {
    Shard* shard;
    std::size_t word, size;
  };
  std::vector<std::uint64_t> arena;
  std::vector<Pending> pending;
  std::vector<BatchRecord> batch;
  std::map<std::int32_t, std::int64_t> next;  // per partition: the offset of its next record in the batch
  BatchIngester ingester;
  const auto start = Clock::now();
  auto last_commit = start, last_progress = start;
  std::uint64_t events = 0;
  std::size_t since_commit = 0;
  for (bool more = true; more && !stop.load(std::memory_order_relaxed);) {
    arena.clear();
    pending.clear();
    for (std::size_t i = 0; i < kBatchRecords; ++i) {
      auto record = reader.value()->next();
      if (!record.is_ok()) return record.status();
      if (!record.value()) {
        more = false;
        break;
      }
      const FileRecord& r = *record.value();
      if (r.key.empty()) {
        return Status::error(fmt::format("{}: offset {}: record {} has no key, so no partition: Kafka would have "
                                         "put it on a random one",
                                         o.path, r.offset, r.index + 1));
      }
      const PartitionId p =
          partition_for_key({reinterpret_cast<const std::uint8_t*>(r.key.data()), r.key.size()}, o.partitions);
      const std::size_t word = arena.size();
      arena.resize(word + (r.value.size() + 7) / 8);
      std::memcpy(arena.data() + word, r.value.data(), r.value.size());
      pending.push_back({&shards.at(p.value), word, r.value.size()});
    }
    // Every record takes its shard's next offset, applied, duplicate or rejected alike.
    batch.clear();
    next.clear();
    for (const Pending& rec : pending) {
      auto [it, first] = next.try_emplace(rec.shard->partition().value, rec.shard->next_offset().value);
      batch.push_back({rec.shard, Offset{it->second++},
                       {reinterpret_cast<const std::uint8_t*>(arena.data() + rec.word), rec.size}, {}});
    }
    {
      StockProjection::Writer projection(stock);
      ingester.ingest_and_project(applier, batch, projection);
    }
    events += batch.size();
    since_commit += batch.size();
    const auto now = Clock::now();
    if (now - last_commit >= o.commit_interval || since_commit >= o.commit_events_max) {
      if (Status s = commit(); !s.is_ok()) return s;
      last_commit = now;
      since_commit = 0;
    }
    if (now - last_progress >= o.progress_interval) {
      last_progress = now;
      spdlog::info("replay: {} events, {:.0f} events/s", events,
                   static_cast<double>(events) / std::chrono::duration<double>(now - start).count());
    }
  }
  if (Status s = commit(); !s.is_ok()) return s;
  if (auto written = committer.wait(); !written.is_ok()) return written.status();
  if (stop.load()) return Status::error("replay interrupted");

  Replayed r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.events = events;
  for (const auto& [p, shard] : shards) {
    r.digests[p] = shard.digest();
    r.digest += shard.digest();
  }
  auto sha = store.value()->state_sha256();
  if (!sha.is_ok()) return sha.status();
  r.sha256 = sha.take();
  return r;
}

int run_replay(const ReplayArgs& args, const std::atomic<bool>& stop) {
  const bool from_file = !args.from_file.empty();
  Result<KafkaSettings> kafka = KafkaSettings{};
  if (!from_file) kafka = args.kafka.to_settings();
  if (!kafka.is_ok()) {
    spdlog::error("{}", kafka.status().message());
    return 2;
  }
  const bool temporary = args.data_dir.empty();
  const std::string dir = temporary ? temp_dir("qudao-replay") : args.data_dir;
  Result<Replayed> r = Status::error("not run");
  if (from_file) {
    FileReplayOptions o;
    o.path = args.from_file;
    o.partitions = args.partitions;
    o.topic = args.kafka.topic;
    o.data_dir = dir;
    r = replay_file(o, stop);
  } else {
    r = replay_into(kafka.value(), args.kafka.topic, dir, {}, SyncMode::no_fsync, stop);
  }
  if (temporary) std::filesystem::remove_all(dir);
  if (!r.is_ok()) {
    spdlog::error("{}", r.status().message());
    return 1;
  }
  const Replayed& v = r.value();
  const std::string what = from_file ? fmt::format("{} ({} partitions)", args.from_file, args.partitions) : args.kafka.topic;
  fmt::print("replayed {} events of {} in {:.2f} s: {:.0f} events/s\n", v.events, what, v.seconds,
             static_cast<double>(v.events) / std::max(v.seconds, 1e-9));
  for (const auto& [p, d] : v.digests) fmt::print("  partition {:>3}  digest {:016x}\n", p, d);
  fmt::print("digest {:016x}\nsha256 {}\n", v.digest, v.sha256);
  if (!temporary) fmt::print("state kept in {}\n", dir);
  return 0;
}

int run_audit(const AuditArgs& args, const std::atomic<bool>& stop) {
  auto kafka = args.kafka.to_settings();
  if (!kafka.is_ok()) {
    spdlog::error("{}", kafka.status().message());
    return 2;
  }
  auto store = Store::open(StoreOptions{args.data_dir, args.kafka.topic, SyncMode::no_fsync, OpenMode::read_only});
  if (!store.is_ok()) {
    spdlog::error("{}", store.status().message());
    return 1;
  }
  auto shards = store.value()->load();
  if (!shards.is_ok()) {
    spdlog::error("{}", shards.status().message());
    return 1;
  }
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    fmt::print("  {}  {}\n", ok ? "ok  " : "FAIL", what);
    if (!ok) ++failures;
  };
  fmt::print("audit of {} (topic {})\n", args.data_dir, args.kafka.topic);

  std::map<std::int32_t, Offset> end;
  std::uint64_t live_digest = 0, events = 0;
  // Shipments between shards: each source leg puts goods into its shard's clearing account, each
  // arrival leg takes them out of the destination's, so over all partitions it nets to zero per sku
  // once every arrival leg is applied (engine/apply.h).
  std::map<std::uint64_t, std::int64_t> clearing;
  for (const auto& [p, shard] : shards.value()) {
    end[p] = shard.next_offset();
    live_digest += shard.digest();
    events += shard.counts().consumed;
    std::map<std::uint64_t, std::int64_t> per_sku;
    std::size_t negative = 0;
    shard.for_each_balance([&](const Account& a, Quantity q) {
      per_sku[a.sku.value] += q.value;
      if (a.bucket == Bucket::clearing) clearing[a.sku.value] += q.value;
      if (q.value < 0 && (a.bucket == Bucket::on_hand || a.bucket == Bucket::reserved)) {
        const LocationInfo* loc = shard.location(a.location);
        if (loc != nullptr && loc->kind != fb::LocationKind::Store) ++negative;
      }
    });
    std::size_t unbalanced = 0;
    for (const auto& [sku, sum] : per_sku) unbalanced += sum != 0;
    const OutcomeCounts& c = shard.counts();
    check(unbalanced == 0, fmt::format("partition {}: stock is conserved for all {} skus (sum over accounts = 0)", p,
                                       per_sku.size()));
    check(negative == 0, fmt::format("partition {}: no warehouse holds negative stock ({} do)", p, negative));
    std::int64_t money = 0;
    std::size_t money_accounts = 0;
    shard.channel().for_each_money([&](const MoneyAccount&, Fen f) { money += f.value, ++money_accounts; });
    check(money == 0, fmt::format("partition {}: money is conserved over {} accounts (sum = {} fen)", p, money_accounts,
                                  money));
    check(c.consumed == c.applied + c.duplicates + c.rejected,
          fmt::format("partition {}: consumed {} = applied {} + duplicates {} + rejected {}", p, c.consumed, c.applied,
                      c.duplicates, c.rejected));
  }
  std::int64_t between = 0, arrived_unsent = 0;
  std::size_t between_skus = 0;
  for (const auto& [sku, sum] : clearing) {
    if (sum > 0) between += sum, ++between_skus;
    if (sum < 0) arrived_unsent -= sum;
  }
  check(arrived_unsent == 0, fmt::format("clearing: no goods arrived that no partition sent ({} units do)", arrived_unsent));
  check(between == 0, fmt::format("clearing accounts net out across partitions: {} units of {} skus dispatched to "
                                  "another shard are not applied there yet (in flight, or their arrival leg was "
                                  "rejected: see the dead letters)",
                                  between, between_skus));
  auto live_sha = store.value()->state_sha256();
  if (!live_sha.is_ok()) {
    spdlog::error("{}", live_sha.status().message());
    return 1;
  }
  store.value().reset();

  const std::string dir = temp_dir("qudao-audit");
  auto replayed = replay_into(kafka.value(), args.kafka.topic, dir, end, SyncMode::no_fsync, stop);
  std::filesystem::remove_all(dir);
  if (!replayed.is_ok()) {
    spdlog::error("replay for audit: {}", replayed.status().message());
    return 1;
  }
  const Replayed& r = replayed.value();
  for (const auto& [p, shard] : shards.value()) {
    const auto it = r.digests.find(p);
    const std::uint64_t replayed_digest = it == r.digests.end() ? 0 : it->second;
    check(replayed_digest == shard.digest(),
          fmt::format("partition {}: live digest {:016x} = replay digest {:016x}", p, shard.digest(), replayed_digest));
  }
  check(r.sha256 == live_sha.value(), fmt::format("state sha256 {} = replay's {}", live_sha.value(), r.sha256));
  fmt::print("{} events audited, digest {:016x}: {}\n", events, live_digest, failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}

}  // namespace qudao
