// The order projection fed as the pipeline feeds it (publish after applying): every state an order
// goes through, its shipments, a proxy order expiring by event time, the region scope inside the
// lookups, store, region and placer listings by state and cursor (the latter two across two
// partitions holding the same order id), and the same answers from a rebuild on start.
#include "projections/orders.h"

#include <doctest/doctest.h>

#include "engine/apply.h"
#include "tests/projections/order_story.h"

namespace qudao {
using namespace qudao::test;

namespace {

const RegionScope kAll = RegionScope::all();
const RegionScope kEast = RegionScope::only({"East"});
const RegionScope kWest = RegionScope::only({"West"});

// The locations and stock of tests/connectors/api_fixture.h, on one shard.
struct Channel {
  Shard shard{PartitionId{0}};
  Applier applier;
  Events ev;
  OrderProjection projection;
  std::int64_t offset = 0;

  Channel() {
    for (const Bytes& b : {ev.location(1, fb::LocationKind::SubWarehouse, "East"), ev.location(2, fb::LocationKind::Store, "East"),
                           ev.location(3, fb::LocationKind::SubWarehouse, "West"), ev.location(4, fb::LocationKind::Store, "West"),
                           ev.production(1, {line(1, 100), line(2, 40)}), ev.production(3, {line(1, 7)})}) {
      feed(b);
    }
  }
  void feed(const Bytes& b) {
    REQUIRE(applier.ingest(shard, Offset{offset++}, b).outcome == RecordOutcome::applied);
    projection.publish(shard);
  }
  OrderStatus order(std::uint64_t id, const RegionScope& scope = kAll) const {
    auto o = projection.order(OrderId{id}, scope);
    REQUIRE(o.has_value());
    return *o;
  }
};

std::vector<std::uint64_t> ids(const OrdersPage& page) {
  std::vector<std::uint64_t> out;
  for (const OrderStatus& s : page.orders) out.push_back(s.id.value);
  return out;
}

using Key = std::pair<std::uint64_t, std::int32_t>;  // (order id, partition)
using Keys = std::vector<Key>;

Keys keys(const std::optional<OrdersPage>& page) {
  REQUIRE(page.has_value());
  Keys out;
  for (const OrderStatus& s : page->orders) out.emplace_back(s.id.value, s.as_of.partition.value);
  return out;
}

// A second partition feeding the same projection, with East store 12 and West store 14: order 7
// (store 12's own), order 31 (the id partition 0 has too; placed by distributor 101 for store 12)
// and order 40 (101 for West store 14), all placed; an order id is unique within its shard only.
struct SecondPartition {
  Shard shard{PartitionId{1}};
  Applier applier;
  Events ev;
  std::int64_t offset = 0;

  explicit SecondPartition(OrderProjection& projection) {
    EventWriter& w = ev.writer();
    const TimeMs deadline{kT0 + 10 * kDayLengthMs};
    auto placed = [&](std::uint64_t id, std::uint64_t store, std::uint64_t placed_by) {
      return copy(w.order_placed(ev.next(), OrderId{id}, LocationId{store}, placed_by, LocationId{0}, deadline,
                                 std::vector{PricedLine{SkuId{1}, Quantity{1}, Fen{500}}}));
    };
    for (const Bytes& b : {ev.location(12, fb::LocationKind::Store, "East"), ev.location(14, fb::LocationKind::Store, "West"),
                           placed(7, 12, 12), placed(31, 12, kStoryDistributor), placed(40, 14, kStoryDistributor)}) {
      REQUIRE(applier.ingest(shard, Offset{offset++}, b).outcome == RecordOutcome::applied);
      projection.publish(shard);
    }
  }
};

// Every page of a listing, `limit` at a time, following next: the keys in the order listed.
template <class List>
Keys all_pages(List list, std::size_t limit) {
  Keys out;
  std::optional<OrderCursor> after;
  for (int pages = 0; pages < 100; ++pages) {
    const std::optional<OrdersPage> page = list(after, limit);
    const Keys got = keys(page);
    CHECK(got.size() <= limit);
    out.insert(out.end(), got.begin(), got.end());
    if (!page->next) return out;
    CHECK(page->next->order.value == got.back().first);
    CHECK(page->next->partition.value == got.back().second);
    after = page->next;
  }
  FAIL("a listing that does not end");
  return out;
}

}  // namespace

TEST_CASE("orders projection: an order is placed, paid in parts, dispatched in part, received, as the ledger says") {
  Channel c;
  const OrderStory story = order_story();
  c.feed(story.events[0]);
  OrderStatus o = c.order(31);
  CHECK(o.order.state == OrderState::placed);
  CHECK(o.region == "East");
  CHECK(o.order.store == LocationId{2});
  CHECK(o.order.fulfilment == LocationId{1});
  CHECK_FALSE(o.order.proxy());
  CHECK(o.order.due == Fen{10'000});
  CHECK(o.order.paid == Fen{0});
  CHECK(o.as_of.partition == PartitionId{0});
  CHECK(o.as_of.next_offset == Offset{c.offset});
  CHECK(o.as_of.event_time == c.shard.watermark());

  c.feed(story.events[1]);
  CHECK(c.order(31).order.state == OrderState::placed);  // 4,000 of 10,000 paid
  CHECK(c.order(31).order.paid == Fen{4'000});
  c.feed(story.events[2]);
  CHECK(c.order(31).order.state == OrderState::paid);

  c.feed(story.events[3]);  // sku1 4 of 10
  o = c.order(31);
  CHECK(o.order.state == OrderState::paid);
  CHECK(o.order.lines[0].dispatched == 4);
  CHECK(o.order.lines[1].dispatched == 0);
  CHECK(o.order.shipments_open == 1);
  REQUIRE(o.shipments.size() == 1);
  CHECK(o.shipments_total == 1);
  CHECK(o.shipments[0].id == ShipmentId{601});
  CHECK(o.shipments[0].shipment.from == LocationId{1});
  CHECK(o.shipments[0].shipment.to == LocationId{2});
  CHECK_FALSE(o.shipments[0].shipment.received);

  c.feed(story.events[4]);
  o = c.order(31);
  CHECK(o.order.shipments_open == 0);
  CHECK(o.shipments[0].shipment.received);
  CHECK(o.order.state == OrderState::paid);  // 6 of sku1 and all of sku2 still to ship

  c.feed(story.events[5]);
  CHECK(c.order(31).order.state == OrderState::dispatched);
  c.feed(story.events[6]);
  o = c.order(31);
  CHECK(o.order.state == OrderState::received);
  REQUIRE(o.shipments.size() == 2);
  CHECK(o.shipments[1].id == ShipmentId{602});
  CHECK(o.shipments[1].shipment.received);
  CHECK(o.order.lines[0].dispatched == 10);
  CHECK(o.order.lines[1].dispatched == 5);
}

TEST_CASE("orders projection: a proxy order holds stock until event time passes its deadline, then expires") {
  Channel c;
  const OrderStory story = order_story();
  for (std::size_t i = 0; i < story.expired_at; ++i) c.feed(story.events[i]);
  CHECK(c.order(32).order.state == OrderState::cancelled);
  OrderStatus o = c.order(33);
  CHECK(o.order.state == OrderState::placed);
  CHECK(o.order.proxy());
  CHECK(o.order.placed_by == kStoryDistributor);
  CHECK(o.order.deadline == story.proxy_deadline);
  CHECK(o.order.lines[0].reserved == 5);
  // The next event is later than the deadline: the shard expires the order, and so does its status,
  // though that event is about another order in another region.
  c.feed(story.events[story.expired_at]);
  CHECK(c.shard.watermark().value > story.proxy_deadline.value);
  o = c.order(33);
  CHECK(o.order.state == OrderState::expired);
  CHECK(o.order.lines[0].reserved == 0);
}

TEST_CASE("orders projection: another region's order is not found, like an unknown one; listings page by state and cursor") {
  Channel c;
  for (const Bytes& b : order_story().events) c.feed(b);
  CHECK(c.projection.order(OrderId{31}, kEast).has_value());
  CHECK_FALSE(c.projection.order(OrderId{31}, kWest).has_value());
  CHECK(c.projection.order(OrderId{34}, kWest).has_value());
  CHECK_FALSE(c.projection.order(OrderId{34}, kEast).has_value());
  CHECK_FALSE(c.projection.order(OrderId{999}, kAll).has_value());

  const LocationId store{2};
  CHECK(ids(c.projection.store_orders(store, std::nullopt, kEast, std::nullopt, 100)) ==
        std::vector<std::uint64_t>{31, 32, 33, 35});
  CHECK(c.projection.store_orders(store, std::nullopt, kWest, std::nullopt, 100).orders.empty());
  const OrdersPage first = c.projection.store_orders(store, std::nullopt, kAll, std::nullopt, 2);
  CHECK(ids(first) == std::vector<std::uint64_t>{31, 32});
  REQUIRE(first.next.has_value());
  const OrdersPage second = c.projection.store_orders(store, std::nullopt, kAll, first.next, 2);
  CHECK(ids(second) == std::vector<std::uint64_t>{33, 35});
  CHECK_FALSE(second.next.has_value());
  CHECK(ids(c.projection.store_orders(store, OrderState::placed, kAll, std::nullopt, 100)) ==
        std::vector<std::uint64_t>{35});
  CHECK(ids(c.projection.store_orders(store, OrderState::expired, kAll, std::nullopt, 100)) ==
        std::vector<std::uint64_t>{33});
  CHECK(ids(c.projection.store_orders(LocationId{4}, OrderState::placed, kWest, std::nullopt, 100)) ==
        std::vector<std::uint64_t>{34});
  // A listing row counts its shipments without copying them.
  const OrdersPage received = c.projection.store_orders(store, OrderState::received, kAll, std::nullopt, 100);
  REQUIRE(received.orders.size() == 1);
  CHECK(received.orders[0].shipments_total == 2);
  CHECK(received.orders[0].shipments.empty());
}

TEST_CASE("orders projection: a region's orders list by (order id, partition) across partitions, by state, and page with a cursor") {
  Channel c;
  for (const Bytes& b : order_story().events) c.feed(b);
  SecondPartition p1(c.projection);
  auto east = [&](std::optional<OrderState> state, const RegionScope& scope = kAll) {
    return c.projection.region_orders("East", state, scope, std::nullopt, kOrdersPageMax);
  };
  const Keys all_east{{7, 1}, {31, 0}, {31, 1}, {32, 0}, {33, 0}, {35, 0}};
  CHECK(keys(east(std::nullopt)) == all_east);
  CHECK(keys(east(std::nullopt, kEast)) == all_east);
  CHECK(keys(c.projection.region_orders("West", std::nullopt, kWest, std::nullopt, 100)) == Keys{{34, 0}, {40, 1}});
  // Each state is its own run: an order that moved on is listed in its new state only.
  CHECK(keys(east(OrderState::placed)) == Keys{{7, 1}, {31, 1}, {35, 0}});
  CHECK(keys(east(OrderState::received)) == Keys{{31, 0}});
  CHECK(keys(east(OrderState::cancelled)) == Keys{{32, 0}});
  CHECK(keys(east(OrderState::expired)) == Keys{{33, 0}});
  CHECK(keys(east(OrderState::paid)).empty());
  // Another region's, and a region without orders, are not found alike.
  CHECK_FALSE(east(std::nullopt, kWest).has_value());
  CHECK_FALSE(c.projection.region_orders("West", std::nullopt, kEast, std::nullopt, 100).has_value());
  CHECK_FALSE(c.projection.region_orders("North", std::nullopt, kAll, std::nullopt, 100).has_value());

  // Pages of every size list the same orders once each, in order; the cursor of (31, 0) goes on
  // with (31, 1), and a cursor of the id alone goes past it on every partition.
  for (std::size_t limit = 1; limit <= all_east.size() + 1; ++limit) {
    INFO("limit " << limit);
    CHECK(all_pages([&](auto after, std::size_t n) { return c.projection.region_orders("East", std::nullopt, kEast, after, n); },
                    limit) == all_east);
  }
  const auto first = c.projection.region_orders("East", std::nullopt, kAll, std::nullopt, 2);
  CHECK(keys(first) == Keys{{7, 1}, {31, 0}});
  REQUIRE(first->next.has_value());
  CHECK(keys(c.projection.region_orders("East", std::nullopt, kAll, first->next, 2)) == Keys{{31, 1}, {32, 0}});
  CHECK(keys(c.projection.region_orders("East", std::nullopt, kAll, OrderCursor{OrderId{31}}, 2)) == Keys{{32, 0}, {33, 0}});
  const auto last = c.projection.region_orders("East", std::nullopt, kAll, OrderCursor{OrderId{33}, PartitionId{0}}, 2);
  CHECK(keys(last) == Keys{{35, 0}});
  CHECK_FALSE(last->next.has_value());
  CHECK(keys(c.projection.region_orders("East", std::nullopt, kAll, OrderCursor{OrderId{35}}, 2)).empty());
  // A listing row counts its shipments without copying them.
  const auto received = east(OrderState::received);
  CHECK(received->orders[0].shipments_total == 2);
  CHECK(received->orders[0].shipments.empty());
}

TEST_CASE("orders projection: a placer's orders list across its regions within the scope; one without orders in scope is not found") {
  Channel c;
  for (const Bytes& b : order_story().events) c.feed(b);
  SecondPartition p1(c.projection);
  const PartyId distributor{kStoryDistributor};
  auto placed = [&](PartyId by, std::optional<OrderState> state, const RegionScope& scope) {
    return c.projection.placed_orders(by, state, scope, std::nullopt, kOrdersPageMax);
  };
  // 101 placed orders for East store 2 (partition 0), East store 12 and West store 14 (partition 1).
  const Keys all{{31, 1}, {33, 0}, {35, 0}, {40, 1}};
  CHECK(keys(placed(distributor, std::nullopt, kAll)) == all);
  CHECK(keys(placed(distributor, std::nullopt, kEast)) == Keys{{31, 1}, {33, 0}, {35, 0}});
  CHECK(keys(placed(distributor, std::nullopt, kWest)) == Keys{{40, 1}});
  CHECK(keys(placed(distributor, std::nullopt, RegionScope::only({"West", "North", "East"}))) == all);
  CHECK(keys(placed(distributor, OrderState::placed, kAll)) == Keys{{31, 1}, {35, 0}, {40, 1}});
  CHECK(keys(placed(distributor, OrderState::expired, kEast)) == Keys{{33, 0}});
  CHECK(keys(placed(distributor, OrderState::expired, kWest)).empty());  // known in West, none expired
  CHECK(keys(placed(distributor, OrderState::received, kAll)).empty());
  // A store's own orders are placed by the store.
  CHECK(keys(placed(PartyId{2}, std::nullopt, kEast)) == Keys{{31, 0}, {32, 0}});
  CHECK(keys(placed(PartyId{4}, std::nullopt, kWest)) == Keys{{34, 0}});
  // Placed only in another region, or nothing at all: not found, one answer.
  CHECK_FALSE(placed(PartyId{4}, std::nullopt, kEast).has_value());
  CHECK_FALSE(placed(PartyId{4}, OrderState::placed, kEast).has_value());
  CHECK_FALSE(placed(PartyId{999}, std::nullopt, kAll).has_value());
  CHECK_FALSE(placed(distributor, std::nullopt, RegionScope::only({"North"})).has_value());
  CHECK_FALSE(placed(distributor, std::nullopt, RegionScope::only({})).has_value());

  for (std::size_t limit = 1; limit <= all.size() + 1; ++limit) {
    INFO("limit " << limit);
    CHECK(all_pages([&](auto after, std::size_t n) { return c.projection.placed_orders(distributor, std::nullopt, kAll, after, n); },
                    limit) == all);
    CHECK(all_pages([&](auto after, std::size_t n) {
            return c.projection.placed_orders(distributor, OrderState::placed, kAll, after, n);
          }, limit) == Keys{{31, 1}, {35, 0}, {40, 1}});
  }
}

TEST_CASE("orders projection: a rebuild from the shard on start answers as publishing after every event did") {
  Channel c;
  for (const Bytes& b : order_story().events) c.feed(b);
  OrderProjection rebuilt;
  rebuilt.rebuild(c.shard);
  for (std::uint64_t id : {31, 32, 33, 34, 35}) {
    INFO("order " << id);
    const OrderStatus a = c.order(id);
    const auto b = rebuilt.order(OrderId{id}, kAll);
    REQUIRE(b.has_value());
    CHECK(encode(a.order) == encode(b->order));
    CHECK(a.region == b->region);
    CHECK(a.shipments_total == b->shipments_total);
    CHECK(a.as_of.next_offset == b->as_of.next_offset);
    CHECK(a.as_of.event_time == b->as_of.event_time);
  }
  // The listing indexes too, over both partitions.
  SecondPartition p1(c.projection);
  rebuilt.rebuild(p1.shard);
  for (const char* region : {"East", "West"}) {
    for (std::optional<OrderState> state : {std::optional<OrderState>(), std::optional(OrderState::placed)}) {
      CHECK(keys(c.projection.region_orders(region, state, kAll, std::nullopt, 100)) ==
            keys(rebuilt.region_orders(region, state, kAll, std::nullopt, 100)));
      CHECK(keys(c.projection.placed_orders(PartyId{kStoryDistributor}, state, kAll, std::nullopt, 100)) ==
            keys(rebuilt.placed_orders(PartyId{kStoryDistributor}, state, kAll, std::nullopt, 100)));
    }
  }
}

}  // namespace qudao
