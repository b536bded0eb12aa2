// The batch path's contract (connectors/ingest_batch.h): the same records give the same outcomes,
// state, digest and projection whatever the batch size, and the same as ingest_and_project taking
// them one at a time; a record its shard has already applied is skipped, never applied twice.
#include "connectors/ingest_batch.h"

#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "connectors/kafka.h"
#include "connectors/pipeline.h"
#include "tools/simulate.h"

namespace qudao {
namespace {

constexpr int kPartitions = 3;
// Small, so that the window is full and drops ids (and prefetches the ones it will drop) early on.
constexpr std::size_t kWindowEvents = 500;

// A simulated log with every fault (duplicates, late scan-outs, malformed records), each record 8-byte
// aligned as decode() requires, with its partition.
struct Log {
  struct Item {
    PartitionId partition;
    std::size_t word = 0, size = 0;
    std::string key;
  };
  std::vector<std::uint64_t> arena;
  std::vector<Item> items;
  std::span<const std::uint8_t> bytes(const Item& i) const {
    return {reinterpret_cast<const std::uint8_t*>(arena.data() + i.word), i.size};
  }
  std::span<const std::uint8_t> key(const Item& i) const {
    return {reinterpret_cast<const std::uint8_t*>(i.key.data()), i.key.size()};
  }
};

Log simulated_log() {
  SimulateOptions o;
  o.seed = 11;
  o.regions = 3;
  o.cities_per_region = 2;
  o.stores_per_city = 6;
  o.skus = 25;
  o.days = 45;
  o.duplicate_rate = 0.03;
  o.late_rate = 0.03;
  o.malformed_rate = 0.01;
  Log log;
  (void)simulate(o, [&](std::string_view key, std::span<const std::uint8_t> value) {
    const std::size_t word = log.arena.size();
    log.arena.resize(word + (value.size() + 7) / 8);
    std::memcpy(log.arena.data() + word, value.data(), value.size());
    const PartitionId p = partition_for_key({reinterpret_cast<const std::uint8_t*>(key.data()), key.size()}, kPartitions);
    log.items.push_back({p, word, value.size(), std::string(key)});
  });
  return log;
}

// Everything the records made: per record its outcome, per shard its digest, counts and dead
// letters, and every row of the projection.
struct Made {
  std::vector<std::optional<RecordOutcome>> outcomes;
  std::vector<std::string> shards;
  std::string projection;
};

struct World {
  std::vector<std::unique_ptr<Shard>> shards;
  StockProjection stock;
  Applier applier;
  World() {
    for (int p = 0; p < kPartitions; ++p) shards.push_back(std::make_unique<Shard>(PartitionId{p}, kWindowEvents));
  }
  Made result(std::vector<std::optional<RecordOutcome>> outcomes) const {
    Made r{std::move(outcomes), {}, {}};
    for (const auto& s : shards) {
      const OutcomeCounts& c = s->counts();
      std::string text = std::to_string(s->digest()) + " next " + std::to_string(s->next_offset().value) + " counts " +
                         std::to_string(c.consumed) + "/" + std::to_string(c.applied) + "/" +
                         std::to_string(c.duplicates) + "/" + std::to_string(c.rejected) + "/" +
                         std::to_string(c.anomalies) + " dead letters";
      for (const DeadLetter& d : s->dead_letters()) {
        text += " " + std::to_string(d.offset.value) + ":" + d.rejection.field + ":" + d.rejection.message;
      }
      r.shards.push_back(std::move(text));
    }
    auto page = stock.stock_page(StockFilter{}, RegionScope::all(), std::nullopt, 1'000'000);
    REQUIRE(page);
    for (const LocationStock& l : page->locations) {
      for (const StockRow& row : l.rows) {
        r.projection += std::to_string(row.location.value) + "," + std::to_string(row.sku.value) + ":" +
                        std::to_string(row.levels.on_hand.value) + "/" + std::to_string(row.levels.reserved.value) +
                        "/" + std::to_string(row.levels.in_transit.value) + "/" +
                        std::to_string(row.sold_window.value) + "\n";
      }
    }
    for (const RegionTotals& t : stock.region_totals(RegionScope::all())) {
      r.projection += t.region + ":" + std::to_string(t.locations) + ":" + std::to_string(t.levels.on_hand.value) +
                      "/" + std::to_string(t.levels.reserved.value) + "/" + std::to_string(t.levels.in_transit.value) +
                      "\n";
    }
    return r;
  }
};

// The records one at a time through ingest_and_project: the reference.
Made one_at_a_time(const Log& log) {
  World w;
  std::vector<std::int64_t> next(kPartitions, 0);
  std::vector<std::optional<RecordOutcome>> outcomes;
  for (const Log::Item& i : log.items) {
    StockProjection::Writer projection(w.stock);
    outcomes.push_back(ingest_and_project(w.applier, *w.shards[i.partition.value], Offset{next[i.partition.value]++},
                                          log.bytes(i), projection, log.key(i)));
  }
  return w.result(std::move(outcomes));
}

std::vector<BatchRecord> batch_records(const Log& log, World& w) {
  std::vector<BatchRecord> records;
  std::vector<std::int64_t> next(kPartitions, 0);
  for (const Log::Item& i : log.items) {
    records.push_back({w.shards[i.partition.value].get(), Offset{next[i.partition.value]++}, log.bytes(i), log.key(i)});
  }
  return records;
}

// The records in batches of `batch_records` through one BatchIngester, each batch under its own writer.
Made in_batches(const Log& log, std::size_t batch_size) {
  World w;
  const std::vector<BatchRecord> records = batch_records(log, w);
  BatchIngester ingester;
  std::vector<std::optional<RecordOutcome>> outcomes, batch_outcomes;
  for (std::size_t at = 0; at < records.size(); at += batch_size) {
    const auto batch = std::span(records).subspan(at, std::min(batch_size, records.size() - at));
    StockProjection::Writer projection(w.stock);
    ingester.ingest_and_project(w.applier, batch, projection, &batch_outcomes);
    REQUIRE(batch_outcomes.size() == batch.size());
    outcomes.insert(outcomes.end(), batch_outcomes.begin(), batch_outcomes.end());
  }
  return w.result(std::move(outcomes));
}

void check_same(const Made& got, const Made& want) {
  REQUIRE(got.outcomes.size() == want.outcomes.size());
  for (std::size_t i = 0; i < want.outcomes.size(); ++i) {
    INFO("record " << i);
    REQUIRE(got.outcomes[i] == want.outcomes[i]);
  }
  CHECK(got.shards == want.shards);
  CHECK(got.projection == want.projection);
}

}  // namespace

TEST_CASE("ingest batch: outcomes, state, digest and projection are the same whatever the batch size") {
  const Log log = simulated_log();
  REQUIRE(log.items.size() > 5'000);
  const Made want = one_at_a_time(log);
  // The log has every outcome, so each kind of record goes through the look-ahead.
  auto has = [&](RecordOutcome o) { return std::count(want.outcomes.begin(), want.outcomes.end(), o) > 0; };
  CHECK(has(RecordOutcome::applied));
  CHECK(has(RecordOutcome::duplicate));
  CHECK(has(RecordOutcome::rejected));
  for (std::size_t batch_size : {std::size_t{1}, std::size_t{7}, std::size_t{16}, std::size_t{17}, log.items.size()}) {
    INFO("batch size " << batch_size);
    check_same(in_batches(log, batch_size), want);
  }
}

TEST_CASE("ingest batch: records a shard has already applied are skipped, never applied twice") {
  const Log log = simulated_log();
  World w;
  const std::vector<BatchRecord> records = batch_records(log, w);
  BatchIngester ingester;
  std::vector<std::optional<RecordOutcome>> outcomes;
  const std::size_t first = records.size() / 2;
  {
    StockProjection::Writer projection(w.stock);
    ingester.ingest_and_project(w.applier, std::span(records).first(first), projection, &outcomes);
  }
  const Made before = w.result({});
  // Re-delivered: the first half again (as after a seek back), then the rest.
  {
    StockProjection::Writer projection(w.stock);
    ingester.ingest_and_project(w.applier, std::span(records).first(first), projection, &outcomes);
  }
  CHECK(std::count(outcomes.begin(), outcomes.end(), std::nullopt) == static_cast<std::ptrdiff_t>(first));
  const Made again = w.result({});
  CHECK(again.shards == before.shards);
  CHECK(again.projection == before.projection);
  {
    StockProjection::Writer projection(w.stock);
    ingester.ingest_and_project(w.applier, std::span(records).subspan(first), projection, &outcomes);
  }
  CHECK(std::count(outcomes.begin(), outcomes.end(), std::nullopt) == 0);
  const Made whole = w.result({});
  const Made want = one_at_a_time(log);
  CHECK(whole.shards == want.shards);
  CHECK(whole.projection == want.projection);
}

}  // namespace qudao
