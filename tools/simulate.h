// A seeded, reproducible channel workload: regions → cities → one sub-warehouse and several stores
// each; skus; weekly production into the sub-warehouses; stores scanning out what consumers buy,
// reordering when low (a third of orders placed by the store's distributor on its behalf, 代下单,
// holding stock until paid, some never paid and expiring), payment, the sub-warehouse dispatching,
// and the store receiving the next day (now and then short).
//
// The simulator keeps its own model of every location's stock, so it only emits events that are
// valid, and it reports what the ledger must show after them (Summary::regions). Generation is
// deterministic for a seed and size: days [0, from_day) are generated but not emitted, so a second
// run with --from-day continues a first run exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>

namespace qudao {

struct SimulateOptions {
  std::uint64_t seed = 1;
  int regions = 4;
  int cities_per_region = 2;
  int stores_per_city = 8;
  int skus = 40;
  int days = 30;       // simulate days [0, days)
  int from_day = 0;    // emit only events of days >= from_day
  std::string source = "qudao-simulate";
};

struct RegionExpectation {
  std::int64_t on_hand = 0;
  std::int64_t in_transit = 0;
  std::size_t locations = 0;
};

struct SimulationSummary {
  std::uint64_t events = 0;  // emitted
  std::map<std::string, std::uint64_t> events_by_type;
  std::map<std::string, RegionExpectation> regions;  // expected ledger state after the last day
};

// key: the shard key (region name); value: one encoded event.
using EventSink = std::function<void(std::string_view key, std::span<const std::uint8_t> value)>;

SimulationSummary simulate(const SimulateOptions& options, const EventSink& sink);

}  // namespace qudao
