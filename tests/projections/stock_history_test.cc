// The stock projection with its history (projections/stock.h, stock_history.h): days of cover and
// below-reorder flags, as-of lookups, periods, roll-ups per city, region and nation, pages, scope,
// and the sold window rebuilt from the store after a restart.
#include "projections/stock_history.h"

#include <doctest/doctest.h>

#include "connectors/pipeline.h"
#include "tests/projections/history_story.h"

namespace qudao {
using namespace qudao::test;

namespace {

constexpr PartitionId kP{0};

// The story applied through the pipeline's own path and committed to a store in a temp dir.
struct StoryFixture {
  StoryFixture() {
    auto s = Store::open(StoreOptions{dir.path(), "events", SyncMode::no_fsync});
    REQUIRE(s.is_ok());
    store = s.take();
    Applier applier;
    std::int64_t offset = 0;
    {
      StockProjection::Writer w(stock);
      for (const Bytes& b : history_story()) {
        CHECK(ingest_and_project(applier, shard, Offset{offset++}, b, w) == RecordOutcome::applied);
      }
    }
    Shard* list[] = {&shard};
    REQUIRE(store->commit(list).is_ok());
  }
  LocationStock at(std::uint64_t location, const RegionScope& scope = RegionScope::all()) const {
    auto found = stock.location_stock(LocationId{location}, std::nullopt, scope);
    REQUIRE(found.has_value());
    return *found;
  }
  TempDir dir;
  std::unique_ptr<Store> store;
  Shard shard{kP};
  StockProjection stock;
};

const StockRow& row(const LocationStock& ls, std::uint64_t sku) {
  for (const StockRow& r : ls.rows) {
    if (r.sku == SkuId{sku}) return r;
  }
  FAIL("no row for sku " << sku);
  return ls.rows.front();
}

}  // namespace

TEST_CASE("stock projection: days of cover is on hand over the average daily sales of the last 28 shard days") {
  StoryFixture f;
  const LocationStock s11 = f.at(kStoryStore);
  CHECK(s11.partition == kP);
  CHECK(s11.today == story_day(3));
  CHECK(row(s11, 1).levels.on_hand == Quantity{30});
  CHECK(row(s11, 1).sold_window == Quantity{10});  // 7 on day 1 (the late scan-out included), 3 on day 2
  const Cover c1 = cover(row(s11, 1).levels.on_hand, row(s11, 1).sold_window, kReorderCoverDaysDefault);
  REQUIRE(c1.days.has_value());
  CHECK(*c1.days == doctest::Approx(84.0));  // 30 / (10 / 28)
  CHECK_FALSE(c1.below_reorder);
  CHECK(cover(Quantity{30}, Quantity{10}, 90).below_reorder);  // the threshold is the reader's
  // Sold beyond stock: no cover left, below reorder.
  const Cover c2 = cover(row(s11, 2).levels.on_hand, row(s11, 2).sold_window, kReorderCoverDaysDefault);
  CHECK(row(s11, 2).levels.on_hand == Quantity{-12});
  CHECK(*c2.days == doctest::Approx(0.0));
  CHECK(c2.below_reorder);
  // Nothing sold in the window: no figure (unbounded), never below reorder.
  const LocationStock wh = f.at(kStoryWarehouse);
  CHECK(row(wh, 1).sold_window == Quantity{0});
  CHECK_FALSE(cover(row(wh, 1).levels.on_hand, row(wh, 1).sold_window, kReorderCoverDaysDefault).days.has_value());
  CHECK_FALSE(cover(Quantity{0}, Quantity{0}, kReorderCoverDaysDefault).below_reorder);
  // 28 days on, the day-1 and day-2 sales have left the window.
  {
    StockProjection::Writer w(f.stock);
    w.advance_day(kP, Day{story_day(2).value + kCoverWindowDays});
  }
  CHECK(row(f.at(kStoryStore), 1).sold_window == Quantity{0});
  CHECK(row(f.at(kStoryStore), 2).sold_window == Quantity{20});
}

TEST_CASE("stock history: as of a day, each row has that day's closing; periods sum the sold rows") {
  StoryFixture f;
  HistoryReader history = f.store->history_reader();
  auto as_of = [&](std::uint64_t location, int day) {
    LocationStock ls = f.at(location);
    REQUIRE(apply_as_of(history, ls, story_day(day)).is_ok());
    return ls;
  };
  CHECK(row(as_of(kStoryStore, -1), 1).levels.on_hand == Quantity{0});
  CHECK(row(as_of(kStoryStore, 0), 1).levels.on_hand == Quantity{40});
  CHECK(row(as_of(kStoryStore, 1), 1).levels.on_hand == Quantity{35});
  CHECK(row(as_of(kStoryStore, 1), 2).levels.on_hand == Quantity{8});
  CHECK(row(as_of(kStoryStore, 2), 1).levels.on_hand == Quantity{32});
  CHECK(row(as_of(kStoryStore, 3), 1).levels.on_hand == Quantity{30});
  CHECK(row(as_of(kStoryNingboStore, 2), 2).levels.in_transit == Quantity{5});
  CHECK(row(as_of(kStoryNingboStore, 1), 2).levels.in_transit == Quantity{0});
  // As of day 1 the window ends on day 1: only day 1's sales.
  CHECK(row(as_of(kStoryStore, 1), 1).sold_window == Quantity{7});
  CHECK(row(as_of(kStoryStore, 3), 1).sold_window == Quantity{10});

  LocationStock period = f.at(kStoryStore);
  REQUIRE(add_sold_period(history, period, story_day(2), story_day(3)).is_ok());
  CHECK(row(period, 1).sold_period == Quantity{3});
  CHECK(row(period, 2).sold_period == Quantity{20});
  REQUIRE(add_sold_period(history, period, story_day(0), story_day(1)).is_ok());
  CHECK(row(period, 1).sold_period == Quantity{7});
  CHECK(row(period, 2).sold_period == Quantity{0});
}

TEST_CASE("stock projection: roll-ups per city, region and nation, now and as of a day") {
  StoryFixture f;
  bool more = true;
  const RegionScope all = RegionScope::all();
  auto cities = f.stock.rollup(RollupLevel::city, all, std::nullopt, {}, 10, ReorderRule{}, more);
  REQUIRE(cities.has_value());
  CHECK_FALSE(more);
  REQUIRE(cities->size() == 3);  // (East, Hangzhou), (East, Ningbo), (West, Xian)
  CHECK((*cities)[0].city == "Hangzhou");
  CHECK((*cities)[0].locations == 2);
  CHECK((*cities)[0].levels.on_hand == Quantity{40 + 35 + 30 - 12});
  CHECK((*cities)[0].sold_window == Quantity{30});
  CHECK((*cities)[0].rows_below_reorder == 1);
  CHECK((*cities)[1].city == "Ningbo");
  CHECK((*cities)[1].levels.on_hand == Quantity{16});
  CHECK((*cities)[1].levels.in_transit == Quantity{5});
  CHECK((*cities)[2].region == "West");
  CHECK((*cities)[2].rows_below_reorder == 1);

  auto regions = f.stock.rollup(RollupLevel::region, all, std::nullopt, {}, 10, ReorderRule{}, more);
  REQUIRE(regions.has_value());
  REQUIRE(regions->size() == 2);
  CHECK((*regions)[0].region == "East");
  CHECK((*regions)[0].city.empty());
  CHECK((*regions)[0].locations == 3);
  CHECK((*regions)[0].levels.on_hand == Quantity{109});
  CHECK((*regions)[0].sold_window == Quantity{34});
  CHECK((*regions)[1].levels.on_hand == Quantity{-1});

  auto nation = f.stock.rollup(RollupLevel::nation, all, std::nullopt, {}, 1, ReorderRule{}, more);
  REQUIRE(nation.has_value());
  REQUIRE(nation->size() == 1);
  CHECK((*nation)[0].locations == 4);
  CHECK((*nation)[0].levels.on_hand == Quantity{108});
  CHECK((*nation)[0].rows_below_reorder == 2);

  // As of a day: the same groups from the stored closings.
  HistoryReader history = f.store->history_reader();
  auto refs = f.stock.rollup_refs(RollupLevel::region, all, std::nullopt, {}, 10, more);
  REQUIRE(refs.has_value());
  for (const auto& [day, east_on_hand] : {std::pair{0, 40 + 40 + 40 + 8 + 20}, std::pair{2, 40 + 35 + 32 + 8 + 16},
                                          std::pair{3, 109}}) {
    INFO("day " << day);
    auto past = rollup_as_of(history, *refs, story_day(day), ReorderRule{});
    REQUIRE(past.is_ok());
    REQUIRE(past.value().size() == 2);
    CHECK(past.value()[0].region == "East");
    CHECK(past.value()[0].levels.on_hand == Quantity{east_on_hand});
  }
  std::vector<GroupStock> with_period = *regions;
  REQUIRE(add_sold_period(history, *refs, story_day(1), story_day(2), with_period).is_ok());
  CHECK(with_period[0].sold_period == Quantity{7 + 3 + 4});
  CHECK(with_period[1].sold_period == Quantity{1});

  SUBCASE("a regional scope sees only its regions' groups; another region is not found") {
    const RegionScope west = RegionScope::only({"West"});
    auto mine = f.stock.rollup(RollupLevel::city, west, std::nullopt, {}, 10, ReorderRule{}, more);
    REQUIRE(mine.has_value());
    REQUIRE(mine->size() == 1);
    CHECK((*mine)[0].city == "Xian");
    CHECK_FALSE(f.stock.rollup(RollupLevel::city, west, std::string("East"), {}, 10, ReorderRule{}, more));
    CHECK_FALSE(f.stock.rollup_refs(RollupLevel::region, west, std::string("East"), {}, 10, more));
    CHECK_FALSE(f.stock.rollup(RollupLevel::city, all, std::string("Nowhere"), {}, 10, ReorderRule{}, more));
  }
  SUBCASE("groups come in pages from a (region, city) on") {
    auto first = f.stock.rollup(RollupLevel::city, all, std::nullopt, {}, 2, ReorderRule{}, more);
    REQUIRE(first->size() == 2);
    CHECK(more);
    auto second = f.stock.rollup(RollupLevel::city, all, std::nullopt, {"East", std::string("Ningbo") + '\0'}, 2,
                                 ReorderRule{}, more);
    REQUIRE(second->size() == 1);
    CHECK((*second)[0].city == "Xian");
    CHECK_FALSE(more);
  }
}

TEST_CASE("stock projection: pages of rows resume at their cursor, and filters outside the scope find nothing") {
  StoryFixture f;
  const RegionScope all = RegionScope::all();
  // Rows: (10,1) (10,2) (11,1) (11,2) (12,1) (12,2) (13,1), in pages of 3.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
  std::optional<StockCursor> cursor;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = f.stock.stock_page({}, all, cursor, 3);
    REQUIRE(page.has_value());
    std::size_t rows = 0;
    for (const LocationStock& ls : page->locations) {
      for (const StockRow& r : ls.rows) seen.emplace_back(r.location.value, r.sku.value), ++rows;
    }
    CHECK(rows <= 3);
    cursor = page->next;
    if (!cursor) break;
  }
  CHECK(seen == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{10, 1}, {10, 2}, {11, 1}, {11, 2}, {12, 1},
                                                                     {12, 2}, {13, 1}});
  auto east = f.stock.stock_page(StockFilter{std::string("East"), std::string("Ningbo"), std::nullopt, std::nullopt},
                                 all, std::nullopt, 100);
  REQUIRE(east.has_value());
  REQUIRE(east->locations.size() == 1);
  CHECK(east->locations[0].location == LocationId{kStoryNingboStore});
  CHECK_FALSE(east->next.has_value());
  auto sku2 = f.stock.stock_page(StockFilter{std::nullopt, std::nullopt, std::nullopt, SkuId{2}}, all, std::nullopt, 100);
  REQUIRE(sku2.has_value());
  CHECK(sku2->locations.size() == 3);

  const RegionScope west = RegionScope::only({"West"});
  CHECK_FALSE(f.stock.stock_page(StockFilter{std::string("East")}, west, std::nullopt, 100).has_value());
  CHECK_FALSE(f.stock.stock_page(StockFilter{std::nullopt, std::string("Ningbo")}, west, std::nullopt, 100).has_value());
  CHECK_FALSE(f.stock.stock_page(StockFilter{std::nullopt, std::nullopt, LocationId{kStoryStore}}, west, std::nullopt, 100)
                  .has_value());
  CHECK_FALSE(f.stock.locate(LocationId{kStoryStore}, west).has_value());
  auto mine = f.stock.stock_page({}, west, std::nullopt, 100);
  REQUIRE(mine.has_value());
  REQUIRE(mine->locations.size() == 1);
  CHECK(mine->locations[0].location == LocationId{kStoryWestStore});
}

TEST_CASE("stock history: after a restart the sold window is rebuilt from the stored sold rows") {
  StoryFixture f;
  auto loaded = f.store->load();
  REQUIRE(loaded.is_ok());
  const Shard& shard = loaded.value().at(kP.value);
  StockProjection fresh;
  {
    StockProjection::Writer w(fresh);
    std::vector<Posting> balances;
    shard.for_each_location([&](LocationId id, const LocationInfo& info) { w.define_location(id, info, kP); });
    shard.for_each_balance([&](const Account& a, Quantity q) { balances.push_back({a, q}); });
    w.project(balances);
    HistoryReader history = f.store->history_reader();
    REQUIRE(rebuild_sold_window(history, shard, w).is_ok());
  }
  for (std::uint64_t location : {kStoryWarehouse, kStoryStore, kStoryNingboStore, kStoryWestStore}) {
    INFO("location " << location);
    const LocationStock before = f.at(location);
    const auto after = fresh.location_stock(LocationId{location}, std::nullopt, RegionScope::all());
    REQUIRE(after.has_value());
    CHECK(after->today == before.today);
    REQUIRE(after->rows.size() == before.rows.size());
    for (std::size_t i = 0; i < before.rows.size(); ++i) {
      CHECK(after->rows[i].levels.on_hand == before.rows[i].levels.on_hand);
      CHECK(after->rows[i].sold_window == before.rows[i].sold_window);
    }
  }
}

}  // namespace qudao
