#include "connectors/pipeline.h"

#include <doctest/doctest.h>

#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

TEST_CASE("pipeline: the projection follows the ledger, also when a rejected event expires an order") {
  Events ev;
  Applier applier;
  Shard shard{PartitionId{0}};
  StockProjection stock;
  std::int64_t offset = 0;
  auto feed = [&](const Bytes& b) {
    StockProjection::Writer w(stock);
    return ingest_and_project(applier, shard, Offset{offset++}, b, w);
  };
  REQUIRE(feed(ev.location(1, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
  REQUIRE(feed(ev.location(2, fb::LocationKind::Store, "East")) == RecordOutcome::applied);
  REQUIRE(feed(ev.production(1, {line(1, 10)})) == RecordOutcome::applied);
  // The deadline is the order's own event time: not yet past, so the order holds its stock.
  REQUIRE(feed(ev.proxy_order(7, 2, 500, 1, ev.time_after(1), {PricedLine{SkuId{1}, Quantity{4}, Fen{100}}})) ==
          RecordOutcome::applied);
  CHECK(stock.location_stock(LocationId{1}, SkuId{1}, RegionScope::all())->rows.at(0).levels.reserved == Quantity{4});
  // A scan-out at an unknown store is rejected, but its event time expires the unpaid order.
  REQUIRE(feed(ev.scan_out(99, 1, 1)) == RecordOutcome::rejected);
  CHECK(shard.order(OrderId{7})->state == OrderState::expired);
  const StockRow row = stock.location_stock(LocationId{1}, SkuId{1}, RegionScope::all())->rows.at(0);
  CHECK(row.levels.reserved == Quantity{0});
  CHECK(row.levels.on_hand == Quantity{10});
  CHECK(row.levels.available() == Quantity{10});
  CHECK(shard.balance(Account{SkuId{1}, LocationId{1}, Bucket::reserved}) == Quantity{0});
}

}  // namespace qudao
