#include "projections/stock.h"

#include <doctest/doctest.h>

#include "engine/apply.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

TEST_CASE("stock projection: per-location stock and region totals follow the ledger's postings") {
  Events ev;
  Applier applier;
  Shard shard{PartitionId{0}};
  StockProjection stock;
  auto feed = [&](const Bytes& b) {
    const Event e = must_decode(b);
    REQUIRE(applier.apply(shard, e).kind == OutcomeKind::applied);
    StockProjection::Writer w(stock);
    if (e.type() == fb::Payload::LocationDefined) {
      const LocationId id{e.envelope->payload_as_LocationDefined()->location()};
      w.define_location(id, *shard.location(id));
    }
    w.project(applier.postings());
  };
  feed(ev.location(1, fb::LocationKind::SubWarehouse, "East"));
  feed(ev.location(2, fb::LocationKind::Store, "East"));
  feed(ev.location(3, fb::LocationKind::SubWarehouse, "West"));
  feed(ev.production(1, {line(1, 100), line(2, 40)}));
  feed(ev.production(3, {line(1, 5)}));
  feed(ev.dispatch(1, 2, {line(1, 30)}));
  feed(ev.receive(2, {line(1, 30)}));
  feed(ev.dispatch(1, 2, {line(2, 5)}));
  feed(ev.scan_out(2, 1, 8));

  const RegionScope hq = RegionScope::all();
  const auto at2 = stock.location_stock(LocationId{2}, std::nullopt, hq);
  REQUIRE(at2.has_value());
  CHECK(at2->info.region == "East");
  const auto& rows = at2->rows;
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].sku == SkuId{1});
  CHECK(rows[0].levels.on_hand == Quantity{22});
  CHECK(rows[0].levels.in_transit == Quantity{0});
  CHECK(rows[1].levels.in_transit == Quantity{5});
  CHECK(stock.location_stock(LocationId{1}, SkuId{2}, hq)->rows.at(0).levels.on_hand == Quantity{35});
  CHECK(stock.location_stock(LocationId{1}, SkuId{9}, hq)->rows.empty());
  CHECK_FALSE(stock.location_stock(LocationId{42}, std::nullopt, hq).has_value());

  const auto regions = stock.region_totals(hq);
  REQUIRE(regions.size() == 2);
  CHECK(regions[0].region == "East");
  CHECK(regions[0].locations == 2);
  CHECK(regions[0].levels.on_hand == Quantity{70 + 35 + 22});
  CHECK(regions[0].levels.in_transit == Quantity{5});
  CHECK(regions[1].region == "West");
  CHECK(regions[1].levels.on_hand == Quantity{5});

  SUBCASE("a location outside the reader's scope is not found, exactly like an unknown one") {
    const RegionScope west = RegionScope::only({"West"});
    CHECK_FALSE(stock.location_stock(LocationId{1}, std::nullopt, west).has_value());
    CHECK_FALSE(stock.location_stock(LocationId{1}, SkuId{2}, west).has_value());
    CHECK_FALSE(stock.location_stock(LocationId{42}, std::nullopt, west).has_value());
    REQUIRE(stock.location_stock(LocationId{3}, std::nullopt, west).has_value());
    CHECK(stock.location_stock(LocationId{3}, std::nullopt, west)->rows.at(0).levels.on_hand == Quantity{5});
    CHECK_FALSE(stock.location_stock(LocationId{3}, std::nullopt, RegionScope::only({})).has_value());
  }
  SUBCASE("region totals list only the scope's regions that have locations, by name") {
    const auto west = stock.region_totals(RegionScope::only({"West", "Nowhere"}));
    REQUIRE(west.size() == 1);
    CHECK(west[0].region == "West");
    CHECK(west[0].levels.on_hand == Quantity{5});
    const auto both = stock.region_totals(RegionScope::only({"West", "East"}));
    REQUIRE(both.size() == 2);
    CHECK(both[0].region == "East");
    CHECK(stock.region_totals(RegionScope::only({})).empty());
  }
}

}  // namespace qudao

namespace qudao {
using namespace qudao::test;

TEST_CASE("stock projection: a record of many postings (a shipment's lines) projects as one at a time") {
  // The skus arrive new (growing the locations' items and indexes within the record), repeated, at
  // two locations and in virtual accounts, and the levels must be those of projecting each posting
  // alone (a guard for any look-ahead in project(): README "A shipment's lines").
  const RegionScope hq = RegionScope::all();
  std::vector<Posting> postings;
  for (std::uint64_t k = 0; k < 300; ++k) {
    const SkuId sku{(k * 37) % 211 + 1};
    postings.push_back({Account{sku, LocationId{1}, Bucket::on_hand}, Quantity{-static_cast<std::int64_t>(k % 5 + 1)}});
    postings.push_back({Account{sku, kVirtualLocation, Bucket::losses}, Quantity{1}});
    postings.push_back({Account{sku, LocationId{2}, k % 3 == 0 ? Bucket::reserved : Bucket::in_transit},
                        Quantity{static_cast<std::int64_t>(k % 7 + 1)}});
  }
  StockProjection together, alone;
  StockProjection::Writer wt(together), wa(alone);
  for (StockProjection::Writer* w : {&wt, &wa}) {
    w->define_location(LocationId{1}, LocationInfo{fb::LocationKind::Warehouse, "w", "c", "East"}, PartitionId{0});
    w->define_location(LocationId{2}, LocationInfo{fb::LocationKind::Store, "s", "c", "East"}, PartitionId{0});
  }
  wt.project(postings);
  for (const Posting& p : postings) wa.project(std::span<const Posting>(&p, 1));
  wt.release();
  wa.release();
  for (std::uint64_t location : {1, 2}) {
    const auto a = together.location_stock(LocationId{location}, std::nullopt, hq);
    const auto b = alone.location_stock(LocationId{location}, std::nullopt, hq);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    REQUIRE(a->rows.size() == 211);
    REQUIRE(a->rows.size() == b->rows.size());
    for (std::size_t i = 0; i < a->rows.size(); ++i) {
      CAPTURE(i);
      CHECK(a->rows[i].sku == b->rows[i].sku);
      CHECK(a->rows[i].levels.on_hand == b->rows[i].levels.on_hand);
      CHECK(a->rows[i].levels.reserved == b->rows[i].levels.reserved);
      CHECK(a->rows[i].levels.in_transit == b->rows[i].levels.in_transit);
    }
  }
  const auto totals = together.region_totals(hq);
  REQUIRE(totals.size() == 1);
  CHECK(totals[0].levels.on_hand == alone.region_totals(hq)[0].levels.on_hand);
  CHECK(totals[0].levels.in_transit == alone.region_totals(hq)[0].levels.in_transit);
}

TEST_CASE("stock projection: a row's reorder point is its own shard's, else the lowest-numbered partition's, "
          "whatever order the shards defined it in; a redefinition without one clears it") {
  const RegionScope hq = RegionScope::all();
  for (bool p2_first : {false, true}) {
    CAPTURE(p2_first);
    StockProjection stock;
    StockProjection::Writer w(stock);
    w.define_location(LocationId{1}, LocationInfo{fb::LocationKind::Store, "s", "c", "East"}, PartitionId{0});
    w.project(std::vector<Posting>{{Account{SkuId{7}, LocationId{1}, Bucket::on_hand}, Quantity{5}}});
    if (p2_first) w.define_reorder_point(PartitionId{2}, SkuId{7}, 40);
    w.define_reorder_point(PartitionId{1}, SkuId{7}, 30);
    if (!p2_first) w.define_reorder_point(PartitionId{2}, SkuId{7}, 40);
    w.release();
    auto days = [&] { return stock.location_stock(LocationId{1}, SkuId{7}, hq)->rows.at(0).sku_reorder_cover_days; };
    CHECK(days() == 30);
    w.define_reorder_point(PartitionId{0}, SkuId{7}, 10);
    w.release();
    CHECK(days() == 10);
    w.define_reorder_point(PartitionId{0}, SkuId{7}, 0);
    w.define_reorder_point(PartitionId{1}, SkuId{7}, 0);
    w.release();
    CHECK(days() == 40);
    w.define_reorder_point(PartitionId{2}, SkuId{7}, 0);
    w.release();
    CHECK(days() == 0);
    CHECK(ReorderRule{}.threshold(0).days == kReorderCoverDaysDefault);
    CHECK(ReorderRule{}.threshold(21).source == ReorderSource::sku);
    CHECK(ReorderRule{90}.threshold(21).days == 90);
  }
}

}  // namespace qudao
