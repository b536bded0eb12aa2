#include "tools/simulate.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <vector>

#include "events/encode.h"

namespace qudao {
namespace {

constexpr std::int64_t kStartMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::array<std::string_view, 8> kRegionNames = {"East", "North", "South", "West",
                                                          "Central", "Northeast", "Northwest", "Southwest"};

// splitmix64: tiny, fast and identical on every platform (std distributions are not).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::int64_t below(std::int64_t n) { return static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(n)); }
  bool chance(int percent) { return below(100) < percent; }

 private:
  std::uint64_t s_;
};

struct Location {
  LocationId id;
  fb::LocationKind kind;
  std::string name, city, region;
  std::vector<std::int64_t> on_hand, reserved, in_transit;  // per sku index; on_hand is the free part
};

// A reservation of an unpaid proxy order, freed when event time passes its deadline.
struct Expiry {
  int day;  // the first day whose events are past the deadline
  std::size_t warehouse;
  int sku;
  std::int64_t qty;
};

struct Shipment {
  ShipmentId id;
  std::size_t to;  // index into locations
  int sku;
  std::int64_t qty;
};

class World {
 public:
  World(const SimulateOptions& o, const EventSink& sink) : o_(o), sink_(sink), rng_(o.seed) {}

  SimulationSummary run() {
    build();
    for (day_ = 0; day_ < o_.days; ++day_) {
      if (day_ == 0) define_locations();
      expire();
      if (day_ % 7 == 0) produce();
      receive();
      sell_and_reorder();
    }
    for (const Location& l : locations_) {
      RegionExpectation& r = summary_.regions[l.region];
      ++r.locations;
      for (int s = 0; s < o_.skus; ++s) r.on_hand += l.on_hand[s] + l.reserved[s], r.in_transit += l.in_transit[s];
    }
    return summary_;
  }

 private:
  void build() {
    std::uint64_t next_id = 1;
    for (int r = 0; r < o_.regions; ++r) {
      const std::string region = r < static_cast<int>(kRegionNames.size())
                                     ? std::string(kRegionNames[r]) : fmt::format("Region{}", r + 1);
      for (int c = 0; c < o_.cities_per_region; ++c) {
        const std::string city = fmt::format("{}-City{}", region, c + 1);
        warehouses_.push_back(locations_.size());
        locations_.push_back(make(next_id++, fb::LocationKind::SubWarehouse, city + " sub-warehouse", city, region));
        const std::size_t warehouse = warehouses_.back();
        for (int s = 0; s < o_.stores_per_city; ++s) {
          store_warehouse_.emplace_back(locations_.size(), warehouse);
          locations_.push_back(make(next_id++, fb::LocationKind::Store, fmt::format("{} store {}", city, s + 1), city, region));
        }
      }
    }
    // Each sku sells at its own pace: a few fast movers, a long tail of slow ones.
    for (int s = 0; s < o_.skus; ++s) sku_rate_.push_back(s < o_.skus / 5 ? 4 + rng_.below(4) : 1 + rng_.below(2));
  }

  Location make(std::uint64_t id, fb::LocationKind kind, std::string name, std::string city, std::string region) {
    return Location{LocationId{id}, kind, std::move(name), std::move(city), std::move(region),
                    std::vector<std::int64_t>(o_.skus), std::vector<std::int64_t>(o_.skus),
                    std::vector<std::int64_t>(o_.skus)};
  }

  // Every event gets the next id and a time within the current day, whether emitted or not, so
  // that a continued run (--from-day) sees exactly the same world.
  Header header() {
    ++event_seq_;
    intra_day_ms_ = std::min<std::int64_t>(intra_day_ms_ + 1 + rng_.below(1000), kDayMs - 1);
    return Header{EventId{o_.seed, event_seq_}, TimeMs{kStartMs + day_ * kDayMs + intra_day_ms_}, o_.source};
  }

  void emit(const Location& at, const char* type, std::span<const std::uint8_t> bytes) {
    if (day_ < o_.from_day) return;
    sink_(at.region, bytes);
    ++summary_.events;
    ++summary_.events_by_type[type];
  }

  void define_locations() {
    for (const Location& l : locations_) {
      emit(l, "LocationDefined", writer_.location_defined(header(), l.id, l.kind, l.name, l.city, l.region));
    }
  }

  void produce() {
    for (std::size_t w : warehouses_) {
      Location& l = locations_[w];
      lines_.clear();
      for (int s = 0; s < o_.skus; ++s) {
        const std::int64_t qty = sku_rate_[s] * o_.stores_per_city * 7 + rng_.below(20);
        lines_.push_back(Line{SkuId{static_cast<std::uint64_t>(s + 1)}, Quantity{qty}});
        l.on_hand[s] += qty;
      }
      emit(l, "ProductionCompleted", writer_.production_completed(header(), ++batch_seq_, l.id, lines_));
    }
  }

  // The ledger expires an unpaid proxy order at the first event past its deadline (midnight):
  // before any event of this day, so the model frees the stock at the start of the day.
  void expire() {
    std::erase_if(expiries_, [&](const Expiry& e) {
      if (e.day != day_) return false;
      Location& w = locations_[e.warehouse];
      w.reserved[e.sku] -= e.qty;
      w.on_hand[e.sku] += e.qty;
      return true;
    });
  }

  void receive() {
    std::vector<Shipment> arriving;
    arriving.swap(in_transit_);
    for (const Shipment& sh : arriving) {
      Location& l = locations_[sh.to];
      // Now and then a case arrives short or damaged: the ledger books the rest as a loss.
      std::int64_t got = sh.qty;
      if (sh.qty >= 2 && rng_.chance(2)) got = std::max<std::int64_t>(1, sh.qty - 1 - rng_.below(sh.qty / 2));
      l.in_transit[sh.sku] -= sh.qty;
      l.on_hand[sh.sku] += got;
      const Line line{SkuId{static_cast<std::uint64_t>(sh.sku + 1)}, Quantity{got}};
      emit(l, "ShipmentReceived", writer_.shipment_received(header(), sh.id, l.id, std::span(&line, 1)));
    }
  }

  void sell_and_reorder() {
    for (const auto& [store_index, warehouse_index] : store_warehouse_) {
      Location& store = locations_[store_index];
      Location& warehouse = locations_[warehouse_index];
      for (int s = 0; s < o_.skus; ++s) {
        const SkuId sku{static_cast<std::uint64_t>(s + 1)};
        // Consumers buy; the store scans out what it has (weekends sell more).
        const std::int64_t weekend = (day_ % 7 >= 5) ? 2 : 1;
        const std::int64_t demand = rng_.chance(40) ? rng_.below(sku_rate_[s] * weekend + 1) : 0;
        const std::int64_t sold = std::min(demand, store.on_hand[s]);
        if (sold > 0) {
          store.on_hand[s] -= sold;
          const std::string code = rng_.chance(30) ? fmt::format("QR{:012}", event_seq_ + 1) : std::string();
          emit(store, "ScanOut", writer_.scan_out(header(), store.id, sku, Quantity{sold}, code));
        }
        // Reorder when low and nothing is on the way; a third of orders are placed by the
        // store's distributor on its behalf.
        const std::int64_t reorder_point = sku_rate_[s] * 3;
        if (store.on_hand[s] >= reorder_point || store.in_transit[s] > 0) continue;
        const std::int64_t want = sku_rate_[s] * 7;
        const OrderId order{++order_seq_};
        // A third of orders are placed by the store's distributor on its behalf (代下单): they hold
        // stock at the sub-warehouse until paid; one in ten of those is never paid and expires.
        const bool proxy = rng_.chance(33);
        const std::uint64_t payer = proxy ? 1'000'000 + warehouse.id.value : store.id.value;
        const PricedLine line{sku, Quantity{want}, Fen{1'000 + 100 * s}};
        emit(store, "OrderPlaced",
             writer_.order_placed(header(), order, store.id, payer, warehouse.id,
                                  TimeMs{kStartMs + (day_ + 3) * kDayMs}, std::span(&line, 1)));
        std::int64_t held = 0;
        if (proxy) {
          held = std::min(want, warehouse.on_hand[s]);
          warehouse.on_hand[s] -= held;
          warehouse.reserved[s] += held;
          if (rng_.chance(10)) {
            if (held > 0) expiries_.push_back(Expiry{day_ + 3, warehouse_index, s, held});
            continue;
          }
        }
        emit(store, "OrderPaid", writer_.order_paid(header(), order, payer, Fen{want * line.unit_price.value}));
        const std::int64_t ship = std::min(want, held + warehouse.on_hand[s]);
        if (ship <= 0) continue;
        warehouse.reserved[s] -= held;
        warehouse.on_hand[s] -= ship - held;
        store.in_transit[s] += ship;
        const Shipment sh{ShipmentId{++shipment_seq_}, store_index, s, ship};
        in_transit_.push_back(sh);
        const Line l{sku, Quantity{ship}};
        emit(store, "ShipmentDispatched",
             writer_.shipment_dispatched(header(), sh.id, warehouse.id, store.id, order, std::span(&l, 1)));
      }
    }
    intra_day_ms_ = 0;
  }

  const SimulateOptions& o_;
  const EventSink& sink_;
  Rng rng_;
  EventWriter writer_;
  SimulationSummary summary_;
  std::vector<Location> locations_;
  std::vector<std::size_t> warehouses_;
  std::vector<std::pair<std::size_t, std::size_t>> store_warehouse_;
  std::vector<std::int64_t> sku_rate_;
  std::vector<Shipment> in_transit_;
  std::vector<Expiry> expiries_;
  std::vector<Line> lines_;
  int day_ = 0;
  std::int64_t intra_day_ms_ = 0;
  std::uint64_t event_seq_ = 0, batch_seq_ = 0, order_seq_ = 0, shipment_seq_ = 0;
};

}  // namespace

SimulationSummary simulate(const SimulateOptions& options, const EventSink& sink) {
  return World(options, sink).run();
}

}  // namespace qudao
