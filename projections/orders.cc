#include "projections/orders.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <mutex>
#include <queue>
#include <shared_mutex>

namespace qudao {
namespace {

constexpr std::int32_t kPartitionBeforeAll = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t kPartitionAfterAll = std::numeric_limits<std::int32_t>::max();
constexpr std::uint64_t kOrderIdLast = std::numeric_limits<std::uint64_t>::max();

}  // namespace

void OrderProjection::publish(Shard& shard) {
  // Only this thread writes: reading the position without the lock is safe, and a batch that changed
  // nothing here takes no lock at all.
  const auto position = as_of_.find(shard.partition().value);
  if (!shard.has_order_changes() && position != as_of_.end() && position->second.next_offset == shard.next_offset()) {
    return;
  }
  std::unique_lock lock(mutex_);
  const PartitionId p = shard.partition();
  shard.drain_order_changes([&](OrderId id, const Order& o) { put_order(shard, id, o); });
  shard.drain_shipment_changes([&](ShipmentId id, const Shipment& s) { put_shipment(p, id, s); });
  put_position(shard);
}

void OrderProjection::rebuild(Shard& shard) {
  // Everything is copied below: what is listed as changed is not needed again.
  shard.drain_order_changes([](OrderId, const Order&) {});
  shard.drain_shipment_changes([](ShipmentId, const Shipment&) {});
  std::unique_lock lock(mutex_);
  const PartitionId p = shard.partition();
  shard.for_each_order([&](OrderId id, const Order& o) { put_order(shard, id, o); });
  shard.for_each_shipment([&](ShipmentId id, const Shipment& s) { put_shipment(p, id, s); });
  put_position(shard);
}

std::uint32_t OrderProjection::region_index(const std::string& region) {
  // A region is a run's leading bits; more regions than fit would take more memory than the machine has.
  assert(regions_.size() < kRegionsMax && "regions fit a listing run's region bits");
  auto [it, inserted] = region_ids_.try_emplace(region, static_cast<std::uint32_t>(regions_.size()));
  if (inserted) regions_.push_back(region);
  return it->second;
}

void OrderProjection::put_order(const Shard& shard, OrderId id, const Order& o) {
  const std::int32_t p = shard.partition().value;
  const OrderKey key{id.value, p};
  auto [it, inserted] = orders_.try_emplace(key);
  Entry& e = it->second;
  if (!inserted && e.order.state != o.state) {
    by_store_state_.erase({e.order.store.value, static_cast<std::uint8_t>(e.order.state), id.value, p});
    unindex_order(key, e.order, e.region);
  }
  if (inserted || e.order.state != o.state) {
    by_store_state_.insert({o.store.value, static_cast<std::uint8_t>(o.state), id.value, p});
  }
  if (inserted) {
    by_store_.insert({o.store.value, id.value, p});
    // The store is defined on the shard (OrderPlaced checks it) and never changes region.
    const LocationInfo* at = shard.location(o.store);
    e.region = region_index(at != nullptr ? at->region : std::string());
    store_regions_.try_emplace(o.store.value, e.region);
  }
  if (inserted || e.order.state != o.state) index_order(key, o, e.region);
  e.order = o;  // the store and placer never change: an order is placed once
}

void OrderProjection::index_order(const OrderKey& key, const Order& o, std::uint32_t region) {
  const std::uint32_t run = run_of(region, o.state);
  by_region_.insert(RunKey{0, key.first, run, key.second});
  by_placer_.insert(RunKey{o.placed_by, key.first, run, key.second});
}

void OrderProjection::unindex_order(const OrderKey& key, const Order& o, std::uint32_t region) {
  const std::uint32_t run = run_of(region, o.state);
  by_region_.erase(RunKey{0, key.first, run, key.second});
  by_placer_.erase(RunKey{o.placed_by, key.first, run, key.second});
}

void OrderProjection::put_shipment(PartitionId partition, ShipmentId id, const Shipment& s) {
  if (s.order.value == 0) return;  // a transfer: no order shows it
  shipments_[{partition.value, id.value}] = s;
  shipments_by_order_.insert({partition.value, s.order.value, id.value});
}

void OrderProjection::put_position(const Shard& shard) {
  as_of_[shard.partition().value] = OrdersAsOf{shard.partition(), shard.next_offset(), shard.watermark()};
}

OrderStatus OrderProjection::status_of(const OrderKey& key, const Entry& e) const {
  OrderStatus s{OrderId{key.first}, e.order, regions_[e.region], {}, 0, {}};
  if (auto a = as_of_.find(key.second); a != as_of_.end()) s.as_of = a->second;
  return s;
}

std::optional<OrderStatus> OrderProjection::order(OrderId id, const RegionScope& scope) const {
  std::shared_lock lock(mutex_);
  for (auto it = orders_.lower_bound(OrderKey{id.value, std::numeric_limits<std::int32_t>::min()});
       it != orders_.end() && it->first.first == id.value; ++it) {
    if (!scope.contains(regions_[it->second.region])) continue;
    OrderStatus s = status_of(it->first, it->second);
    const std::int32_t p = it->first.second;
    for (auto sh = shipments_by_order_.lower_bound({p, id.value, 0});
         sh != shipments_by_order_.end() && std::get<0>(*sh) == p && std::get<1>(*sh) == id.value; ++sh) {
      if (s.shipments_total++ >= kOrderShipmentsListedMax) continue;
      s.shipments.push_back(OrderShipment{ShipmentId{std::get<2>(*sh)}, shipments_.at({p, std::get<2>(*sh)})});
    }
    return s;
  }
  return std::nullopt;
}

OrderStatus OrderProjection::listing_row(const OrderKey& key) const {
  OrderStatus s = status_of(key, orders_.at(key));
  const auto [id, p] = key;
  for (auto sh = shipments_by_order_.lower_bound({p, id, 0});
       sh != shipments_by_order_.end() && std::get<0>(*sh) == p && std::get<1>(*sh) == id; ++sh) {
    ++s.shipments_total;
  }
  return s;
}

OrdersPage OrderProjection::store_orders(LocationId store, std::optional<OrderState> state, const RegionScope& scope,
                                         std::optional<OrderCursor> after, std::size_t limit) const {
  OrdersPage page;
  std::shared_lock lock(mutex_);
  // A store is in one region: out of scope, it has no orders to show.
  auto region = store_regions_.find(store.value);
  if (region == store_regions_.end() || !scope.contains(regions_[region->second])) return page;
  // Listed after (order, partition): from the next partition of the same order on.
  const std::uint64_t from_order = after ? after->order.value : 0;
  const std::int32_t from_partition = after ? after->partition.value : kPartitionBeforeAll;
  OrderKey last;
  auto take = [&](std::uint64_t id, std::int32_t p) {
    if (after && std::pair(id, p) <= std::pair(from_order, from_partition)) return true;
    if (page.orders.size() == limit) {
      page.next = OrderCursor{OrderId{last.first}, PartitionId{last.second}};
      return false;
    }
    last = OrderKey{id, p};
    page.orders.push_back(listing_row(last));
    return true;
  };
  if (state) {
    const auto st = static_cast<std::uint8_t>(*state);
    for (auto it = by_store_state_.lower_bound({store.value, st, from_order, kPartitionBeforeAll});
         it != by_store_state_.end() && std::get<0>(*it) == store.value && std::get<1>(*it) == st; ++it) {
      if (!take(std::get<2>(*it), std::get<3>(*it))) break;
    }
  } else {
    for (auto it = by_store_.lower_bound({store.value, from_order, kPartitionBeforeAll});
         it != by_store_.end() && std::get<0>(*it) == store.value; ++it) {
      if (!take(std::get<1>(*it), std::get<2>(*it))) break;
    }
  }
  return page;
}

OrdersPage OrderProjection::stores_orders(std::span<const LocationId> stores, std::optional<OrderState> state,
                                          const RegionScope& scope, std::optional<OrderCursor> after,
                                          std::size_t limit) const {
  std::shared_lock lock(mutex_);
  // The first order of `store` after (order, partition), if any.
  auto next_of = [&](std::uint64_t store, std::uint64_t order, std::int32_t partition) -> std::optional<OrderKey> {
    if (state) {
      const auto st = static_cast<std::uint8_t>(*state);
      auto it = by_store_state_.upper_bound({store, st, order, partition});
      if (it == by_store_state_.end() || std::get<0>(*it) != store || std::get<1>(*it) != st) return std::nullopt;
      return OrderKey{std::get<2>(*it), std::get<3>(*it)};
    }
    auto it = by_store_.upper_bound({store, order, partition});
    if (it == by_store_.end() || std::get<0>(*it) != store) return std::nullopt;
    return OrderKey{std::get<1>(*it), std::get<2>(*it)};
  };
  // Heads: (the store's next order, the store), least first.
  using Head = std::pair<OrderKey, std::uint64_t>;
  std::priority_queue<Head, std::vector<Head>, std::greater<>> heads;
  const std::uint64_t from_order = after ? after->order.value : 0;
  const std::int32_t from_partition = after ? after->partition.value : kPartitionBeforeAll;
  for (LocationId store : stores) {
    auto region = store_regions_.find(store.value);
    if (region == store_regions_.end() || !scope.contains(regions_[region->second])) continue;
    if (auto first = next_of(store.value, from_order, from_partition)) heads.emplace(*first, store.value);
  }
  OrdersPage page;
  OrderKey last;
  while (!heads.empty()) {
    const auto [key, store] = heads.top();
    if (page.orders.size() == limit) {
      page.next = OrderCursor{OrderId{last.first}, PartitionId{last.second}};
      break;
    }
    heads.pop();
    last = key;
    page.orders.push_back(listing_row(key));
    if (auto next = next_of(store, key.first, key.second)) heads.emplace(*next, store);
  }
  return page;
}

void OrderProjection::add_region_runs(std::uint32_t region, std::optional<OrderState> state,
                                      std::vector<std::uint32_t>& runs) {
  if (state) {
    runs.push_back(run_of(region, *state));
    return;
  }
  for (OrderState s : kOrderStates) runs.push_back(run_of(region, s));
}

OrdersPage OrderProjection::merge_runs(const RunIndex& index, std::uint64_t group, const std::vector<std::uint32_t>& runs,
                                       std::optional<OrderCursor> after, std::size_t limit) const {
  struct Head {
    RunIndex::const_iterator at, end;
  };
  std::vector<Head> heads;
  heads.reserve(runs.size());
  for (std::uint32_t run : runs) {
    const auto begin = after ? index.upper_bound(RunKey{group, after->order.value, run, after->partition.value})
                             : index.lower_bound(RunKey{group, 0, run, kPartitionBeforeAll});
    const auto end = index.upper_bound(RunKey{group, kOrderIdLast, run, kPartitionAfterAll});
    if (begin != end) heads.push_back(Head{begin, end});
  }
  // Runs are few (regions × states), so the smallest head is found by looking at each.
  OrdersPage page;
  OrderKey last;
  while (!heads.empty()) {
    auto next = std::min_element(heads.begin(), heads.end(), [](const Head& a, const Head& b) {
      return std::pair(a.at->order, a.at->partition) < std::pair(b.at->order, b.at->partition);
    });
    if (page.orders.size() == limit) {
      page.next = OrderCursor{OrderId{last.first}, PartitionId{last.second}};
      break;
    }
    last = OrderKey{next->at->order, next->at->partition};
    page.orders.push_back(listing_row(last));
    if (++next->at == next->end) heads.erase(next);
  }
  return page;
}

std::optional<OrdersPage> OrderProjection::region_orders(std::string_view region, std::optional<OrderState> state,
                                                         const RegionScope& scope, std::optional<OrderCursor> after,
                                                         std::size_t limit) const {
  std::shared_lock lock(mutex_);
  if (!scope.contains(region)) return std::nullopt;
  auto found = region_ids_.find(std::string(region));
  if (found == region_ids_.end()) return std::nullopt;  // no order of it was ever placed
  std::vector<std::uint32_t> runs;
  add_region_runs(found->second, state, runs);
  return merge_runs(by_region_, 0, runs, after, limit);
}

std::optional<OrdersPage> OrderProjection::placed_orders(PartyId placed_by, std::optional<OrderState> state,
                                                         const RegionScope& scope, std::optional<OrderCursor> after,
                                                         std::size_t limit) const {
  std::shared_lock lock(mutex_);
  const std::uint64_t group = placed_by.value;
  std::vector<std::uint32_t> runs;
  bool placed_in_scope = false;
  // The runs the placer has, of the regions in scope: each found by one seek.
  auto visit_run = [&](std::uint32_t run) {
    placed_in_scope = true;
    if (!state || (run & ((1u << kRunStateBits) - 1)) == static_cast<std::uint32_t>(*state)) runs.push_back(run);
  };
  if (scope.is_all()) {
    for (auto it = by_placer_.lower_bound(RunKey{group, 0, 0, kPartitionBeforeAll});
         it != by_placer_.end() && it->group == group;
         it = by_placer_.upper_bound(RunKey{group, kOrderIdLast, it->run, kPartitionAfterAll})) {
      visit_run(it->run);
    }
  } else {
    for (const std::string& name : scope.regions()) {
      auto region = region_ids_.find(name);
      if (region == region_ids_.end()) continue;
      for (OrderState s : kOrderStates) {
        const std::uint32_t run = run_of(region->second, s);
        auto it = by_placer_.lower_bound(RunKey{group, 0, run, kPartitionBeforeAll});
        if (it != by_placer_.end() && it->group == group && it->run == run) visit_run(run);
      }
    }
  }
  if (!placed_in_scope) return std::nullopt;
  return merge_runs(by_placer_, group, runs, after, limit);
}

std::optional<OrdersAsOf> OrderProjection::as_of(PartitionId partition) const {
  std::shared_lock lock(mutex_);
  auto it = as_of_.find(partition.value);
  if (it == as_of_.end()) return std::nullopt;
  return it->second;
}

}  // namespace qudao
