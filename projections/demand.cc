// Demand input from the engine's state: see demand.h for what each figure is.
#include "projections/demand.h"

#include <algorithm>

namespace qudao {

void DemandBuilder::add_sale(SkuId sku, const std::string& region, Day day, Quantity qty) {
  sold_[{sku, region}][day.value] += qty.value;
  ++sales_;
}

DemandInput DemandBuilder::build(const std::map<std::int32_t, Shard>& shards) const {
  DemandInput in;
  in.sales = sales_;
  std::map<SkuId, SkuSupply> supply;
  for (const auto& [p, shard] : shards) {
    shard.channel().for_each_lead_time([&](SkuId sku, std::int32_t days) {
      auto [it, fresh] = supply.try_emplace(sku, SkuSupply{sku, days, {}, {}, {}});
      if (!fresh) it->second.lead_time_days = std::max(it->second.lead_time_days, static_cast<int>(days));
    });
  }
  for (const auto& [p, shard] : shards) {
    shard.for_each_balance([&](const Account& a, Quantity q) {
      if (a.location == kVirtualLocation || q.value <= 0) return;
      auto it = supply.find(a.sku);
      if (it == supply.end()) return;
      if (a.bucket == Bucket::on_hand || a.bucket == Bucket::reserved) it->second.on_hand.value += q.value;
      if (a.bucket == Bucket::in_transit) it->second.in_transit.value += q.value;
    });
    shard.for_each_order([&](OrderId, const Order& o) {
      if (o.state != OrderState::paid) return;
      for (const OrderLine& l : o.lines) {
        auto it = supply.find(l.sku);
        if (it != supply.end()) it->second.open_backorders.value += l.ordered - l.dispatched;
      }
    });
  }
  for (const auto& [sku, s] : supply) in.supply.push_back(s);

  if (sold_.empty()) return in;
  std::int32_t first = INT32_MAX, last = INT32_MIN;
  for (const auto& [key, days] : sold_) {
    first = std::min(first, days.begin()->first);
    last = std::max(last, days.rbegin()->first);
  }
  in.first_day = Day{first};
  in.last_day = Day{last};
  const auto length = static_cast<std::size_t>(last - first + 1);
  for (const auto& [key, days] : sold_) {
    DemandSeries s{key.first, key.second, in.first_day, std::vector<std::int64_t>(length, 0)};
    for (const auto& [day, units] : days) s.units_per_day[static_cast<std::size_t>(day - first)] = units;
    in.series.push_back(std::move(s));
  }
  return in;
}

}  // namespace qudao
