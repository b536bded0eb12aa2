// The simulator's contract: reproducible per seed, continuable with --from-day, only valid events
// apart from the faults it reports, and its expected ledger state equal to what the engine makes
// of the stream. Also that the demand it draws looks like demand: weekends busier, long tails sparse.
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "connectors/kafka.h"
#include "engine/apply.h"
#include "tools/simulate.h"

namespace qudao {
namespace {

constexpr std::int64_t kStartMs = 1'767'225'600'000;  // 2026-01-01, a Thursday
constexpr std::int64_t kDayMs = 86'400'000;

// Every record of a run, each 8-byte aligned as decode() requires.
struct Stream {
  struct Record {
    std::string key;
    std::size_t word = 0, size = 0;
  };
  std::vector<std::uint64_t> arena;
  std::vector<Record> records;
  SimulationSummary summary;

  std::span<const std::uint8_t> bytes(const Record& r) const {
    return {reinterpret_cast<const std::uint8_t*>(arena.data() + r.word), r.size};
  }
  bool same_record(std::size_t i, const Stream& other, std::size_t j) const {
    const auto a = bytes(records[i]), b = other.bytes(other.records[j]);
    return records[i].key == other.records[j].key && a.size() == b.size() &&
           std::memcmp(a.data(), b.data(), a.size()) == 0;
  }
};

Stream run(const SimulateOptions& o) {
  Stream s;
  s.summary = simulate(o, [&](std::string_view key, std::span<const std::uint8_t> value) {
    const std::size_t word = s.arena.size();
    s.arena.resize(word + (value.size() + 7) / 8);
    std::memcpy(s.arena.data() + word, value.data(), value.size());
    s.records.push_back({std::string(key), word, value.size()});
  });
  return s;
}

SimulateOptions small_world(std::uint64_t seed = 3) {
  SimulateOptions o;
  o.seed = seed;
  o.regions = 3;
  o.cities_per_region = 2;
  o.stores_per_city = 7;
  o.skus = 30;
  o.days = 40;
  return o;
}

SimulateOptions with_faults(SimulateOptions o) {
  o.duplicate_rate = 0.02;
  o.late_rate = 0.03;
  o.malformed_rate = 0.01;
  return o;
}

// The stream applied by the engine, one Shard per partition as `qudao serve` would.
struct Applied {
  OutcomeCounts totals;
  std::map<std::string, RegionExpectation> regions;
  std::multiset<std::pair<std::string, std::string>> arrivals;  // the shards' outbox rows to the events topic
  std::map<std::uint64_t, std::int64_t> clearing;                // per sku, over all shards
};

Applied apply_all(const Stream& s, int partitions) {
  std::vector<std::unique_ptr<Shard>> shards;
  for (int p = 0; p < partitions; ++p) shards.push_back(std::make_unique<Shard>(PartitionId{p}));
  std::vector<std::int64_t> next(partitions, 0);
  Applier applier;
  for (const auto& r : s.records) {
    const auto p = partition_for_key({reinterpret_cast<const std::uint8_t*>(r.key.data()), r.key.size()}, partitions);
    (void)applier.ingest(*shards[p.value], Offset{next[p.value]++}, s.bytes(r));
  }
  Applied a;
  for (const auto& owned : shards) {
    const Shard& shard = *owned;
    a.totals += shard.counts();
    std::map<std::uint64_t, std::string> region_of;
    shard.for_each_location([&](LocationId id, const LocationInfo& info) {
      region_of[id.value] = info.region;
      ++a.regions[info.region].locations;
    });
    for (const OutboxRow& row : shard.outbox_pending()) {
      if (row.topic == OutboxTopic::events) a.arrivals.emplace(row.key, row.value);
    }
    shard.for_each_balance([&](const Account& acc, Quantity q) {
      if (acc.bucket == Bucket::clearing) a.clearing[acc.sku.value] += q.value;
      if (acc.location == kVirtualLocation) return;
      RegionExpectation& e = a.regions[region_of.at(acc.location.value)];
      if (acc.bucket == Bucket::on_hand || acc.bucket == Bucket::reserved) e.on_hand += q.value;
      if (acc.bucket == Bucket::in_transit) e.in_transit += q.value;
    });
  }
  return a;
}

void check_regions(const std::map<std::string, RegionExpectation>& got,
                   const std::map<std::string, RegionExpectation>& want) {
  REQUIRE(got.size() == want.size());
  for (const auto& [name, w] : want) {
    INFO("region " << name);
    REQUIRE(got.count(name) == 1);
    CHECK(got.at(name).on_hand == w.on_hand);
    CHECK(got.at(name).in_transit == w.in_transit);
    CHECK(got.at(name).locations == w.locations);
  }
}

}  // namespace

TEST_CASE("simulate: the same seed gives a byte-identical stream; another seed another one") {
  const Stream a = run(with_faults(small_world()));
  const Stream b = run(with_faults(small_world()));
  REQUIRE(a.records.size() == b.records.size());
  REQUIRE(a.records.size() > 10'000);
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    if (!a.same_record(i, b, i)) FAIL("record " << i << " differs");
  }
  const Stream c = run(with_faults(small_world(4)));
  std::size_t same = 0;
  for (std::size_t i = 0; i < std::min(a.records.size(), c.records.size()); ++i) same += a.same_record(i, c, i);
  CHECK(same < a.records.size() / 100);
}

TEST_CASE("simulate: --from-day continues a full run exactly, faults included") {
  for (const SimulateOptions& base : {small_world(), with_faults(small_world())}) {
    const Stream full = run(base);
    SimulateOptions first_part = base;
    first_part.days = 17;
    SimulateOptions rest = base;
    rest.from_day = 17;
    const Stream head = run(first_part);
    const Stream tail = run(rest);
    REQUIRE(head.records.size() + tail.records.size() == full.records.size());
    for (std::size_t i = 0; i < head.records.size(); ++i) {
      if (!head.same_record(i, full, i)) FAIL("head record " << i << " differs");
    }
    for (std::size_t i = 0; i < tail.records.size(); ++i) {
      if (!tail.same_record(i, full, head.records.size() + i)) FAIL("tail record " << i << " differs");
    }
    CHECK(head.summary.events + tail.summary.events == full.summary.events);
    CHECK(head.summary.duplicates + tail.summary.duplicates == full.summary.duplicates);
    CHECK(head.summary.malformed + tail.summary.malformed == full.summary.malformed);
    check_regions(tail.summary.regions, full.summary.regions);
  }
}

TEST_CASE("simulate: every record decodes but the malformed ones, as many as the summary reports") {
  const Stream s = run(with_faults(small_world()));
  std::uint64_t rejected = 0;
  std::set<std::string> reasons;
  std::map<std::string, std::uint64_t> by_type;
  for (const auto& r : s.records) {
    const Decoded d = decode(s.bytes(r));
    if (const auto* rej = std::get_if<Rejection>(&d)) {
      ++rejected;
      reasons.insert(reason_name(rej->reason));
    } else {
      ++by_type[fb::EnumNamePayload(std::get<Event>(d).type())];
    }
  }
  CHECK(s.summary.events == s.records.size());
  CHECK(s.summary.malformed > 0);
  CHECK(rejected == s.summary.malformed);
  CHECK(reasons == std::set<std::string>{"malformed", "invalid_value", "unsupported_schema_version"});
  // Without faults the counts by type are those of the decoded stream.
  const Stream clean = run(small_world());
  std::map<std::string, std::uint64_t> clean_by_type;
  for (const auto& r : clean.records) ++clean_by_type[fb::EnumNamePayload(std::get<Event>(decode(clean.bytes(r))).type())];
  CHECK(clean_by_type == std::map<std::string, std::uint64_t>(clean.summary.events_by_type.begin(),
                                                             clean.summary.events_by_type.end()));
  // Every input event type of the contract is exercised (DispatchRequested is qudao's own output;
  // ShipmentTransferred, the arrival leg of a shipment between shards, comes only with --cross-shard).
  CHECK(clean_by_type.size() == static_cast<std::size_t>(fb::Payload::MAX) - 2);
  CHECK(!clean_by_type.contains("DispatchRequested"));
  CHECK(!clean_by_type.contains("ShipmentTransferred"));
}

TEST_CASE("simulate: the engine's ledger ends where the summary says, and its outcome counts match") {
  const SimulateOptions clean_options = small_world();
  const Stream clean = run(clean_options);
  const Applied a = apply_all(clean, 4);
  CHECK(a.totals.consumed == clean.summary.events);
  CHECK(a.totals.applied == clean.summary.events);
  CHECK(a.totals.duplicates == 0);
  CHECK(a.totals.rejected == 0);
  check_regions(a.regions, clean.summary.regions);

  // Faults change the records, not the world: the same stock, and every fault counted as it should.
  const Stream faulty = run(with_faults(clean_options));
  CHECK(faulty.summary.duplicates > 0);
  CHECK(faulty.summary.late > 0);
  check_regions(faulty.summary.regions, clean.summary.regions);
  for (int partitions : {1, 3, 8}) {
    INFO(partitions << " partitions");
    const Applied f = apply_all(faulty, partitions);
    CHECK(f.totals.consumed == faulty.summary.events);
    CHECK(f.totals.applied + f.totals.duplicates + f.totals.rejected == faulty.summary.events);
    CHECK(f.totals.duplicates == faulty.summary.duplicates);
    CHECK(f.totals.rejected == faulty.summary.malformed);
    CHECK(f.totals.applied == faulty.summary.applied());
    check_regions(f.regions, faulty.summary.regions);
  }
}

TEST_CASE("simulate: --cross-shard replenishes the sub-warehouses from HQ; the arrival legs are the engine's own") {
  SimulateOptions o = with_faults(small_world());
  o.cross_shard = SimulateOptions::CrossShard::on;
  const Stream s = run(o);
  REQUIRE(s.summary.transfers > 10);
  CHECK(s.summary.events_by_type.at("ShipmentTransferred") == s.summary.transfers);
  // The world is the one without the option up to the first batch that goes through HQ: day 0's
  // opening stock is in place everywhere.
  const Stream plain = run(with_faults(small_world()));
  CHECK(plain.summary.events_by_type.count("ShipmentTransferred") == 0);
  CHECK(plain.summary.transfers == 0);
  CHECK(s.same_record(0, plain, 0));

  for (int partitions : {1, 4, 8}) {
    INFO(partitions << " partitions");
    const Applied a = apply_all(s, partitions);
    auto partition = [&](const std::string& key) {
      return partition_for_key({reinterpret_cast<const std::uint8_t*>(key.data()), key.size()}, partitions);
    };
    // The simulator writes each arrival leg as the relay would; the engine emitted the same bytes for
    // every one whose region is not on HQ's partition (there the dispatch was an ordinary shipment,
    // and its arrival leg a duplicate).
    std::multiset<std::pair<std::string, std::string>> written;
    std::uint64_t same_partition = 0;
    for (const auto& r : s.records) {
      const auto bytes = s.bytes(r);
      const Decoded d = decode(bytes);
      const Event* e = std::get_if<Event>(&d);
      if (e == nullptr || e->type() != fb::Payload::ShipmentTransferred) continue;
      if (partition(r.key) == partition("HQ")) {
        ++same_partition;
        continue;
      }
      written.emplace(r.key, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    }
    CHECK(written.size() + same_partition == s.summary.transfers);
    CHECK(a.arrivals == written);
    CHECK(a.totals.consumed == s.summary.events);
    CHECK(a.totals.rejected == s.summary.malformed);
    CHECK(a.totals.duplicates == s.summary.duplicates + same_partition);
    check_regions(a.regions, s.summary.regions);
    for (const auto& [sku, sum] : a.clearing) {
      INFO("sku " << sku);
      CHECK(sum == 0);
    }
  }
}

TEST_CASE("simulate: rebate settlements of a month's corrections and of a quarter's accrual pay no more than the "
          "ledger owes: none is rejected") {
  SimulateOptions o = small_world();
  o.days = 110;  // to 2026-04-20: January, February and March settled on the 15th after, and Q1 on April 15
  const Stream s = run(o);
  std::map<std::string, std::uint64_t> settled_by_period;
  for (const auto& r : s.records) {
    const Event e = std::get<Event>(decode(s.bytes(r)));
    if (e.type() == fb::Payload::RebateSettled) ++settled_by_period[e.envelope->payload_as_RebateSettled()->period()->str()];
  }
  CHECK(settled_by_period["2026-Q1"] > 0);
  CHECK(settled_by_period.size() >= 3);
  const Applied a = apply_all(s, 4);
  CHECK(a.totals.applied == s.summary.events);
  CHECK(a.totals.rejected == 0);
}

TEST_CASE("simulate: weekends sell more than weekdays; long-tail skus sell on few store-days") {
  SimulateOptions o = small_world();
  o.days = 56;
  const Stream s = run(o);
  std::array<double, 7> units_by_weekday{};  // 0 = Monday
  std::map<std::uint64_t, std::uint64_t> units_by_sku;
  std::map<std::uint64_t, std::set<std::pair<std::uint64_t, std::int64_t>>> store_days_by_sku;
  for (const auto& r : s.records) {
    const Event e = std::get<Event>(decode(s.bytes(r)));
    if (e.type() != fb::Payload::ScanOut) continue;
    const auto* scan = e.envelope->payload_as_ScanOut();
    const std::int64_t day = (e.occurred_at.value - kStartMs) / kDayMs;
    if (day < 7) continue;  // stores are still filling their shelves
    units_by_weekday[(day + 3) % 7] += static_cast<double>(scan->qty());
    units_by_sku[scan->sku()] += static_cast<std::uint64_t>(scan->qty());
    store_days_by_sku[scan->sku()].insert({scan->store(), day});
  }
  const double weekday = (units_by_weekday[0] + units_by_weekday[1] + units_by_weekday[2] + units_by_weekday[3]) / 4;
  const double weekend = (units_by_weekday[5] + units_by_weekday[6]) / 2;
  CHECK(weekend > weekday * 1.2);

  // The best seller sells at most store-days, the slowest sku at few.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranked;  // (units, sku)
  for (int k = 1; k <= o.skus; ++k) ranked.emplace_back(units_by_sku[k], k);
  std::sort(ranked.rbegin(), ranked.rend());
  const double store_days = static_cast<double>(o.regions * o.cities_per_region * o.stores_per_city) * (o.days - 7);
  const double top = static_cast<double>(store_days_by_sku[ranked.front().second].size()) / store_days;
  const double tail = static_cast<double>(store_days_by_sku[ranked.back().second].size()) / store_days;
  MESSAGE("store-days with a sale: best seller " << top << ", slowest sku " << tail);
  CHECK(top > 0.5);
  CHECK(tail < 0.2);
}

TEST_CASE("simulate: presets set the size knobs and grow from small to large") {
  const SimulateOptions small = SimulateOptions::preset("small");
  const SimulateOptions medium = SimulateOptions::preset("medium");
  const SimulateOptions large = SimulateOptions::preset("large");
  auto store_days = [](const SimulateOptions& o) {
    return static_cast<std::int64_t>(o.regions) * o.cities_per_region * o.stores_per_city * o.days;
  };
  CHECK(store_days(small) < store_days(medium));
  CHECK(store_days(medium) < store_days(large));
  CHECK(small.seed == SimulateOptions{}.seed);
  CHECK(small.duplicate_rate == 0);
}

}  // namespace qudao
