// The order projection fed as the pipeline feeds it (publish after applying): every state an order
// goes through, its shipments, a proxy order expiring by event time, the region scope inside the
// lookups, store listings by state and cursor, and the same answers from a rebuild on start.
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
}

}  // namespace qudao
