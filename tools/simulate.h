// A seeded, reproducible distribution channel and the events it produces (qudao simulate).
//
// The world: regions → cities → one sub-warehouse (分仓) and several stores each; per region a few
// agents (代理商), per city a few distributors (分销商) with their stores assigned (客户报备); skus with
// categories, prices, case packs and production lead times; the HQ warehouse (总仓) with HQ's own
// flagship stores. Day by day: factory batches arrive where production planning ordered them a lead
// time earlier; consumers buy (per store × sku a Poisson demand with a popularity rank, weekly
// seasonality, a trend and regional promotions: popular skus sell daily, long-tail skus now and
// then); stores scan out what they have; once a week each store reviews its stock and orders up to
// its level, by itself or through its distributor (代下单: holds stock until paid, some never paid
// and expire); warehouses dispatch paid orders (in parts when short; backorders wait); stores
// receive (now and then short) and count their stock; distributors get monthly targets and
// quarterly rebate policies, rebate corrections, ratings from their stores, and training.
//
// Shard keys. Every event is keyed by the region of the location it is about. The HQ warehouse,
// HQ's flagship stores and the catalogue (SkuDefined) are keyed "HQ", a shard of their own. By
// default factory batches go straight into each city's sub-warehouse (厂家直发), and the HQ warehouse
// supplies the flagship stores on its own shard. With SimulateOptions::cross_shard, every factory
// batch after the opening stock arrives at the HQ warehouse, which ships it on the same day to the
// sub-warehouse that planned it, a shipment between shards (ShipmentDispatched with to_region),
// received there one or two days later: HQ replenishes the regions (engine/apply.h).
//
// The simulator keeps its own model of every location's stock, so it emits only events the engine
// applies, and it reports what the ledger must show after the last day (SimulationSummary::regions)
// and the outcome counts the engine must report. Generation is deterministic for a seed and size:
// days [0, from_day) are generated but not emitted, so a run with --from-day continues an earlier
// run of the same seed exactly. Faults (duplicates, late and malformed events) come from a random
// stream of their own: the same seed gives the same channel with or without them.
//
// Not thread-safe: one simulate() call per thread.
#pragma once

#include <array>
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
  int days = 30;       // simulate days [0, days); day 0 is 2026-01-01
  int from_day = 0;    // emit only events of days >= from_day
  std::string source = "qudao-simulate";
  // Faults, each a fraction in [0, 1]:
  double duplicate_rate = 0;  // of valid events, sent a second time (same key and bytes) later that day
  double late_rate = 0;       // of scan-outs, delivered late: occurred_at 1 h to 3 days before the others
  double malformed_rate = 0;  // of valid events, followed by a record that decode() rejects
  // HQ's warehouse replenishing the sub-warehouses through shipments between shards (off: the stream
  // of every seed is what it was before, so the determinism reference and the benchmarks hold). Each
  // such dispatch is followed by its arrival leg, the ShipmentTransferred that qudao's relay writes,
  // byte for byte, as a relay without delay would: so an event file holds what the topic holds after
  // a serve, and the arrival precedes the receipt on the destination's partition however far behind
  // a serve consumes. The relay of a serve consuming the topic sends each once more: a duplicate.
  enum class CrossShard : std::uint8_t { off, on };
  CrossShard cross_shard = CrossShard::off;

  // The size knobs (regions, cities, stores, skus, days) of a named workload: "small" (a demo, about
  // 0.8 M events), "medium" (about 4 M) or "large" (about 23 M); other fields keep their defaults.
  // `name` must be one of kSimulatePresets.
  static SimulateOptions preset(std::string_view name);
};

inline constexpr std::array<std::string_view, 3> kSimulatePresets = {"small", "medium", "large"};

struct RegionExpectation {
  std::int64_t on_hand = 0;     // physical stock: free plus reserved
  std::int64_t in_transit = 0;
  std::size_t locations = 0;
};

struct SimulationSummary {
  std::uint64_t events = 0;  // records emitted, faults included
  std::map<std::string, std::uint64_t> events_by_type;  // valid events by payload type (no faults)
  // What the engine must report for the emitted records: applied + duplicates + rejected == events.
  std::uint64_t duplicates = 0;  // re-sent records: ignored as duplicates
  std::uint64_t malformed = 0;   // records decode() rejects: rejected
  std::uint64_t late = 0;        // valid scan-outs with an old occurred_at: applied
  // Shipments between shards dispatched (cross_shard), each with its arrival leg among `events`. A
  // serve's relay writes each arrival leg once more, which the destination counts as a duplicate.
  std::uint64_t transfers = 0;
  std::uint64_t applied() const { return events - duplicates - malformed; }
  std::map<std::string, RegionExpectation> regions;  // expected ledger state after the last day
};

// key: the shard key (region name, or "HQ"); value: one encoded event, valid during the call.
using EventSink = std::function<void(std::string_view key, std::span<const std::uint8_t> value)>;

SimulationSummary simulate(const SimulateOptions& options, const EventSink& sink);

}  // namespace qudao
