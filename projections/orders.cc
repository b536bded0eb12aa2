#include "projections/orders.h"

#include <limits>
#include <mutex>
#include <shared_mutex>

namespace qudao {

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
  auto [it, inserted] = region_ids_.try_emplace(region, static_cast<std::uint32_t>(regions_.size()));
  if (inserted) regions_.push_back(region);
  return it->second;
}

void OrderProjection::put_order(const Shard& shard, OrderId id, const Order& o) {
  const std::int32_t p = shard.partition().value;
  auto [it, inserted] = orders_.try_emplace(OrderKey{id.value, p});
  Entry& e = it->second;
  if (!inserted && e.order.state != o.state) {
    by_store_state_.erase({e.order.store.value, static_cast<std::uint8_t>(e.order.state), id.value, p});
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
  e.order = o;  // the store never changes: an order is placed once
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

OrdersPage OrderProjection::store_orders(LocationId store, std::optional<OrderState> state, const RegionScope& scope,
                                         std::optional<OrderId> after, std::size_t limit) const {
  OrdersPage page;
  std::shared_lock lock(mutex_);
  // A store is in one region: out of scope, it has no orders to show.
  auto region = store_regions_.find(store.value);
  if (region == store_regions_.end() || !scope.contains(regions_[region->second])) return page;
  const std::uint64_t from = after ? after->value + 1 : 0;
  auto take = [&](std::uint64_t id, std::int32_t p) {
    if (page.orders.size() == limit) {
      page.next = page.orders.back().id;
      return false;
    }
    const OrderKey key{id, p};
    const Entry& e = orders_.at(key);
    OrderStatus s = status_of(key, e);
    for (auto sh = shipments_by_order_.lower_bound({p, id, 0});
         sh != shipments_by_order_.end() && std::get<0>(*sh) == p && std::get<1>(*sh) == id; ++sh) {
      ++s.shipments_total;
    }
    page.orders.push_back(std::move(s));
    return true;
  };
  if (state) {
    const auto st = static_cast<std::uint8_t>(*state);
    for (auto it = by_store_state_.lower_bound({store.value, st, from, std::numeric_limits<std::int32_t>::min()});
         it != by_store_state_.end() && std::get<0>(*it) == store.value && std::get<1>(*it) == st; ++it) {
      if (!take(std::get<2>(*it), std::get<3>(*it))) break;
    }
  } else {
    for (auto it = by_store_.lower_bound({store.value, from, std::numeric_limits<std::int32_t>::min()});
         it != by_store_.end() && std::get<0>(*it) == store.value; ++it) {
      if (!take(std::get<1>(*it), std::get<2>(*it))) break;
    }
  }
  return page;
}

std::optional<OrdersAsOf> OrderProjection::as_of(PartitionId partition) const {
  std::shared_lock lock(mutex_);
  auto it = as_of_.find(partition.value);
  if (it == as_of_.end()) return std::nullopt;
  return it->second;
}

}  // namespace qudao
