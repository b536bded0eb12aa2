// The performance projection fed as the pipeline feeds it (publish after applying): leaderboards
// ranked by attainment with a stable tie-break, cursor pages, the region scope inside lookups.
#include "projections/performance.h"

#include <doctest/doctest.h>

#include "engine/apply.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

const Period kJan = Period::month(2026, 1);

// Region East: distributors 11..14 (store 1+i is 10+i's) with January targets of 100,000 fen;
// region West: distributor 21 with store 9.
struct Board {
  Shard shard{PartitionId{0}};
  Applier applier;
  EventWriter w;
  PerformanceProjection projection;
  std::uint64_t seq = 0, orders = 0;
  std::int64_t offset = 0;

  Header h() { return Header{EventId{5, ++seq}, TimeMs{kT0 + static_cast<std::int64_t>(seq) * 1000}, "t"}; }
  void feed(std::span<const std::uint8_t> b) {
    REQUIRE(applier.ingest(shard, Offset{offset++}, b).outcome == RecordOutcome::applied);
    projection.publish(shard);
  }
  void distributor(std::uint64_t party, std::uint64_t store, const char* region) {
    feed(w.location_defined(h(), LocationId{store}, fb::LocationKind::Store, "s", "c", region));
    feed(w.party_registered(h(), party, fb::PartyKind::Distributor, 0, "d", region, "", LocationId{0}));
    feed(w.store_assigned(h(), LocationId{store}, party));
    feed(w.target_set(h(), party, "2026-01", Fen{100'000}));
  }
  void sell(std::uint64_t store, std::int64_t fen) {
    const PricedLine l{SkuId{1}, Quantity{1}, Fen{fen}};
    const OrderId order{++orders};
    feed(w.order_placed(h(), order, LocationId{store}, store, LocationId{0}, TimeMs{kT0}, {&l, 1}));
    feed(w.order_paid(h(), order, store, Fen{fen}));
  }
  std::vector<std::uint64_t> ranking(const RegionScope& scope, std::optional<LeaderboardCursor> after = {},
                                     std::size_t limit = 10) {
    auto page = projection.leaderboard("East", kJan, fb::PartyKind::Distributor, scope, after, limit);
    REQUIRE(page.has_value());
    std::vector<std::uint64_t> ids;
    for (const LeaderboardEntry& e : page->entries) ids.push_back(e.row.party.value);
    return ids;
  }
};

}  // namespace

TEST_CASE("performance projection: a leaderboard ranks by attainment, ties by party id, and follows late changes") {
  Board b;
  for (std::uint64_t i = 1; i <= 4; ++i) b.distributor(10 + i, 1 + i, "East");
  b.distributor(21, 9, "West");
  b.sell(2, 30'000);   // 11: 30 %
  b.sell(3, 60'000);   // 12: 60 %
  b.sell(4, 30'000);   // 13: 30 %, tied with 11
  b.sell(9, 99'000);   // West: not on East's board
  CHECK(b.ranking(RegionScope::all()) == std::vector<std::uint64_t>{12, 11, 13, 14});
  b.sell(4, 40'000);   // 13 overtakes 12
  CHECK(b.ranking(RegionScope::all()) == std::vector<std::uint64_t>{13, 12, 11, 14});

  // Pages of two, walked by cursor: the same order, ranks continue.
  auto first = b.projection.leaderboard("East", kJan, fb::PartyKind::Distributor, RegionScope::all(), {}, 2);
  REQUIRE(first.has_value());
  CHECK(first->total == 4);
  REQUIRE(first->next.has_value());
  auto second = b.projection.leaderboard("East", kJan, fb::PartyKind::Distributor, RegionScope::all(), first->next, 2);
  REQUIRE(second.has_value());
  REQUIRE(second->entries.size() == 2);
  CHECK(second->entries[0].row.party == PartyId{11});
  CHECK(second->entries[0].rank == 3);
  CHECK_FALSE(second->next.has_value());

  // The scope is part of the lookup: West's reader finds neither East's board nor its parties.
  const RegionScope west = RegionScope::only({"West"});
  CHECK_FALSE(b.projection.leaderboard("East", kJan, fb::PartyKind::Distributor, west, {}, 10).has_value());
  CHECK_FALSE(b.projection.performance(PartyId{11}, kJan, west).has_value());
  CHECK(b.projection.performance(PartyId{21}, kJan, west).has_value());
  CHECK(b.projection.performance(PartyId{21}, kJan, west)->row.stats.sell_in.value == 99'000);
}

TEST_CASE("performance projection: a distributor's assigned stores follow each assignment, a rebuild gives the same") {
  Board b;
  b.distributor(11, 2, "East");
  b.distributor(12, 3, "East");
  b.distributor(21, 9, "West");
  auto stores = [](const PerformanceProjection& p, std::uint64_t party, const RegionScope& scope) {
    auto found = p.assigned_stores(PartyId{party}, scope);
    REQUIRE(found.has_value());
    std::vector<std::uint64_t> ids;
    for (LocationId s : found->stores) ids.push_back(s.value);
    return ids;
  };
  const RegionScope all = RegionScope::all();
  CHECK(stores(b.projection, 11, all) == std::vector<std::uint64_t>{2});
  // A second store for 11 (assigned after), and 12 claiming store 2 too: a conflict, nothing moves.
  b.feed(b.w.location_defined(b.h(), LocationId{5}, fb::LocationKind::Store, "s", "c", "East"));
  b.feed(b.w.store_assigned(b.h(), LocationId{5}, 11));
  b.feed(b.w.store_assigned(b.h(), LocationId{2}, 12));
  CHECK(stores(b.projection, 11, all) == std::vector<std::uint64_t>{2, 5});
  CHECK(stores(b.projection, 12, all) == std::vector<std::uint64_t>{3});
  CHECK(stores(b.projection, 21, RegionScope::only({"West"})) == std::vector<std::uint64_t>{9});
  // Another region's party is not found, like an unknown one.
  CHECK_FALSE(b.projection.assigned_stores(PartyId{21}, RegionScope::only({"East"})).has_value());
  CHECK_FALSE(b.projection.assigned_stores(PartyId{99}, all).has_value());
  // An agent registered after its distributors, and one of them re-registered under it.
  b.feed(b.w.party_registered(b.h(), 10, fb::PartyKind::Agent, 0, "a", "East", "", LocationId{0}));
  b.feed(b.w.party_registered(b.h(), 11, fb::PartyKind::Distributor, 10, "d", "East", "", LocationId{0}));
  CHECK(stores(b.projection, 10, all) == std::vector<std::uint64_t>{2, 5});
  CHECK(b.projection.assigned_stores(PartyId{10}, all)->info.kind == fb::PartyKind::Agent);

  PerformanceProjection rebuilt;
  rebuilt.rebuild(b.shard);
  for (std::uint64_t party : {10, 11, 12, 21}) CHECK(stores(rebuilt, party, all) == stores(b.projection, party, all));
}

}  // namespace qudao
