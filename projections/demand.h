// Demand input: the daily sell-through series per sku × region and each sku's supply, built from
// the engine's state, for forecast_and_plan() (projections/forecast.h). `qudao forecast FILE`
// (tools/forecast.cc) builds it from the shards it applied the file into and the scan-outs it
// applied; `qudao serve` (connectors/forecast_api.h) from the shards and sold rows of one store
// snapshot. Both through this one builder, so the same log gives the same input either way.
//
//   series   a sale adds its units to (sku, region of its location) on its day (the UTC day of the
//            scan-out's occurred_at: the engine's sold rows, engine/history.h). Every series spans
//            one calendar, from the first to the last day with a sale, zeros included; a (sku,
//            region) that never sold has no series. Ordered by (sku, region).
//   lead time   the sku's SkuDefined production lead time (engine/channel.h keeps the last one per
//            shard); a sku defined on several shards takes the longest of them (the catalogue is
//            keyed to one shard, HQ's, in practice); a sku never defined has no supply row (and so
//            no plan row).
//   on hand  per (location, sku), on_hand + reserved (reserved stock is still on the shelf), each
//            account counted from 0 up (a store driven below zero by scan-outs holds nothing); in
//            transit likewise; both summed over every real location of every shard.
//   open backorders   on every order whose state is paid (paid, not yet fully dispatched), ordered -
//            dispatched per line. Unpaid orders are not yet demand; cancelled and expired ones never
//            will be.
//
// Integer sums only and ordered output, so the (hash) order in which shards hand out their state
// does not matter. Not thread-safe; one builder per build.
#pragma once

#include <absl/container/btree_map.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/ledger.h"
#include "projections/forecast.h"

namespace qudao {

struct DemandInput {
  Day first_day{0}, last_day{0};  // of the series' calendar; equal, with no series, when nothing sold
  std::vector<DemandSeries> series;  // by (sku, region)
  std::vector<SkuSupply> supply;     // by sku: every defined sku
  std::uint64_t sales = 0;           // add_sale() calls counted into the series
};

class DemandBuilder {
 public:
  void add_sale(SkuId sku, const std::string& region, Day day, Quantity qty);
  // The series so far and the supply the shards hold now.
  DemandInput build(const std::map<std::int32_t, Shard>& shards) const;

 private:
  // (sku, region) -> units per day; ordered, so nothing depends on hash order.
  std::map<std::pair<SkuId, std::string>, absl::btree_map<std::int32_t, std::int64_t>> sold_;
  std::uint64_t sales_ = 0;
};

}  // namespace qudao
