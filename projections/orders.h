// Order projection: the read model the query API answers order status from (GET /v1/orders,
// connectors/order_api.h). A copy of every order the shards hold (engine/orders.h: state, store,
// fulfilment, placed_by, payment deadline, due and paid fen, lines ordered / reserved / dispatched),
// with the shipments made for it and the region of its store.
//
// Why a projection and not the store: an order's state lives in the applying thread's Shard (not
// thread-safe) and in RocksDB as of the last commit. Reading RocksDB per request would cost a Get
// (or an iterator, for a store's listing) on the one HTTP thread, and with the engine's vector
// memtable every such read during ingest copies and sorts the live memtable first (2-45 ms,
// engine/store.h); it would also answer only what is committed. So, like the stock projection,
// this one is fed on the applying thread: Shard::put_order and put_shipment list what changed
// (each id once), and the pipeline drains those lists into the projection after every poll batch
// (publish), then records each partition's position. On start it is rebuilt from the shards loaded
// from the store (rebuild), so it keeps no durable state of its own. Cost on the apply path: one
// flag test per order change (and a push per first change between drains); per poll batch one
// lookup and copy per changed order or shipment, ~2 % of events (`qudao bench --rows apply`).
// Memory: a second copy of every order and of every shipment made for an order (transfers without
// an order are not kept), plus four ordered index entries per order: two for a store's listing, one
// for its region's and one for its placer's (see Listings).
//
// Freshness: every answer carries the position of the order's partition the projection includes
// (`as_of`: the next offset and the shard's event time). It is what the applying thread has applied,
// at most one poll batch behind it, and may be ahead of the last commit: a crash goes back to the
// commit and re-applies the same records to the same state, so nothing shown is ever undone.
//
// Keys: an order id is unique within its shard; the projection keys by (order id, partition), and
// a lookup by id takes the lowest partition in scope holding it.
//
// Listings: by a store, by a set of stores (a distributor's assigned stores), by a region (the region
// of the order's store) and by a placer (placed_by: a distributor for its stores, 代下单, or a store
// for itself), each optionally in one state, ordered by (order id, partition), after a cursor, at
// most a page. None scans orders it does not list. The
// region and placer listings read one ordered index each, whose key is
//
//   region:  (run, order id, partition)               run = region index << 3 | state
//   placer:  (placed_by, run, order id, partition)
//
// (RunKey, 24 bytes), so the orders of one (region, state) are one contiguous run. A listing merges
// the runs it may show: with a state, one run per region; without, one per (region, state), at most
// 6 per region; a placer's regions are found by skipping from run to run (one seek each). A page
// costs O(runs × log n + page × runs) whatever the other orders; runs are few (regions × states).
//
// Scope: every lookup takes the reader's RegionScope (projections/scope.h); an order whose store is
// outside it is not found, exactly like an unknown id. The scope is applied inside the lookup
// (the region is stored with each order, and is the leading part of the listing indexes' runs: a
// listing opens only the runs of regions in scope), never by filtering a full answer. A region out
// of scope, and a placer without orders in scope, are not found, like unknown ones.
//
// Determinism: the projection is derived from the shards' state only (no clock); listings come
// from ordered indexes, so the same state gives the same answers whatever order it was fed in.
//
// Thread-safety: one writer (the pipeline thread: publish() and rebuild() take the lock) and any
// number of readers. The lock is a PiMutex, as the stock and performance projections' are: a query
// on the real-time HTTP thread that waits for the writer lends it its priority (engine/pi_mutex.h),
// and readers exclude each other (there is one HTTP thread).
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/btree_set.h>

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "engine/channel.h"  // PartyId
#include "engine/ledger.h"
#include "engine/pi_mutex.h"
#include "projections/scope.h"

namespace qudao {

inline constexpr std::size_t kOrdersPageMax = 1'000;        // orders per listing page
inline constexpr std::size_t kOrderShipmentsListedMax = 100;  // shipments given with one order
// Every order state, in the state machine's order.
inline constexpr std::array<OrderState, 6> kOrderStates{OrderState::placed,   OrderState::paid,
                                                        OrderState::dispatched, OrderState::received,
                                                        OrderState::cancelled, OrderState::expired};

// What a partition's orders include: every record before next_offset, event time up to event_time.
struct OrdersAsOf {
  PartitionId partition{-1};
  Offset next_offset{0};
  TimeMs event_time{0};
};

struct OrderShipment {
  ShipmentId id;
  Shipment shipment;
};

struct OrderStatus {
  OrderId id;
  Order order;
  std::string region;  // of its store
  std::vector<OrderShipment> shipments;  // by id, the first kOrderShipmentsListedMax (not in listings)
  std::size_t shipments_total = 0;        // shipments made for the order
  OrdersAsOf as_of;
};

// A listing's position: the last order a page listed; the next page starts after it. Without a
// partition (the maximum), after the order id on every partition.
struct OrderCursor {
  OrderId order;
  PartitionId partition{std::numeric_limits<std::int32_t>::max()};
};

struct OrdersPage {
  std::vector<OrderStatus> orders;  // by (order id, partition)
  std::optional<OrderCursor> next;   // the last order of this page, when more follow
};

class OrderProjection {
 public:
  // Copies the orders and shipments `shard` changed since the last drain, and its position.
  void publish(Shard& shard);
  // Copies every order and shipment of a loaded shard (on start), and its position.
  void rebuild(Shard& shard);

  // Nothing if no partition in `scope` holds the order (unknown and out of scope are one answer).
  std::optional<OrderStatus> order(OrderId id, const RegionScope& scope) const;
  // A store's orders in scope (only those in `state` if given), by id, after `after`; at most
  // `limit`. Rows carry no shipments (shipments_total only).
  OrdersPage store_orders(LocationId store, std::optional<OrderState> state, const RegionScope& scope,
                          std::optional<OrderCursor> after, std::size_t limit) const;
  // The orders of the stores in `region` (only those in `state` if given), by (order id, partition),
  // after `after`; at most `limit`, without shipments. Nothing if the region is outside `scope` or
  // no order of it was ever placed (unknown and out of scope are one answer).
  std::optional<OrdersPage> region_orders(std::string_view region, std::optional<OrderState> state,
                                          const RegionScope& scope, std::optional<OrderCursor> after,
                                          std::size_t limit) const;
  // The orders `placed_by` placed (OrderPlaced.placed_by) for stores in `scope`, likewise. Nothing if
  // it placed none for a store in scope, in any state: a placer is known by its orders only.
  std::optional<OrdersPage> placed_orders(PartyId placed_by, std::optional<OrderState> state,
                                          const RegionScope& scope, std::optional<OrderCursor> after,
                                          std::size_t limit) const;
  // The orders of `stores` (ascending ids; a distributor's assigned stores: connectors/order_api.h)
  // in `scope`, likewise by (order id, partition): each step takes the least next order among the
  // stores, one seek per store and one per order listed, O((stores + page) × log n).
  OrdersPage stores_orders(std::span<const LocationId> stores, std::optional<OrderState> state, const RegionScope& scope,
                           std::optional<OrderCursor> after, std::size_t limit) const;
  // The position the projection includes of `partition`; nothing if it has none.
  std::optional<OrdersAsOf> as_of(PartitionId partition) const;

 private:
  using OrderKey = std::pair<std::uint64_t, std::int32_t>;  // (order id, partition)
  struct Entry {
    Order order;
    std::uint32_t region = 0;  // index into regions_
  };

  // An entry of the region and placer indexes (see Listings above); `group` is the placer in the
  // placer index and 0 in the region index. Compared by (group, run, order, partition).
  struct RunKey {
    std::uint64_t group = 0;
    std::uint64_t order = 0;
    std::uint32_t run = 0;
    std::int32_t partition = 0;
    friend bool operator<(const RunKey& a, const RunKey& b) {
      return std::tie(a.group, a.run, a.order, a.partition) < std::tie(b.group, b.run, b.order, b.partition);
    }
  };
  using RunIndex = absl::btree_set<RunKey>;
  static constexpr unsigned kRunStateBits = 3;  // OrderState is 1..6
  static constexpr std::uint32_t kRegionsMax = std::uint32_t{1} << (32 - kRunStateBits);
  static std::uint32_t run_of(std::uint32_t region, OrderState state) {
    return region << kRunStateBits | static_cast<std::uint32_t>(state);
  }

  void put_order(const Shard& shard, OrderId id, const Order& o);
  void index_order(const OrderKey& key, const Order& o, std::uint32_t region);
  void unindex_order(const OrderKey& key, const Order& o, std::uint32_t region);
  // The runs of `region` a listing reads: the one of `state`, or every state's.
  static void add_region_runs(std::uint32_t region, std::optional<OrderState> state, std::vector<std::uint32_t>& runs);
  // Merges `runs` of `group` in `index` by (order id, partition): a page after `after`.
  OrdersPage merge_runs(const RunIndex& index, std::uint64_t group, const std::vector<std::uint32_t>& runs,
                        std::optional<OrderCursor> after, std::size_t limit) const;
  // A listing's row: the order without its shipments, counting them.
  OrderStatus listing_row(const OrderKey& key) const;
  void put_shipment(PartitionId partition, ShipmentId id, const Shipment& s);
  void put_position(const Shard& shard);
  std::uint32_t region_index(const std::string& region);
  OrderStatus status_of(const OrderKey& key, const Entry& e) const;

  mutable PiMutex mutex_;
  absl::btree_map<OrderKey, Entry> orders_;
  // (store, order id, partition) and (store, state, order id, partition): a store's listing, with
  // and without a state, costs O(log n + page) whatever the store's other orders.
  absl::btree_set<std::tuple<std::uint64_t, std::uint64_t, std::int32_t>> by_store_;
  absl::btree_set<std::tuple<std::uint64_t, std::uint8_t, std::uint64_t, std::int32_t>> by_store_state_;
  RunIndex by_region_;  // (0, run, order, partition)
  RunIndex by_placer_;  // (placed_by, run, order, partition)
  // Shipments made for an order: (partition, shipment id) -> shipment, and (partition, order, shipment).
  absl::btree_map<std::pair<std::int32_t, std::uint64_t>, Shipment> shipments_;
  absl::btree_set<std::tuple<std::int32_t, std::uint64_t, std::uint64_t>> shipments_by_order_;
  std::vector<std::string> regions_;  // interned: an order holds an index
  std::map<std::string, std::uint32_t> region_ids_;
  // A store's region (fixed: the region is the shard key), for a listing's scope: one lookup.
  absl::btree_map<std::uint64_t, std::uint32_t> store_regions_;
  std::map<std::int32_t, OrdersAsOf> as_of_;
};

}  // namespace qudao
